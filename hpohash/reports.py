"""Typed reports: what each command returns to a Python caller and hands to a renderer.

The audit and the planner's results go into these once, typed, and stay typed up to the renderer:
renderers read their fields (never a dict made from them, nor the study model), and each report's
``as_dict()`` is its public JSON shape (the ``hpohash.*/1`` schemas of SPEC §5), made only at the JSON
edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hpohash.audit import Finding, FindingDicts
from hpohash.plan import Conflict, PlannedChange
from hpohash.rules import ERROR, WARNING
from hpohash.writes import ApplyResult, TagWrite, UndoPlan

if TYPE_CHECKING:
    from hpohash.sources import Origin


def experiments_with_runs(scope: Any) -> tuple[str, ...]:
    """The scanned experiments that held HPO runs (a suggested next command names only these)."""
    used = {r.experiment_id for s in scope.studies for r in s.members()}
    used |= {o.run.experiment_id for o in scope.orphans}
    return tuple(e.name for e in scope.experiments if e.experiment_id in used)


@dataclass(frozen=True, slots=True)
class CheckedRun:
    """One run verify looked at (JUnit reports a test case per run, passed or not)."""

    run_id: str
    stage: str
    parent_run_id: str | None


class CheckedRuns(Sequence[CheckedRun]):
    """Every run verify looked at, kept as each study's run ids (shared with the records) and made
    into ``CheckedRun`` s when read: only the JUnit report reads them, and at 100,000 runs 100,000
    small objects are ~7 MB held to the end of the command for nothing."""

    __slots__ = ("_groups", "_len")

    def __init__(self, groups: Sequence[tuple[str, str | None, Sequence[str]]]) -> None:
        self._groups = tuple(groups)  # (stage, parent run id, run ids), in report order
        self._len = sum(len(ids) for _, _, ids in self._groups)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[CheckedRun]:
        for stage, parent, ids in self._groups:
            for run_id in ids:
                yield CheckedRun(run_id, stage, parent)

    def __getitem__(self, i: Any) -> Any:
        return list(self)[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class StudySummary:
    """One study as verify reports it (a row of ``studies`` in ``hpohash.verify/1``)."""

    parent_run_id: str
    model: str | None
    model_source: str | None
    study_key_hash: str | None
    recomputed_study_key_hash: str | None
    #: where the configs came from (``config_source`` in JSON)
    config_source: Origin | None
    trials: int
    refits: int
    errors: int
    warnings: int
    #: the study's v2 hash, what its runs should carry: the parent's 2.0 tag, else the recomputed one
    #: (not in the JSON, which has both; a study header names this one)
    v2_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "parent_run_id": self.parent_run_id,
            "model": self.model,
            "model_source": self.model_source,
            "study_key_hash": self.study_key_hash,
            "recomputed_study_key_hash": self.recomputed_study_key_hash,
            "config_source": self.config_source.as_dict() if self.config_source is not None else None,
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
    checked: Sequence[CheckedRun] = ()
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
        """The report of an audited scope: each study's counts from its findings, every run checked."""
        from hpohash.study import PARENT, REFIT, TRIAL

        per_study: dict[str, list[Finding]] = {}
        for f in findings:
            per_study.setdefault(f.parent_run_id or "", []).append(f)
        studies = []
        runs: list[tuple[str, str | None, tuple[str, ...]]] = []
        for s in scope.studies:
            pid = s.parent.run_id
            fs = per_study.get(pid, [])
            studies.append(
                StudySummary(
                    parent_run_id=pid,
                    model=s.model,
                    model_source=s.model_source,
                    study_key_hash=s.stored_hash,
                    recomputed_study_key_hash=s.recomputed_study_hash,
                    config_source=s.config_origin,
                    trials=len(s.trials),
                    refits=len(s.refits),
                    errors=sum(1 for f in fs if f.severity == ERROR),
                    warnings=sum(1 for f in fs if f.severity == WARNING),
                    v2_hash=s.v2_hash,
                )
            )
            runs.append((PARENT, pid, (pid,)))
            runs.append((TRIAL, pid, tuple(r.run_id for r in s.trials)))
            runs.append((REFIT, pid, tuple(r.run_id for r in s.refits)))
        runs += [(o.role, o.parent_ref, (o.run.run_id,)) for o in scope.orphans]
        errors = sum(1 for f in findings if f.severity == ERROR)
        summary = VerifySummary(
            studies=len(scope.studies),
            parents=len(scope.studies),
            trials=sum(len(s.trials) for s in scope.studies) + sum(1 for o in scope.orphans if o.role == TRIAL),
            refits=sum(len(s.refits) for s in scope.studies) + sum(1 for o in scope.orphans if o.role == REFIT),
            errors=errors,
            warnings=sum(1 for f in findings if f.severity == WARNING),
            ok=errors == 0,
            studies_skipped=scope.skipped_studies,  # only with --since: a full verify's shape is unchanged
        )
        return cls(
            tracking_uri=scope.tracking_uri,
            experiments=tuple(e.name for e in scope.experiments),
            summary=summary,
            studies=tuple(studies),
            findings=tuple(findings),
            checked=CheckedRuns(runs),
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
class BackfillSummary:
    runs_planned: int
    tags_planned: int
    runs_written: int
    runs_failed: int
    conflicts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in the order the JSON has them


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

    @property
    def failures(self) -> tuple[Any, ...]:
        return self.result.failures if self.result else ()

    @property
    def summary(self) -> BackfillSummary:
        return BackfillSummary(
            runs_planned=self.plan.runs,
            tags_planned=len(self.plan.changes),
            runs_written=self.result.runs_written if self.result else 0,
            runs_failed=len(self.failures),
            conflicts=len(self.plan.conflicts),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": "hpohash.backfill/1",
            "dry_run": self.dry_run,
            "journal": self.journal,
            "summary": self.summary.as_dict(),
            "changes": [
                {
                    "run_id": c.run_id,
                    "stage": c.stage,
                    "key": c.key,
                    "old": c.old,
                    "new": c.new,
                    "reason": c.reason,
                    "fixes": list(c.fixes),
                }
                for c in self.plan.changes
            ],
            "conflicts": [
                {"run_id": c.run_id, "stage": c.stage, "key": c.key, "current": c.current, "message": c.message}
                for c in self.plan.conflicts
            ],
            "failures": [{"run_id": f.run_id, "error": f.error} for f in self.failures],
        }


@dataclass(frozen=True)
class UndoSummary:
    runs_planned: int
    tags_planned: int
    runs_written: int
    runs_failed: int
    skipped: int
    missing_runs: int
    cut_lines: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # the fields, in the order the JSON has them


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

    @property
    def failures(self) -> tuple[Any, ...]:
        return self.result.failures if self.result else ()

    @property
    def changes(self) -> list[TagWrite]:
        """The tags to restore, run by run (``new`` None: the tag is deleted)."""
        return [w for ws in self.plan.writes.values() for w in ws]

    @property
    def summary(self) -> UndoSummary:
        p = self.plan
        return UndoSummary(
            runs_planned=len(p.writes),
            tags_planned=sum(len(w) for w in p.writes.values()),
            runs_written=self.result.runs_written if self.result else 0,
            runs_failed=len(self.failures),
            skipped=len(p.skipped),
            missing_runs=len(p.missing_runs),
            cut_lines=len(p.cut),
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": "hpohash.undo/1",
            "dry_run": self.dry_run,
            "journal": self.journal,
            "summary": self.summary.as_dict(),
            "changes": [{"run_id": w.run_id, "key": w.key, "old": w.old, "new": w.new} for w in self.changes],
            "skipped": [
                {"run_id": e.run_id, "key": e.key, "journal_new": e.new, "current": cur} for e, cur in self.plan.skipped
            ],
            "missing_runs": list(self.plan.missing_runs),
            "cut_lines": list(self.plan.cut),
            "failures": [{"run_id": f.run_id, "error": f.error} for f in self.failures],
        }
        kept = self.result.not_removed if self.result else ()
        if kept:  # only where the store cannot delete tags: every other undo report is as it always was
            out["not_removed"] = [{"run_id": w.run_id, "key": w.key, "value": w.old} for w in kept]
        return out


@dataclass(frozen=True)
class DiffSide:
    """One side of a diff as reported: what it claims, what its configs recompute to, and why they differ."""

    label: str
    run_id: str | None
    stored_study_key_hash: str | None
    study_key_hash: str | None
    recomputed_study_key_hash: str | None
    stored_trial_key_hash: str | None
    trial_key_hash: str | None
    recomputed_trial_key_hash: str | None
    cause: str | None
    model: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "run_id": self.run_id,
            "stored_study_key_hash": self.stored_study_key_hash,
            "study_key_hash": self.study_key_hash,
            "recomputed_study_key_hash": self.recomputed_study_key_hash,
            "stored_trial_key_hash": self.stored_trial_key_hash,
            "trial_key_hash": self.trial_key_hash,
            "recomputed_trial_key_hash": self.recomputed_trial_key_hash,
            "cause": self.cause,
            "model": self.model,
        }


@dataclass(frozen=True)
class Difference:
    """One field that differs: its dotted path and each side's value (``<absent>`` where it has none)."""

    path: str
    a: Any
    b: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class DiffReport:
    """Two sides and why they do (not) share a study or trial hash (``hpohash.diff/1``)."""

    a: DiffSide
    b: DiffSide
    same_study: bool
    #: ``None`` unless both sides claim a trial hash
    same_trial: bool | None
    differences: tuple[Difference, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.same_study and self.same_trial is not False

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": "hpohash.diff/1",
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "same_study": self.same_study,
            "same_trial": self.same_trial,
            "differences": [d.as_dict() for d in self.differences],
            "notes": list(self.notes),
        }
