"""Typed reports: what each command returns to a Python caller and hands to a renderer.

Renderers receive one of these, never the study model, a plan and a write result separately; each
report's ``as_dict()`` is its public JSON shape (the ``hpohash.*/1`` schemas of SPEC §5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpohash.audit import Finding, FindingDicts, verify_report
from hpohash.plan import Conflict, PlannedChange
from hpohash.render import CheckedRun
from hpohash.rules import ERROR
from hpohash.writes import ApplyResult, UndoPlan, backfill_report, undo_report


def experiments_with_runs(scope: Any) -> tuple[str, ...]:
    """The scanned experiments that held HPO runs (a suggested next command names only these)."""
    used = {r.experiment_id for s in scope.studies for r in s.members()}
    used |= {o.run.experiment_id for o in scope.orphans}
    return tuple(e.name for e in scope.experiments if e.experiment_id in used)


@dataclass(frozen=True)
class StudySummary:
    """One study as verify reports it (a row of ``studies`` in ``hpohash.verify/1``)."""

    parent_run_id: str
    model: str | None
    model_source: str | None
    study_key_hash: str | None
    recomputed_study_key_hash: str | None
    config_source: Mapping[str, Any] | None
    trials: int
    refits: int
    errors: int
    warnings: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "parent_run_id": self.parent_run_id,
            "model": self.model,
            "model_source": self.model_source,
            "study_key_hash": self.study_key_hash,
            "recomputed_study_key_hash": self.recomputed_study_key_hash,
            "config_source": dict(self.config_source) if self.config_source is not None else None,
            "trials": self.trials,
            "refits": self.refits,
            "errors": self.errors,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class VerifySummary:
    studies: int
    parents: int
    trials: int
    refits: int
    errors: int
    warnings: int
    ok: bool
    #: only with ``since``: studies left out because none of their runs started since then
    studies_skipped: int | None = None

    def as_dict(self) -> dict[str, Any]:
        head = {} if self.studies_skipped is None else {"studies_skipped": self.studies_skipped}
        return {
            **head,
            "studies": self.studies,
            "parents": self.parents,
            "trials": self.trials,
            "refits": self.refits,
            "errors": self.errors,
            "warnings": self.warnings,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class VerifyReport:
    """Every broken run and why (``hpohash.verify/1``), plus what a renderer needs beside it."""

    tracking_uri: str
    experiments: tuple[str, ...]
    summary: VerifySummary
    studies: tuple[StudySummary, ...]
    findings: tuple[Finding, ...]
    #: every run checked (JUnit reports a test case per run)
    checked: tuple[CheckedRun, ...] = ()
    #: the experiments that held the HPO runs (a suggested next command names only these)
    experiments_with_runs: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.summary.ok

    def as_dict(self) -> dict[str, Any]:
        """The JSON object; findings are made into dicts as they are read (the JSON renderer streams)."""
        return {
            "schema": "hpohash.verify/1",
            "tracking_uri": self.tracking_uri,
            "experiments": list(self.experiments),
            "summary": self.summary.as_dict(),
            "studies": [s.as_dict() for s in self.studies],
            "findings": FindingDicts(self.findings),
        }

    @classmethod
    def from_scope(cls, scope: Any, findings: Sequence[Finding]) -> VerifyReport:
        from hpohash.study import PARENT, REFIT, TRIAL

        d = verify_report(scope, list(findings))
        runs: list[CheckedRun] = []
        for study in scope.studies:
            pid = study.parent.run_id
            runs.append(CheckedRun(pid, PARENT, pid))
            runs += [CheckedRun(r.run_id, TRIAL, pid) for r in study.trials]
            runs += [CheckedRun(r.run_id, REFIT, pid) for r in study.refits]
        runs += [CheckedRun(o.run.run_id, o.role, o.parent_ref) for o in scope.orphans]
        return cls(
            tracking_uri=d["tracking_uri"],
            experiments=tuple(d["experiments"]),
            summary=VerifySummary(**d["summary"]),
            studies=tuple(StudySummary(**s) for s in d["studies"]),
            findings=tuple(findings),
            checked=tuple(runs),
            experiments_with_runs=experiments_with_runs(scope),
            warnings=tuple(scope.warnings),
        )


@dataclass(frozen=True)
class StudyGroup:
    """One study as the backfill layout groups runs under it."""

    parent_run_id: str
    v2_hash: str | None
    model: str | None
    members: tuple[str, ...]


@dataclass(frozen=True)
class BackfillPlan:
    """What backfill would write, what it leaves alone, and the verify findings it answers."""

    tracking_uri: str
    experiments: tuple[str, ...]
    changes: tuple[PlannedChange, ...]
    conflicts: tuple[Conflict, ...]
    findings: tuple[Finding, ...]
    studies: tuple[StudyGroup, ...]
    #: the experiments that held the HPO runs (a suggested next command names only these)
    experiments_with_runs: tuple[str, ...] = ()
    #: the open store the plan was read from (``apply`` writes through it)
    tracking: Any = field(default=None, repr=False, compare=False)

    @property
    def fixes_errors(self) -> bool:
        """A change fixes an error finding: ``backfill --dry-run --exit-code`` fails the gate."""
        return any(f.severity == ERROR and f.fixable for f in self.findings)

    @property
    def runs(self) -> int:
        return len({c.run_id for c in self.changes})


@dataclass(frozen=True)
class BackfillReport:
    """A plan and, once applied, what was written (``hpohash.backfill/1``)."""

    plan: BackfillPlan
    dry_run: bool
    journal: str | None = None
    result: ApplyResult | None = None

    @property
    def ok(self) -> bool:
        return not self.plan.conflicts and not (self.result and self.result.failures)

    def as_dict(self) -> dict[str, Any]:
        return backfill_report(self.plan, dry_run=self.dry_run, journal=self.journal, result=self.result)


@dataclass(frozen=True)
class UndoReport:
    """What undo restores (or would), what it left alone, and what it wrote (``hpohash.undo/1``)."""

    plan: UndoPlan
    dry_run: bool
    journal: str | None = None
    result: ApplyResult | None = None

    @property
    def ok(self) -> bool:
        p = self.plan
        return not (p.skipped or p.missing_runs or p.cut or (self.result and self.result.failures))

    def as_dict(self) -> dict[str, Any]:
        return undo_report(self.plan, dry_run=self.dry_run, journal=self.journal, result=self.result)


@dataclass(frozen=True)
class DiffReport:
    """Two sides and why they do (not) share a study or trial hash (``hpohash.diff/1``)."""

    data: Mapping[str, Any]

    @property
    def same_study(self) -> bool:
        return bool(self.data["same_study"])

    @property
    def same_trial(self) -> bool | None:
        return self.data["same_trial"]

    @property
    def differences(self) -> list[dict[str, Any]]:
        return list(self.data["differences"])

    @property
    def ok(self) -> bool:
        return self.same_study and self.same_trial is not False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.data)
