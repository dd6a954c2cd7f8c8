"""The thin Click layer: options in, one call into the package, one renderer out, one exit code.

Heavy imports (mlflow, rich) happen inside commands so ``--help`` and ``hash`` start fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from hpohash import __version__
from hpohash.errors import EXIT_BACKEND, EXIT_FINDINGS, EXIT_USAGE, HpohashError, UsageError
from hpohash.perf import gc_paused

FORMATS = ("table", "json", "markdown")


def _renderer(fmt: str) -> Any:
    """The renderer module for one output format (imported on demand: Rich only when needed)."""
    if fmt == "json":
        from hpohash.render import json_ as mod
    elif fmt == "markdown":
        from hpohash.render import markdown as mod
    else:
        from hpohash.render import table as mod
    return mod


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--verbose", "-v", is_flag=True, help="Show tracebacks and debug detail on errors.")(f)
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the result.")(f)
    f = click.option(
        "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format."
    )(f)
    return f


@dataclass(frozen=True)
class StoreArgs:
    """Where to read and what: the options every command that scans experiments shares."""

    tracking_uri: str | None
    experiment_names: tuple[str, ...]
    experiment_ids: tuple[str, ...]
    tags_config: str | None
    config_dir: str | None
    parent_run_id: str | None
    model: str | None


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared store options and hand them to the command as one ``store: StoreArgs``."""

    @functools.wraps(f)
    def bundled(
        *args: Any,
        tracking_uri: str | None,
        experiment_names: tuple[str, ...],
        experiment_ids: tuple[str, ...],
        tags_config: str | None,
        config_dir: str | None,
        parent_run_id: str | None,
        model: str | None,
        **kwargs: Any,
    ) -> Any:
        store = StoreArgs(tracking_uri, experiment_names, experiment_ids, tags_config, config_dir, parent_run_id, model)
        return f(*args, store=store, **kwargs)

    g: Callable[..., Any] = bundled
    g = click.option("--model", help="Model for studies whose runs name none (last resort).")(g)
    g = click.option("--parent-run-id", help="One study only: its parent run id.")(g)
    g = click.option(
        "--config-dir",
        type=click.Path(file_okay=False, path_type=str),
        help="Configs (data/hpo/train[/benchmark].yaml) for runs that logged none.",
    )(g)
    g = click.option("--tags-config", type=str, help="Pipeline tags YAML overriding the default tag keys.")(g)
    g = click.option("--experiment-id", "experiment_ids", multiple=True, help="Experiment id (repeatable).")(g)
    g = click.option(
        "--experiment-name", "-e", "experiment_names", multiple=True, help="Experiment name (repeatable)."
    )(g)
    g = click.option(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's local sqlite:///mlflow.db).",
    )(g)
    return output_options(g)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpohash")
def cli() -> None:
    """Audit and repair the study/trial hash and link tags of HPO runs in MLflow.

    \b
    Examples:
      hpohash verify -e my-hpo-experiment            # every broken run, and why
      hpohash backfill -e my-hpo-experiment --dry-run
      hpohash hash --config-dir configs/ --model distilbert-base-uncased
    """


# ------------------------------------------------------------------------------------------ hash


def _parse_hyperparameters(values: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for i, text in enumerate(values, 1):
        try:
            hp = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--hyperparameters #{i}: not valid JSON: {exc}") from exc
        if not isinstance(hp, dict):
            raise UsageError(f"--hyperparameters #{i}: expected a JSON object, got {type(hp).__name__}")
        out.append(hp)
    return out


@cli.command("hash")
@click.option("--config-dir", type=str, help="Directory with data/hpo/train[/benchmark] .yaml|.yml|.json.")
@click.option("--data", "data_file", type=str, help="Data config file (instead of --config-dir).")
@click.option("--hpo", "hpo_file", type=str, help="HPO config file.")
@click.option("--train", "train_file", type=str, help="Train config file.")
@click.option("--benchmark", "benchmark_file", type=str, help="Benchmark config file (v1/family hash only).")
@click.option("--model", required=True, help="Full backbone name, e.g. distilbert-base-uncased.")
@click.option("--hyperparameters", "hyperparameters", multiple=True, help="Trial hyperparameters as JSON (repeatable).")
@click.option(
    "--trial-key-schema",
    type=click.Choice(["1.0", "2.0"]),
    default="2.0",
    show_default=True,
    help="Inner schema of the trial key to print as trial_key_hash.",
)
@click.option("--show-key", is_flag=True, help="Also print the canonical v2 study-key payload.")
@output_options
def hash_cmd(
    config_dir: str | None,
    data_file: str | None,
    hpo_file: str | None,
    train_file: str | None,
    benchmark_file: str | None,
    model: str,
    hyperparameters: tuple[str, ...],
    trial_key_schema: str,
    show_key: bool,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Compute study and trial hashes from config files on disk (no tracking server needed).

    \b
    Examples:
      hpohash hash --config-dir configs/ --model distilbert-base-uncased
      hpohash hash --data d.yaml --hpo h.yaml --train t.yaml --model bert \\
                   --hyperparameters '{"learning_rate": 2e-5, "batch_size": 16}' --format json
    """
    from hpohash import configs as cfg
    from hpohash.hashing import hash_report

    files = (data_file, hpo_file, train_file)
    if config_dir and any(files + (benchmark_file,)):
        raise UsageError("give either --config-dir or --data/--hpo/--train, not both")
    try:
        if config_dir:
            cs = cfg.load_config_dir(config_dir)
        elif all(files):
            cs = cfg.load_config_files(data_file, hpo_file, train_file, benchmark_file)  # type: ignore[arg-type]
        else:
            raise UsageError("give --config-dir DIR, or all of --data, --hpo and --train")
    except cfg.ConfigError as exc:
        raise UsageError(f"config {exc}") from exc
    if not model.strip():
        raise UsageError("--model must not be empty")
    report = hash_report(
        cs.data,
        cs.hpo,
        cs.train,
        model,
        benchmark=cs.benchmark,
        hyperparameters=_parse_hyperparameters(hyperparameters),
        trial_key_schema=trial_key_schema,
    )
    _renderer(fmt).render_hash(report, show_key=show_key)
    return 0


# ------------------------------------------------------------------------------------------ reading


def _registry(tags_config: str | None) -> Any:
    from hpohash.tags import TagRegistry, load_tags_config

    return load_tags_config(tags_config) if tags_config else TagRegistry()


def parse_since(text: str, *, now: float | None = None) -> int:
    """``--since`` as epoch milliseconds: a duration back from now (``90m``, ``12h``, ``1d``, ``2w``)
    or an ISO date/time (``2026-11-20``, ``2026-11-20T06:00``; UTC unless it names a zone)."""
    import re
    import time
    from datetime import UTC, datetime

    value = text.strip()
    m = re.fullmatch(r"(\d+)\s*([smhdw])", value.lower())
    if m:
        seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return int(((time.time() if now is None else now) - seconds) * 1000)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {text!r}: expected a duration like 1d, 12h, 30m, 2w or a date like 2026-11-20[T06:00]"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _load_scope(
    store: StoreArgs, *, include_deleted: bool = False, show_progress: bool = False, since_ms: int | None = None
) -> Any:
    """Open the store and read the scope the same way for every command."""
    registry = _registry(store.tags_config)  # a bad tags file fails before any connection is made
    from hpohash.render.progress import progress_reporter
    from hpohash.study import load_scope
    from hpohash.tracking import Tracking

    tracking = Tracking(store.tracking_uri)
    with progress_reporter(show_progress) as progress:
        scope = load_scope(
            tracking,
            registry,
            experiment_names=store.experiment_names,
            experiment_ids=store.experiment_ids,
            parent_run_id=store.parent_run_id,
            include_deleted=include_deleted,
            config_dir=store.config_dir,
            model_override=store.model,
            progress=progress,
            since_ms=since_ms,
        )
    return tracking, scope


def _interactive(fmt: str, quiet: bool) -> bool:
    return fmt == "table" and not quiet and sys.stderr.isatty()


# ------------------------------------------------------------------------------------------ verify


@cli.command("verify")
@click.option("--check-all", is_flag=True, help="Check every study of the experiments (the default).")
@click.option("--include-deleted", is_flag=True, help="Also check deleted runs.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option(
    "--since",
    metavar="DURATION|DATE",
    help="Only the studies with a run started since then (1d, 12h, 2026-11-20), each read whole.",
)
@store_options
def verify_cmd(
    check_all: bool,
    include_deleted: bool,
    strict: bool,
    since: str | None,
    store: StoreArgs,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Report every parent, trial and refit run whose hash or link tags are wrong, and why.

    \b
    Exit codes: 0 no errors, 1 errors (or warnings with --strict), 2 usage/input error,
    3 tracking backend failure.
    \b
    Examples:
      hpohash verify -e hpohash-demo
      hpohash verify -e sweeps -e trials --format json
      hpohash verify --parent-run-id 3f2a... --format markdown >> "$GITHUB_STEP_SUMMARY"
      hpohash verify -e sweeps --since 1d             # per pipeline run; a full verify nightly
    """
    from hpohash.audit import audit_per_study, verify_report

    if check_all and store.parent_run_id:
        raise UsageError("--check-all and --parent-run-id exclude each other")
    if since is not None and (check_all or store.parent_run_id):
        raise UsageError("--since excludes --check-all and --parent-run-id")
    since_ms = parse_since(since) if since is not None else None
    _, scope = _load_scope(
        store, include_deleted=include_deleted, show_progress=_interactive(fmt, quiet), since_ms=since_ms
    )
    with gc_paused():
        findings = audit_per_study(scope)
        report = verify_report(scope, findings)
    _renderer(fmt).render_verify(report, quiet=quiet)
    summary = report["summary"]
    if summary["errors"] or (strict and summary["warnings"]):
        return 1
    return 0


# ------------------------------------------------------------------------------------------ backfill


def _confirm(yes: bool, what: str) -> None:
    """Writes need --yes or an interactive 'y'; without a terminal there is nobody to ask."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"not writing {what}: pass --yes to apply (or --dry-run to only show the plan)")
    if not click.confirm(f"Write {what}?", default=False, err=True):
        raise click.exceptions.Abort()


def _check_journal_path(path: str | None) -> None:
    """Before anything is read: a journal is never overwritten."""
    if path and Path(path).exists():
        raise UsageError(f"--journal {path}: already exists; journals are never overwritten")


@cli.command("backfill")
@click.option("--dry-run", is_flag=True, help="Show the plan; never write.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--exit-code", is_flag=True, help="With --dry-run: exit 1 when anything is left to backfill.")
@click.option("--force", is_flag=True, help="Also replace stored values of unknown provenance.")
@click.option(
    "--trial-key-schema",
    type=click.Choice(["auto", "1.0", "2.0"]),
    default="auto",
    show_default=True,
    help="Trial-key generation to write (auto: the one the study's correct trial hashes use, else 2.0).",
)
@click.option("--workers", type=click.IntRange(1, 64), help="Concurrent writes (default 8 over http(s), 1 locally).")
@click.option("--journal", "journal_path", help="Journal file (default .hpohash/journal-<UTC time>.jsonl).")
@store_options
def backfill_cmd(
    dry_run: bool,
    yes: bool,
    exit_code: bool,
    force: bool,
    trial_key_schema: str,
    workers: int | None,
    journal_path: str | None,
    store: StoreArgs,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Rewrite the hash and link tags of legacy runs to v2: plan, confirm, journal, write.

    Only tags change; every replaced value is kept under code.legacy.<name>; `hpohash undo JOURNAL`
    restores them.

    \b
    Exit codes: 0 done (or dry run), 1 conflicts or failed writes remain (or, with --exit-code,
    the dry run found changes), 2 usage/input error, 3 tracking backend failure.
    \b
    Examples:
      hpohash backfill -e hpohash-demo --dry-run
      hpohash backfill -e hpohash-demo --yes
      hpohash backfill -e sweeps --dry-run --exit-code     # CI: is anything left to backfill?
    """
    from hpohash.apply import Journal, changes_to_writes, default_journal_path, journal_header, write_runs
    from hpohash.plan import build_plan
    from hpohash.render.progress import progress_reporter

    if exit_code and not dry_run:
        raise UsageError("--exit-code only goes with --dry-run")
    if dry_run and yes:
        raise UsageError("--dry-run and --yes exclude each other")
    _check_journal_path(journal_path)
    tracking, scope = _load_scope(store, show_progress=_interactive(fmt, quiet))
    with gc_paused():
        plan = build_plan(scope, trial_key_schema=trial_key_schema, force=force)
    renderer = _renderer(fmt)
    writes = changes_to_writes(plan.changes)
    result = None
    journal_file = None
    if writes and not dry_run:
        if fmt == "table":
            renderer.render_backfill(scope, plan, dry_run=True, journal=None, result=None, preview=True)
        _confirm(yes, f"{len(plan.changes)} tags on {len(writes)} runs to {tracking.display_uri}")
        journal = Journal(
            Path(journal_path) if journal_path else default_journal_path(),
            journal_header("backfill", tracking, [e.name for e in scope.experiments]),
        )
        journal_file = str(journal.path)
        try:
            with progress_reporter(_interactive(fmt, quiet)) as progress:
                result = write_runs(tracking, writes, journal, workers=workers, progress=progress)
        finally:
            journal.close()
    renderer.render_backfill(scope, plan, dry_run=dry_run or not writes, journal=journal_file, result=result)
    if result is not None and result.backend_failed:
        return 3
    if plan.conflicts or (result is not None and result.failures):
        return 1
    if dry_run and exit_code and plan.changes:
        return 1
    return 0


@cli.command("undo")
@click.argument("journals", nargs=-1, required=True)
@click.option("--tracking-uri", help="Tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--dry-run", is_flag=True, help="Show what would be restored; never write.")
@click.option("--yes", "-y", is_flag=True, help="Restore without asking.")
@click.option("--workers", type=click.IntRange(1, 64), help="Concurrent writes (default 8 over http(s), 1 locally).")
@click.option("--journal", "journal_path", help="Journal for the undo itself (default .hpohash/journal-<time>.jsonl).")
@output_options
def undo_cmd(
    journals: tuple[str, ...],
    tracking_uri: str | None,
    dry_run: bool,
    yes: bool,
    workers: int | None,
    journal_path: str | None,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Restore every tag a backfill journal recorded to its old value, newest first.

    Tags that did not exist before are deleted. A tag changed since the journal was written is left
    alone and reported. The undo writes a journal of its own.

    \b
    Example:
      hpohash undo .hpohash/journal-20261126T120000000000Z.jsonl --yes
    """
    from hpohash.apply import Journal, default_journal_path, journal_header, plan_undo, read_journal, write_runs
    from hpohash.tracking import Tracking

    if dry_run and yes:
        raise UsageError("--dry-run and --yes exclude each other")
    _check_journal_path(journal_path)
    files = [read_journal(j) for j in journals]
    uris = {f.header.get("tracking_uri") for f in files}
    tracking = Tracking(tracking_uri)
    if len(uris) > 1 or (uris and tracking.display_uri not in uris):
        raise UsageError(
            f"journal was written against {', '.join(sorted(str(u) for u in uris))}, not {tracking.display_uri}: "
            "pass the same --tracking-uri"
        )
    run_ids = [e.run_id for f in files for e in f.entries]
    current = {rid: r.tags for rid, r in tracking.runs_by_id(run_ids).items()}
    plan = plan_undo(files, current)
    renderer = _renderer(fmt)
    result = None
    journal_file = None
    if plan.writes and not dry_run:
        if fmt == "table":
            renderer.render_undo(plan, dry_run=True, journal=None, result=None, preview=True)
        n = sum(len(w) for w in plan.writes.values())
        _confirm(yes, f"{n} tag restores on {len(plan.writes)} runs to {tracking.display_uri}")
        experiments = sorted({str(x) for f in files for x in f.header.get("experiments", [])})
        journal = Journal(
            Path(journal_path) if journal_path else default_journal_path(),
            journal_header("undo", tracking, experiments),
        )
        journal_file = str(journal.path)
        try:
            result = write_runs(tracking, plan.writes, journal, workers=workers)
        finally:
            journal.close()
    renderer.render_undo(plan, dry_run=dry_run or not plan.writes, journal=journal_file, result=result)
    if result is not None and result.backend_failed:
        return 3
    if plan.skipped or plan.missing_runs or (result is not None and result.failures):
        return 1
    return 0


# ------------------------------------------------------------------------------------------ diff


@cli.command("diff")
@click.argument("run_a")
@click.argument("run_b", required=False)
@click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--config-dir", help="With one run: compare it with these configs on disk.")
@click.option("--model", help="Model for the --config-dir side (default: the run's model).")
@click.option("--tags-config", type=str, help="Pipeline tags YAML overriding the default tag keys.")
@output_options
def diff_cmd(
    run_a: str,
    run_b: str | None,
    tracking_uri: str | None,
    config_dir: str | None,
    model: str | None,
    tags_config: str | None,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Explain why two runs do (not) share a study or trial hash, field by field.

    \b
    RUN_A RUN_B          two runs (parents, trials or refits)
    RUN --config-dir D   a run against configs on disk ("would these configs reuse that study?")
    RUN                  a trial or refit against its parent
    \b
    Exit codes: 0 same study (and same trial where both have one), 1 different, 2 error.
    \b
    Examples:
      hpohash diff 3f2a... 9b1c...
      hpohash diff 3f2a... --config-dir configs/ --model distilbert-base-uncased
    """
    from hpohash import configs as cfg
    from hpohash.diff import diff_report, side_from_configs, side_from_run
    from hpohash.study import PARENT, load_run_side
    from hpohash.tracking import Tracking

    registry = _registry(tags_config)
    disk = None
    if config_dir and not run_b:
        try:
            disk = cfg.load_config_dir(config_dir)
        except cfg.ConfigError as exc:
            raise UsageError(f"--config-dir: {exc}") from exc
    tracking = Tracking(tracking_uri)
    side_a = load_run_side(tracking, registry, run_a, config_dir=None if disk else config_dir)
    a = side_from_run(side_a, registry, f"run {run_a}")
    if run_b:
        b = side_from_run(load_run_side(tracking, registry, run_b, config_dir=config_dir), registry, f"run {run_b}")
    elif disk is not None:
        chosen = model or side_a.study.model
        if not chosen:
            raise UsageError(f"no model for the --config-dir side: run {run_a} names none; pass --model")
        hp = side_a.study.hp(side_a.run) if side_a.role != PARENT else None
        b = side_from_configs(disk, chosen, f"config-dir {config_dir}", a, hp)
    else:
        if side_a.role == PARENT:
            raise UsageError(f"run '{run_a}' is a parent: give a second run or --config-dir DIR")
        parent_id = side_a.study.parent.run_id
        if parent_id == side_a.run.run_id:
            raise UsageError(f"run '{run_a}' names no parent run that exists")
        b = side_from_run(load_run_side(tracking, registry, parent_id), registry, f"parent {parent_id}")
    report = diff_report(a, b)
    _renderer(fmt).render_diff(report)
    return 0 if report["same_study"] and report["same_trial"] is not False else 1


# ------------------------------------------------------------------------------------------ demo


@cli.command("demo")
@click.option("--tracking-uri", help="Where to write (default: MLFLOW_TRACKING_URI, else ./mlflow.db).")
@output_options
def demo_cmd(tracking_uri: str | None, fmt: str, quiet: bool, verbose: bool) -> int:
    """Write the demo experiment 'hpohash-demo' (legacy hashes to find and fix).

    Refuses to touch an existing experiment of that name that it did not create.

    \b
    Example:
      hpohash demo && hpohash verify -e hpohash-demo
    """
    from hpohash.demo import EXPERIMENT, write_demo
    from hpohash.tracking import Tracking

    tracking = Tracking(tracking_uri, create=True)
    created = write_demo(tracking)
    created["tracking_uri"] = tracking.display_uri
    created["experiment"] = EXPERIMENT
    _renderer(fmt).render_demo(created)
    return 0


# ------------------------------------------------------------------------------------------ entry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    try:
        rv = cli.main(args=args, prog_name="hpohash", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hpohash: aborted: nothing written", err=True)
        return EXIT_FINDINGS
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        if verbose:
            raise
        click.echo(f"hpohash: error: {exc.format_message()}", err=True)
        return EXIT_USAGE
    except HpohashError as exc:
        if verbose:
            raise
        click.echo(f"hpohash: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("hpohash: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if verbose:
            raise
        click.echo(f"hpohash: internal error: {type(exc).__name__}: {exc} (rerun with --verbose)", err=True)
        return EXIT_BACKEND
    return int(rv or 0)


def entry() -> None:
    sys.exit(main())
