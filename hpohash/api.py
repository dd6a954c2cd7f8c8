"""The public Python API, and the one place every command is assembled: each command is a function
taking a :class:`~hpohash.request.Request` (or the same keywords, which build one) and returning a
typed report; errors are typed (``hpohash.errors``), never exit codes.

A pipeline can verify its own sweep at the end of a run, and a notebook can plan and apply a
backfill, without shelling out; the CLI is these functions plus options, rendering and exit codes::

    import hpohash
    report = hpohash.verify(tracking_uri="sqlite:///mlflow.db", experiments=["hpohash-demo"])
    print(report.ok, len(report.findings))

Each call runs in a context of its own (``hpohash.context``: its write ledger, the secrets it masks,
the GC pause), and every error leaves it as one of ``HpohashError``'s family, translated here and
nowhere else.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from hpohash.context import call_context
from hpohash.errors import ArgumentError, BackendError, HpohashError, UsageError, literal, missing_driver
from hpohash.perf import gc_paused
from hpohash.redact import redact
from hpohash.reports import (
    BackfillPlan,
    BackfillReport,
    DiffReport,
    StudyGroup,
    UndoReport,
    VerifyReport,
    experiments_with_runs,
)
from hpohash.request import Request, Store, request_of

ProgressFn = Callable[[str, int, int | None], None]
#: asked before anything is written, with what would be written ("20 tags on 4 runs to …"); False aborts
ConfirmFn = Callable[[str], bool]
#: receives the warnings of a read (unreadable config history, …) as soon as they are known
WarnFn = Callable[[Sequence[str]], None]

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Aborted", "Request", "Store", "apply", "confirmation", "diff", "hash_configs", "plan_backfill", "rules"]


class Aborted(HpohashError):
    """The confirmation was declined: nothing was written (exit 1, as a declined prompt always was)."""

    exit_code = 1
    declined = True


def boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """The api boundary: the call runs in a context of its own (or in the one its caller opened, as the
    CLI does), and any exception that is not already an ``HpohashError`` but has a meaning (the
    backend failed, a driver is missing) becomes one here, once."""

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with call_context():
            try:
                return fn(*args, **kwargs)
            except HpohashError:
                raise
            except Exception as exc:
                known = translate(exc)
                if known is None:
                    raise
                raise known from exc

    return call


#: the modules whose exceptions mean the tracking backend (or the way to it) failed
BACKEND_MODULES = frozenset({"mlflow", "requests", "sqlalchemy"})


def _from_backend(exc: BaseException) -> bool:
    """Raised by MLflow, the HTTP stack or the SQL layer (judged by the class's module: nothing imported)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return any(cls.__module__.split(".")[0] in BACKEND_MODULES for cls in type(exc).__mro__)


def translate(exc: BaseException) -> HpohashError | None:
    """The one translation of a foreign exception into the family (the api boundary calls it): a
    missing database driver is a usage error, an MLflow/HTTP/SQL failure that escaped classification
    is the backend's; anything else is not known here (a bug: ``None``)."""
    if isinstance(exc, HpohashError):
        return exc
    driver = missing_driver(exc)
    if driver is not None:
        return driver
    if _from_backend(exc):
        text = redact(" ".join(str(exc).split())[:300])
        return BackendError(f"tracking backend failed: {type(exc).__name__}: {text}")
    return None


def _warn(warn: WarnFn | None, lines: Sequence[str]) -> None:
    if warn is not None and lines:
        warn(list(lines))


def _read(request: Request, progress: ProgressFn | None, warn: WarnFn | None) -> tuple[Any, Any]:
    """Open the store and read the request's scope, the same way for every command."""
    tracking = request.store.open()
    experiment_ids = request.experiment_ids
    if request.check_all and not request.names_experiments:
        experiment_ids = tuple(tracking.all_experiment_ids())
        if not experiment_ids:
            raise ArgumentError("{}: no experiments at " + literal(tracking.display_uri), "check_all")
    from hpohash.loading import load_scope

    # the scope's records are long-lived: each full collection while they are built would walk them all
    with gc_paused():
        scope = load_scope(
            tracking,
            request.registry,
            experiment_names=request.experiments,
            experiment_ids=experiment_ids,
            parent_run_id=request.parent_run_id,
            include_deleted=request.include_deleted,
            config_dirs=request.config_dirs,
            config_history=request.config_history,
            config_rev=request.config_rev,
            max_history_mib=request.max_history_mib,
            model_override=request.model,
            progress=progress,
            since_ms=request.since_ms,
        )
    _warn(warn, scope.warnings)
    return tracking, scope


@boundary
def verify(
    request: Request | None = None,
    /,
    *,
    progress: ProgressFn | None = None,
    warn: WarnFn | None = None,
    **keywords: Any,
) -> VerifyReport:
    """Every parent, trial and refit whose hash or link tags are wrong, and why (SPEC §5 ``verify``).

    Keywords are the request's (``tracking_uri``, ``experiments``, ``since="1d"``, ``select`` …).
    """
    from hpohash.audit import audit_per_study

    request = request_of(request, keywords)
    tracking, scope = _read(request, progress, warn)
    with gc_paused():
        findings = request.selection.filter(audit_per_study(scope, tracking, release=True))
        return VerifyReport.from_scope(scope, findings)


def _study_groups(scope: Any) -> tuple[StudyGroup, ...]:
    return tuple(
        StudyGroup(s.parent.run_id, s.v2_hash, s.model, tuple(m.run_id for m in s.members())) for s in scope.studies
    )


@boundary
def plan_backfill(
    request: Request | None = None,
    /,
    *,
    trial_key_schema: str = "auto",
    force: bool = False,
    progress: ProgressFn | None = None,
    warn: WarnFn | None = None,
    **keywords: Any,
) -> BackfillPlan:
    """What ``backfill`` would write (SPEC §5 rules 1–5), with the errors it cannot fix as conflicts;
    nothing is written."""
    from hpohash.audit import audit, remaining_conflicts
    from hpohash.plan import Plan, build_plan, within_limits

    request = request_of(request, keywords)
    tracking, scope = _read(request, progress, warn)
    with gc_paused():
        plan = build_plan(scope, trial_key_schema=trial_key_schema, force=force)
        findings = audit(scope, plan)
        # errors no planned change fixes are reported as conflicts: what is left is said, and the
        # exit code agrees with verify's
        plan = Plan(plan.changes, plan.conflicts + remaining_conflicts(findings, plan))
        # what the backend would refuse is a conflict, never a failed write
        plan = within_limits(plan, tracking.capabilities, tracking.tag_counts)
    note = tracking.undo_limit_note(plan.changes)  # said before anything is written
    _warn(warn, [note] if note else [])
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


def confirmation(yes: bool, ask: Callable[[str], bool], what: str = "yes") -> ConfirmFn:
    """Writes need ``yes`` or an interactive answer; without a terminal there is nobody to ask."""

    def confirm(summary: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise ArgumentError(
                "not writing " + literal(summary) + ": pass {} to apply (or {} to only show the plan)", what, "dry_run"
            )
        return ask(summary)

    return confirm


def _journal_path(journal: str | Path | None) -> Path:
    from hpohash.writes import default_journal_path

    return Path(journal) if journal else default_journal_path()


@boundary
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


@boundary
def undo(
    journals: Sequence[str | Path],
    request: Request | None = None,
    /,
    *,
    dry_run: bool = False,
    journal: str | Path | None = None,
    workers: int | None = None,
    confirm: ConfirmFn | None = None,
    preview: Callable[[UndoReport], None] | None = None,
    **keywords: Any,
) -> UndoReport:
    """Restore every journaled tag still holding the value written, newest first; journal the undo.

    Only the request's store is used (``tracking_uri=`` in the keyword form).
    """
    from hpohash.writes import Journal, check_journal_path, journal_header, plan_undo, read_journal, write_runs

    request = request_of(request, keywords)
    if journal is not None:
        check_journal_path(journal)
    files = [read_journal(j) for j in journals]
    uris = {f.header.get("tracking_uri") for f in files}
    tracking = request.store.open()
    if len(uris) > 1 or (uris and tracking.display_uri not in uris):
        raise ArgumentError(
            "journal was written against "
            + literal(", ".join(sorted(str(u) for u in uris)))
            + ", not "
            + literal(tracking.display_uri)
            + ": pass the same {}",
            "tracking_uri",
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


@boundary
def diff(
    run_a: str,
    run_b: str | None = None,
    request: Request | None = None,
    /,
    *,
    against_config_dir: bool = False,
    stage: str | None = None,
    warn: WarnFn | None = None,
    **keywords: Any,
) -> DiffReport:
    """Why two runs (a run and its parent, or a run and configs on disk) do (not) share a hash.

    Of the request, the store, the config sources, the tag keys and the model are used.
    """
    from hpohash.classify import PARENT
    from hpohash.diff import diff_report, parent_side_for, side_from_configs, side_from_run
    from hpohash.loading import load_run_side, open_sources

    request = request_of(request, keywords)
    registry = request.registry
    config_dirs = request.config_dirs
    sources = open_sources(
        config_dirs, history=request.config_history, rev=request.config_rev, max_history_mib=request.max_history_mib
    )
    if sources is not None:
        _warn(warn, sources.warnings)
    if against_config_dir and (run_b or not config_dirs):
        raise ArgumentError("{} goes with one run and {}", "against_config_dir", "config_dirs")
    tracking = request.store.open()
    side_a = load_run_side(tracking, registry, run_a, sources=sources)
    a = side_from_run(side_a, registry, f"run {run_a}")
    if run_b:
        b = side_from_run(load_run_side(tracking, registry, run_b, sources=sources), registry, f"run {run_b}")
    elif sources is not None and (side_a.role == PARENT or against_config_dir):
        chosen = request.model or side_a.study.model
        if not chosen:
            raise ArgumentError(
                "no model for the {} side: run " + literal(run_a) + " names none; pass {}", "config_dirs", "model"
            )
        disk = sources.default_choice(stage)  # a SourceError is already a usage error
        hp = side_a.study.hp(side_a.run) if side_a.role != PARENT else None
        b = side_from_configs(disk, chosen, f"config-dir {', '.join(config_dirs)}", a, hp)
    else:
        if side_a.role == PARENT:
            raise ArgumentError("run '" + literal(run_a) + "' is a parent: give a second run or {} DIR", "config_dirs")
        parent_id = side_a.study.parent.run_id
        if parent_id == side_a.run.run_id:
            raise UsageError(f"run '{run_a}' names no parent run that exists")
        side_p = load_run_side(tracking, registry, parent_id, sources=sources)
        b = parent_side_for(side_from_run(side_p, registry, f"parent {parent_id}"), side_p, side_a, a)
    return diff_report(a, b)


def _hyperparameters(values: Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Trial hyperparameters: JSON objects as text (the CLI's form) or mappings, within the input limits."""
    import json

    from hpohash.limits import LimitError, check_value, load_json

    out = []
    for i, value in enumerate(values, 1):
        where = "{} #" + str(i)
        try:
            hp = load_json(value) if isinstance(value, str) else dict(value)
            if not isinstance(hp, dict):
                raise ArgumentError(where + f": expected a JSON object, got {type(hp).__name__}", "hyperparameters")
            check_value(hp)
        except json.JSONDecodeError as exc:
            raise ArgumentError(where + ": not valid JSON: " + literal(str(exc)), "hyperparameters") from exc
        except LimitError as exc:
            raise ArgumentError(where + ": " + literal(str(exc)), "hyperparameters") from exc
        out.append(hp)
    return out


@boundary
def hash_configs(
    *,
    model: str,
    config_dir: str | None = None,
    stage: str | None = None,
    data: str | None = None,
    hpo: str | None = None,
    train: str | None = None,
    benchmark: str | None = None,
    hyperparameters: Sequence[str | Mapping[str, Any]] = (),
    trial_key_schema: str = "2.0",
) -> dict[str, Any]:
    """The study and trial hashes of config files on disk (``hpohash.hash/1``); no tracking store."""
    from hpohash import configs as cfg
    from hpohash import sources as src
    from hpohash.hashing import hash_report

    if config_dir and any((data, hpo, train, benchmark)):
        raise ArgumentError("give either {} or {}/{}/{}, not both", "config_dir", "data", "hpo", "train")
    if stage and not config_dir:
        raise ArgumentError("{} goes with {}", "stage", "config_dir")
    try:
        if config_dir:
            cs = src.ConfigSources.read([config_dir], history=False).default_choice(stage)
        elif data and hpo and train:
            cs = cfg.load_config_files(data, hpo, train, benchmark)
        else:
            raise ArgumentError("give {} DIR, or all of {}, {} and {}", "config_dir", "data", "hpo", "train")
    except cfg.ConfigError as exc:
        raise UsageError(f"config {exc}") from exc
    if not model.strip():
        raise ArgumentError("{} must not be empty", "model")
    return hash_report(
        cs.data,
        cs.hpo,
        cs.train,
        model,
        benchmark=cs.benchmark,
        hyperparameters=_hyperparameters(hyperparameters),
        trial_key_schema=trial_key_schema,
    )


def rules(code: str | None = None) -> list[Any]:
    """The finding codes' rules: all of them, or the one ``code`` names."""
    from hpohash.rules import RULES

    if code is None:
        return list(RULES.values())
    wanted = code.strip().upper()
    if wanted not in RULES:
        raise UsageError(f"rules {code}: no such finding code (codes: {', '.join(RULES)})")
    return [RULES[wanted]]


@boundary
def demo(request: Request | None = None, /, **keywords: Any) -> dict[str, Any]:
    """Write the demo experiment into the request's store (created if missing); what it wrote."""
    from hpohash.demo import EXPERIMENT, write_demo

    request = request_of(request, keywords)
    tracking = request.store.open(create=True)
    created = write_demo(tracking)
    created["tracking_uri"] = tracking.display_uri
    created["experiment"] = EXPERIMENT
    return created
