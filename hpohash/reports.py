"""Typed reports: what each command returns to a Python caller and hands to a renderer.

Renderers receive one of these, never the study model, a plan and a write result separately; each
report's ``as_dict()`` is its public JSON shape (the ``hpohash.*/1`` schemas of SPEC §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpohash.apply import ApplyResult, UndoPlan, backfill_report, undo_report
from hpohash.audit import Finding
from hpohash.plan import Conflict, PlannedChange
from hpohash.rules import ERROR


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
