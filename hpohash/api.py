"""The public Python API: each command as a plain function, keyword arguments named after the CLI's
options, typed reports back, typed errors (``hpohash.errors``) instead of exit codes.

A pipeline can verify its own sweep at the end of a run, and a notebook can plan and apply a
backfill, without shelling out; the CLI is these functions plus options, rendering and exit codes::

    import hpohash
    report = hpohash.verify(tracking_uri="sqlite:///mlflow.db", experiments=["hpohash-demo"])
    print(report.ok, len(report.findings))
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hpohash.errors import HpohashError, UsageError
from hpohash.githistory import DEFAULT_HISTORY_MIB
from hpohash.perf import gc_paused
from hpohash.reports import (
    BackfillPlan,
    BackfillReport,
    DiffReport,
    StudyGroup,
    UndoReport,
    VerifyReport,
    experiments_with_runs,
)
from hpohash.text import parse_since

ProgressFn = Callable[[str, int, int | None], None]
#: asked before anything is written, with what would be written ("20 tags on 4 runs to …"); False aborts
ConfirmFn = Callable[[str], bool]


class Aborted(HpohashError):
    """The confirmation was declined: nothing was written (exit 1, as a declined prompt always was)."""

    exit_code = 1
    declined = True


def read_scope(
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] = (),
    experiment_ids: Sequence[str] = (),
    parent_run_id: str | None = None,
    config_dirs: Sequence[str] = (),
    config_history: bool = True,
    config_rev: str | None = None,
    max_history_mib: int = DEFAULT_HISTORY_MIB,
    tags_config: str | None = None,
    model: str | None = None,
    include_deleted: bool = False,
    since_ms: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Any, Any]:
    """Open the store and read the scope (studies, orphans) the same way for every command."""
    from hpohash.loading import load_scope
    from hpohash.tags import registry_for

    registry = registry_for(tags_config)  # a bad tags file fails before any connection is made
    from hpohash.tracking import Tracking

    tracking = Tracking(tracking_uri)
    scope = load_scope(
        tracking,
        registry,
        experiment_names=experiments,
        experiment_ids=experiment_ids,
        parent_run_id=parent_run_id,
        include_deleted=include_deleted,
        config_dirs=config_dirs,
        config_history=config_history,
        config_rev=config_rev,
        max_history_mib=max_history_mib,
        model_override=model,
        progress=progress,
        since_ms=since_ms,
    )
    return tracking, scope


def verify_scope(scope: Any, *, select: Sequence[str] = (), ignore: Sequence[str] = ()) -> VerifyReport:
    """The findings of an already-read scope (one study's plan alive at a time), selected."""
    from hpohash.audit import audit_per_study
    from hpohash.selection import Selection

    selection = Selection.parse(select, ignore)
    with gc_paused():
        findings = selection.filter(audit_per_study(scope))
        return VerifyReport.from_scope(scope, findings)


def verify(
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] = (),
    experiment_ids: Sequence[str] = (),
    parent_run_id: str | None = None,
    config_dirs: Sequence[str] = (),
    config_history: bool = True,
    config_rev: str | None = None,
    max_history_mib: int = DEFAULT_HISTORY_MIB,
    tags_config: str | None = None,
    model: str | None = None,
    include_deleted: bool = False,
    since: str | None = None,
    select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    progress: ProgressFn | None = None,
) -> VerifyReport:
    """Every parent, trial and refit whose hash or link tags are wrong, and why (SPEC §5 ``verify``).

    ``since`` (``"1d"``, ``"12h"``, ``"2026-11-20"``) audits only the studies with a run started since
    then, each read whole. ``select``/``ignore`` take finding codes by prefix, as ``--select``.
    """
    from hpohash.selection import Selection

    Selection.parse(select, ignore)  # a bad code is a usage error before any connection
    since_ms = None
    if since is not None:
        if parent_run_id:
            raise UsageError("--since excludes --parent-run-id")
        since_ms = parse_since(since)
    _, scope = read_scope(
        tracking_uri=tracking_uri,
        experiments=experiments,
        experiment_ids=experiment_ids,
        parent_run_id=parent_run_id,
        config_dirs=config_dirs,
        config_history=config_history,
        config_rev=config_rev,
        max_history_mib=max_history_mib,
        tags_config=tags_config,
        model=model,
        include_deleted=include_deleted,
        since_ms=since_ms,
        progress=progress,
    )
    return verify_scope(scope, select=select, ignore=ignore)


def all_experiment_ids(tracking_uri: str | None = None) -> tuple[str, ...]:
    """Every active experiment of the store (``--check-all`` with no experiment named)."""
    from hpohash.tracking import Tracking

    tracking = Tracking(tracking_uri)
    ids = tuple(tracking.all_experiment_ids())
    if not ids:
        raise UsageError(f"--check-all: no experiments at {tracking.display_uri}")
    return ids


def _study_groups(scope: Any) -> tuple[StudyGroup, ...]:
    return tuple(
        StudyGroup(s.parent.run_id, s.v2_hash, s.model, tuple(m.run_id for m in s.members())) for s in scope.studies
    )


def plan_from_scope(tracking: Any, scope: Any, *, trial_key_schema: str = "auto", force: bool = False) -> BackfillPlan:
    """The backfill plan of an already-read scope, with the errors it cannot fix as conflicts."""
    from hpohash.audit import audit, remaining_conflicts
    from hpohash.plan import Plan, build_plan, within_limits

    with gc_paused():
        plan = build_plan(scope, trial_key_schema=trial_key_schema, force=force)
        findings = audit(scope, plan)
        # errors no planned change fixes are reported as conflicts: what is left is said, and the
        # exit code agrees with verify's
        plan = Plan(plan.changes, plan.conflicts + remaining_conflicts(findings, plan))
        if hasattr(tracking, "capabilities"):  # what the backend would refuse: a conflict, never a failed write
            plan = within_limits(plan, tracking.capabilities, tracking.tag_counts)
    return BackfillPlan(
        tracking_uri=scope.tracking_uri,
        experiments=tuple(e.name for e in scope.experiments),
        changes=plan.changes,
        conflicts=plan.conflicts,
        findings=tuple(findings),
        studies=_study_groups(scope),
        experiments_with_runs=experiments_with_runs(scope),
        tracking=tracking,
    )


def plan_backfill(
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] = (),
    experiment_ids: Sequence[str] = (),
    parent_run_id: str | None = None,
    config_dirs: Sequence[str] = (),
    config_history: bool = True,
    config_rev: str | None = None,
    max_history_mib: int = DEFAULT_HISTORY_MIB,
    tags_config: str | None = None,
    model: str | None = None,
    trial_key_schema: str = "auto",
    force: bool = False,
    progress: ProgressFn | None = None,
) -> BackfillPlan:
    """What ``backfill`` would write (SPEC §5 rules 1–5); nothing is written."""
    tracking, scope = read_scope(
        tracking_uri=tracking_uri,
        experiments=experiments,
        experiment_ids=experiment_ids,
        parent_run_id=parent_run_id,
        config_dirs=config_dirs,
        config_history=config_history,
        config_rev=config_rev,
        max_history_mib=max_history_mib,
        tags_config=tags_config,
        model=model,
        progress=progress,
    )
    return plan_from_scope(tracking, scope, trial_key_schema=trial_key_schema, force=force)


def confirmation(yes: bool, ask: Callable[[str], bool], what: str = "--yes") -> ConfirmFn:
    """Writes need ``yes`` or an interactive answer; without a terminal there is nobody to ask."""

    def confirm(summary: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UsageError(f"not writing {summary}: pass {what} to apply (or --dry-run to only show the plan)")
        return ask(summary)

    return confirm


def _journal_path(journal: str | Path | None) -> Path:
    from hpohash.writes import default_journal_path

    return Path(journal) if journal else default_journal_path()


def apply(
    plan: BackfillPlan,
    *,
    journal: str | Path | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    confirm: ConfirmFn | None = None,
) -> BackfillReport:
    """Write a plan: confirm, journal every run's lines (fsynced) before its one ``log_batch``, report.

    ``confirm`` (when given) is asked before the journal is created; declining raises :class:`Aborted`.
    """
    from hpohash.writes import Journal, changes_to_writes, journal_header, write_runs

    writes = changes_to_writes(plan.changes)
    if not writes:
        return BackfillReport(plan, dry_run=False)
    tracking = plan.tracking
    if tracking is None:
        raise UsageError("this plan was not read from a store (plan_backfill() makes one that can be applied)")
    if confirm is not None and not confirm(f"{len(plan.changes)} tags on {len(writes)} runs to {tracking.display_uri}"):
        raise Aborted("aborted: nothing written")
    jr = Journal(_journal_path(journal), journal_header("backfill", tracking, list(plan.experiments)))
    try:
        result = write_runs(tracking, writes, jr, workers=workers, progress=progress)
    finally:
        jr.close()
    return BackfillReport(plan, dry_run=False, journal=str(jr.path), result=result)


def undo(
    journals: Sequence[str | Path],
    *,
    tracking_uri: str | None = None,
    dry_run: bool = False,
    journal: str | Path | None = None,
    workers: int | None = None,
    confirm: ConfirmFn | None = None,
    preview: Callable[[UndoReport], None] | None = None,
) -> UndoReport:
    """Restore every journaled tag still holding the value written, newest first; journal the undo."""
    from hpohash.tracking import Tracking
    from hpohash.writes import Journal, check_journal_path, journal_header, plan_undo, read_journal, write_runs

    if journal is not None:
        check_journal_path(journal)
    files = [read_journal(j) for j in journals]
    uris = {f.header.get("tracking_uri") for f in files}
    tracking = Tracking(tracking_uri)
    if len(uris) > 1 or (uris and tracking.display_uri not in uris):
        raise UsageError(
            f"journal was written against {', '.join(sorted(str(u) for u in uris))}, not {tracking.display_uri}: "
            "pass the same --tracking-uri"
        )
    run_ids = [e.run_id for f in files for e in f.entries] + [f.cut.run_id for f in files if f.cut and f.cut.run_id]
    current = {rid: r.tags for rid, r in tracking.runs_by_id(run_ids).items()}
    plan = plan_undo(files, current)
    if not plan.writes or dry_run:
        return UndoReport(plan, dry_run=dry_run)  # nothing to restore is not a dry run (as backfill)
    if preview is not None:
        preview(UndoReport(plan, dry_run=True))
    n = sum(len(w) for w in plan.writes.values())
    if confirm is not None and not confirm(f"{n} tag restores on {len(plan.writes)} runs to {tracking.display_uri}"):
        raise Aborted("aborted: nothing written")
    experiments = sorted({str(x) for f in files for x in f.header.get("experiments", [])})
    jr = Journal(_journal_path(journal), journal_header("undo", tracking, experiments))
    try:
        result = write_runs(tracking, plan.writes, jr, workers=workers)
    finally:
        jr.close()
    return UndoReport(plan, dry_run=False, journal=str(jr.path), result=result)


def diff(
    run_a: str,
    run_b: str | None = None,
    *,
    tracking_uri: str | None = None,
    config_dirs: Sequence[str] = (),
    config_history: bool = True,
    config_rev: str | None = None,
    max_history_mib: int = DEFAULT_HISTORY_MIB,
    against_config_dir: bool = False,
    stage: str | None = None,
    model: str | None = None,
    tags_config: str | None = None,
    warn: Callable[[Sequence[str]], None] | None = None,
) -> DiffReport:
    """Why two runs (a run and its parent, or a run and configs on disk) do (not) share a hash."""
    from hpohash import sources as src
    from hpohash.classify import PARENT
    from hpohash.diff import diff_report, parent_side_for, side_from_configs, side_from_run
    from hpohash.loading import load_run_side, open_sources
    from hpohash.tags import registry_for
    from hpohash.tracking import Tracking

    registry = registry_for(tags_config)
    sources = open_sources(config_dirs, history=config_history, rev=config_rev, max_history_mib=max_history_mib)
    if sources is not None and warn is not None:
        warn(sources.warnings)
    if against_config_dir and (run_b or not config_dirs):
        raise UsageError("--against-config-dir goes with one run and --config-dir")
    tracking = Tracking(tracking_uri)
    side_a = load_run_side(tracking, registry, run_a, sources=sources)
    a = side_from_run(side_a, registry, f"run {run_a}")
    if run_b:
        b = side_from_run(load_run_side(tracking, registry, run_b, sources=sources), registry, f"run {run_b}")
    elif sources is not None and (side_a.role == PARENT or against_config_dir):
        chosen = model or side_a.study.model
        if not chosen:
            raise UsageError(f"no model for the --config-dir side: run {run_a} names none; pass --model")
        try:
            disk = sources.default_choice(stage)
        except src.SourceError as exc:
            raise UsageError(str(exc)) from exc
        hp = side_a.study.hp(side_a.run) if side_a.role != PARENT else None
        b = side_from_configs(disk, chosen, f"config-dir {', '.join(config_dirs)}", a, hp)
    else:
        if side_a.role == PARENT:
            raise UsageError(f"run '{run_a}' is a parent: give a second run or --config-dir DIR")
        parent_id = side_a.study.parent.run_id
        if parent_id == side_a.run.run_id:
            raise UsageError(f"run '{run_a}' names no parent run that exists")
        side_p = load_run_side(tracking, registry, parent_id, sources=sources)
        b = parent_side_for(side_from_run(side_p, registry, f"parent {parent_id}"), side_p, side_a, a)
    return diff_report(a, b)
