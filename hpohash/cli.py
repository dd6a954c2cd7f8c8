"""The thin Click layer: options in, one call into the package, one renderer out, one exit code.

Heavy imports (mlflow, rich) happen inside commands so ``--help`` and ``hash`` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from hpohash import __version__
from hpohash.errors import (
    EXIT_BACKEND,
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    HpohashError,
    UsageError,
)
from hpohash.githistory import DEFAULT_HISTORY_MIB
from hpohash.render import write_text
from hpohash.text import parse_since

FORMATS = ("table", "json", "markdown")
#: verify also speaks the formats CI systems read natively
VERIFY_FORMATS = (*FORMATS, "github", "junit")

#: ``--help`` sections, by parameter name; an option not named here is listed under "Other options"
HELP_SECTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "tracking_uri",
            "experiment_names",
            "experiment_ids",
            "parent_run_id",
            "check_all",
            "include_deleted",
            "since",
        ),
        "Scope",
    ),
    **dict.fromkeys(
        ("config_dirs", "config_history", "config_rev", "stage", "against_config_dir", "tags_config", "model"),
        "Config",
    ),
    "max_history_mib": "Config",
    **dict.fromkeys(
        ("fmt", "output", "select", "ignore", "statistics", "strict", "quiet", "verbose"),
        "Output",
    ),
    **dict.fromkeys(
        ("dry_run", "yes", "exit_code", "force", "trial_key_schema", "workers", "journal_path"), "Backfill"
    ),
}
#: per-command exceptions: ``hash`` reads files, and its trial-key schema chooses what to print
COMMAND_SECTIONS: dict[str, dict[str, str]] = {
    "hash": {
        **dict.fromkeys(("data_file", "hpo_file", "train_file", "benchmark_file"), "Config"),
        **dict.fromkeys(("hyperparameters", "trial_key_schema"), "Trial"),
        "show_key": "Output",
    },
}
_SECTION_ORDER = ("Scope", "Config", "Trial", "Backfill", "Output", "Other options")


class SectionedCommand(click.Command):
    """Click has no option groups: list the options under Scope / Config / Backfill / Output headings."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name = param.name or ""
            section = COMMAND_SECTIONS.get(self.name or "", {}).get(name) or HELP_SECTIONS.get(name, "Other options")
            sections.setdefault(section, []).append(record)
        for name in _SECTION_ORDER:
            if name in sections:
                title = "Undo" if name == "Backfill" and self.name == "undo" else name  # same options, its own name
                with formatter.section(f"{title} options" if name != "Other options" else name):
                    formatter.write_dl(sections[name])


class SectionedGroup(click.Group):
    command_class = SectionedCommand


def _renderer(fmt: str) -> Any:
    """The renderer module for one output format (imported on demand: Rich only when needed)."""
    import importlib

    module = {"json": "json_", "markdown": "markdown", "github": "github", "junit": "junit"}.get(fmt, "table")
    return importlib.import_module(f"hpohash.render.{module}")


def output_options(f: Callable[..., Any], formats: Sequence[str] = FORMATS) -> Callable[..., Any]:
    f = click.option("--verbose", "-v", is_flag=True, help="Show tracebacks and debug detail on errors.")(f)
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the result.")(f)
    f = click.option(
        "--format", "fmt", type=click.Choice(formats), default="table", show_default=True, help="Output format."
    )(f)
    return f


@dataclass(frozen=True)
class StoreArgs:
    """Where to read and what: the options every command that scans experiments shares."""

    tracking_uri: str | None
    experiment_names: tuple[str, ...]
    experiment_ids: tuple[str, ...]
    tags_config: str | None
    config_dirs: tuple[str, ...]
    config_history: bool
    config_rev: str | None
    parent_run_id: str | None
    model: str | None
    max_history_mib: int = DEFAULT_HISTORY_MIB


def config_source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--config-dir`` (repeatable) and how far back its git history is searched."""
    f = click.option(
        "--max-history-mib",
        type=click.IntRange(min=1),
        default=DEFAULT_HISTORY_MIB,
        show_default=True,
        help="Bound on reading --config-dir history: MiB of config versions (and ×1,024 file versions, ×64 "
        "candidate config sets); past it, older history is skipped with a warning.",
    )(f)
    f = click.option(
        "--config-rev",
        metavar="REV",
        help="Use the config tree of this git revision only (no work tree, no other history).",
    )(f)
    f = click.option(
        "--config-history/--no-config-history",
        default=True,
        show_default=True,
        help="Also search the git history of --config-dir, newest first, for configs that reproduce a study.",
    )(f)
    f = click.option(
        "--config-dir",
        "config_dirs",
        multiple=True,
        type=click.Path(file_okay=False, path_type=str),
        help="Configs for runs that logged none: the pipeline's config tree (experiment/, data/, hpo/, "
        "train.yaml) or a flat data/hpo/train[/benchmark].yaml folder (repeatable).",
    )(f)
    return f


def _warn(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(f"hpohash: warning: {line}", err=True)


def _complete_experiment_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Experiment names for shell completion where that is cheap: read from a local SQLite store, no mlflow.

    A tracking server would mean importing mlflow and a request per key press: no suggestions there.
    """
    import sqlite3

    uri = ctx.params.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if not uri.startswith("sqlite:///") or not Path(uri[len("sqlite:///") :]).is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{uri[len('sqlite:///') :]}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT name FROM experiments WHERE lifecycle_stage = 'active' ORDER BY name").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return [name for (name,) in rows if name.startswith(incomplete)]


def store_options(f: Callable[..., Any], formats: Sequence[str] = FORMATS) -> Callable[..., Any]:
    """Add the shared store options and hand them to the command as one ``store: StoreArgs``."""

    @functools.wraps(f)
    def bundled(
        *args: Any,
        tracking_uri: str | None,
        experiment_names: tuple[str, ...],
        experiment_ids: tuple[str, ...],
        tags_config: str | None,
        config_dirs: tuple[str, ...],
        config_history: bool,
        config_rev: str | None,
        parent_run_id: str | None,
        model: str | None,
        max_history_mib: int,
        **kwargs: Any,
    ) -> Any:
        store = StoreArgs(
            tracking_uri,
            experiment_names,
            experiment_ids,
            tags_config,
            config_dirs,
            config_history,
            config_rev,
            parent_run_id,
            model,
            max_history_mib,
        )
        return f(*args, store=store, **kwargs)

    g: Callable[..., Any] = bundled
    g = click.option("--model", help="Model for studies whose runs name none (last resort).")(g)
    g = click.option("--parent-run-id", help="One study only: its parent run id.")(g)
    g = config_source_options(g)
    g = click.option("--tags-config", type=str, help="Pipeline tags YAML overriding the default tag keys.")(g)
    g = click.option("--experiment-id", "experiment_ids", multiple=True, help="Experiment id (repeatable).")(g)
    g = click.option(
        "--experiment-name",
        "-e",
        "experiment_names",
        multiple=True,
        shell_complete=_complete_experiment_names,
        help="Experiment name (repeatable; default: MLFLOW_EXPERIMENT_NAME, else MLFLOW_EXPERIMENT_ID).",
    )(g)
    g = click.option(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's local sqlite:///mlflow.db).",
    )(g)
    return output_options(g, formats)


@click.group(cls=SectionedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="hpohash")
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
    from hpohash.limits import LimitError, check_value, load_json

    out = []
    for i, text in enumerate(values, 1):
        try:
            hp = load_json(text)
            if not isinstance(hp, dict):
                raise UsageError(f"--hyperparameters #{i}: expected a JSON object, got {type(hp).__name__}")
            check_value(hp)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--hyperparameters #{i}: not valid JSON: {exc}") from exc
        except LimitError as exc:
            raise UsageError(f"--hyperparameters #{i}: {exc}") from exc
        out.append(hp)
    return out


@cli.command("hash")
@click.option(
    "--config-dir",
    type=str,
    help="data/hpo/train[/benchmark] .yaml|.yml|.json, or the pipeline's config tree (its experiment file's choice).",
)
@click.option("--stage", help="With a config tree: use this stage's hpo_config override of the experiment file.")
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
    stage: str | None,
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
    if stage and not config_dir:
        raise UsageError("--stage goes with --config-dir")
    try:
        if config_dir:
            cs = _tree_choice(config_dir, stage)
        elif data_file and hpo_file and train_file:
            cs = cfg.load_config_files(data_file, hpo_file, train_file, benchmark_file)
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
    write_text(_renderer(fmt).format_hash(report, show_key=show_key))
    return 0


def _tree_choice(config_dir: str, stage: str | None) -> Any:
    """The configs ``hash`` uses from a directory: a flat folder's files or the experiment file's choice."""
    from hpohash import sources as src

    try:
        return src.ConfigSources.read([config_dir], history=False).default_choice(stage)
    except src.SourceError as exc:
        raise UsageError(str(exc)) from exc


# ------------------------------------------------------------------------------------------ reading


#: MLflow's own defaults for the experiment, in the order ``mlflow`` itself reads them
EXPERIMENT_ENV = ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID")


def with_env_experiment(store: StoreArgs, *, check_all: bool = False) -> tuple[StoreArgs, str | None]:
    """No -e and no --experiment-id: MLflow's environment variables name the experiment, as for ``mlflow runs``.

    Not with ``--parent-run-id`` (the parent names its own experiment) nor ``--check-all`` (every
    experiment). Returns the store and the variable used, so an error can name it.
    """
    if store.experiment_names or store.experiment_ids or store.parent_run_id or check_all:
        return store, None
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip()
    if name:
        return replace(store, experiment_names=(name,)), "MLFLOW_EXPERIMENT_NAME"
    eid = os.environ.get("MLFLOW_EXPERIMENT_ID", "").strip()
    if eid:
        return replace(store, experiment_ids=(eid,)), "MLFLOW_EXPERIMENT_ID"
    raise UsageError(
        "give --experiment-name/-e NAME or --experiment-id ID (or --parent-run-id ID, or --check-all for every "
        "experiment), or set MLFLOW_EXPERIMENT_NAME or MLFLOW_EXPERIMENT_ID"
    )


def _load_scope(
    store: StoreArgs,
    *,
    include_deleted: bool = False,
    show_progress: bool = False,
    check_all: bool = False,
    since_ms: int | None = None,
) -> Any:
    """Read the scope for a command: MLflow's experiment variables and --check-all say what to read."""
    from hpohash import api
    from hpohash.render.progress import progress_reporter
    from hpohash.tags import registry_for

    registry_for(store.tags_config)  # a bad tags file fails before --check-all lists the experiments
    store, env = with_env_experiment(store, check_all=check_all)
    if check_all and not (store.experiment_names or store.experiment_ids or store.parent_run_id):
        ids = api.all_experiment_ids(store.tracking_uri)
        store = replace(store, experiment_ids=ids)
    try:
        with progress_reporter(show_progress) as progress:
            tracking, scope = api.read_scope(
                tracking_uri=store.tracking_uri,
                experiments=store.experiment_names,
                experiment_ids=store.experiment_ids,
                parent_run_id=store.parent_run_id,
                config_dirs=store.config_dirs,
                config_history=store.config_history,
                config_rev=store.config_rev,
                max_history_mib=store.max_history_mib,
                tags_config=store.tags_config,
                model=store.model,
                include_deleted=include_deleted,
                since_ms=since_ms,
                progress=progress,
            )
    except UsageError as exc:
        if env and "not found" in str(exc):
            raise UsageError(f"{exc} (the experiment {env} names)") from exc
        raise
    _warn(scope.warnings)
    return tracking, scope


def _interactive(fmt: str, quiet: bool) -> bool:
    return fmt == "table" and not quiet and sys.stderr.isatty()


# ------------------------------------------------------------------------------------------ verify


def _scope_argv(store: StoreArgs, read: Any) -> list[str]:
    """The options that name this scope again, for the commands a next step suggests (no credentials)."""
    from hpohash.tracking import redact_uri

    argv: list[str] = []
    if store.tracking_uri:
        argv += ["--tracking-uri", redact_uri(store.tracking_uri)]
    if store.experiment_names or store.experiment_ids:
        argv += [a for n in store.experiment_names for a in ("-e", n)]
        argv += [a for i in store.experiment_ids for a in ("--experiment-id", i)]
    elif not store.parent_run_id:  # from MLFLOW_EXPERIMENT_NAME/ID or --check-all: the ones holding HPO runs
        names = read.experiments_with_runs or read.experiments
        argv += [a for name in names for a in ("-e", name)]
    if store.parent_run_id:
        argv += ["--parent-run-id", store.parent_run_id]
    if store.tags_config:
        argv += ["--tags-config", store.tags_config]
    argv += [a for d in store.config_dirs for a in ("--config-dir", d)]
    if not store.config_history:
        argv.append("--no-config-history")
    if store.config_rev:
        argv += ["--config-rev", store.config_rev]
    if store.max_history_mib != DEFAULT_HISTORY_MIB:
        argv += ["--max-history-mib", str(store.max_history_mib)]
    if store.model:
        argv += ["--model", store.model]
    return argv


def _command(*argv: str) -> str:
    return " ".join(["hpohash", *(shlex.quote(a) for a in argv)])


def _write_output(path: str, text: str | Iterable[str]) -> None:
    """``-o FILE``: what the renderer returned goes to the file instead of stdout."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            write_text(text, fh)
    except OSError as exc:
        raise UsageError(f"-o {path}: {exc.strerror or exc}") from exc


def _check_output_path(path: str | None) -> None:
    """Before anything is read: the report can be written where -o points."""
    if path and (Path(path).is_dir() or not Path(path).resolve().parent.is_dir()):
        raise UsageError(f"-o {path}: not a file in an existing directory")


@cli.command("verify")
@click.option(
    "--check-all",
    is_flag=True,
    help="Every study: of the given experiments, or, with no -e/--experiment-id, of every experiment in the store.",
)
@click.option("--include-deleted", is_flag=True, help="Also check deleted runs.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option(
    "--since",
    metavar="DURATION|DATE",
    help="Only the studies with a run started since then (1d, 12h, 2026-11-20), each read whole.",
)
@click.option(
    "--select",
    "select",
    multiple=True,
    metavar="CODES",
    help="Only these codes, by prefix (e.g. HH110,HH12; repeatable).",
)
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="CODES",
    help="Leave out these codes, by prefix (e.g. HH160; repeatable).",
)
@click.option("--statistics", is_flag=True, help="Count findings per code before the summary.")
@click.option(
    "--output",
    "-o",
    "output",
    metavar="FILE",
    help="Write the report (any --format) to FILE; the terminal gets a summary.",
)
@functools.partial(store_options, formats=VERIFY_FORMATS)
def verify_cmd(
    check_all: bool,
    include_deleted: bool,
    strict: bool,
    since: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    statistics: bool,
    output: str | None,
    store: StoreArgs,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Report every parent, trial and refit run whose hash or link tags are wrong, and why.

    \b
    Exit codes: 0 no errors, 1 errors (or warnings with --strict), 2 usage/input error,
    3 tracking backend failure, 4 internal error (a bug), 130 interrupted.
    --select/--ignore change which findings count.
    \b
    Examples:
      hpohash verify -e hpohash-demo
      MLFLOW_EXPERIMENT_NAME=hpohash-demo hpohash verify --statistics
      hpohash verify -e sweeps -e trials --format json
      hpohash verify -e sweeps --format github             # annotations in a GitHub workflow
      hpohash verify -e sweeps --format junit -o hpohash.xml   # Azure DevOps, GitLab, Jenkins
      hpohash verify -e sweeps --ignore HH160
      hpohash verify -e sweeps --since 1d                  # per pipeline run; a full verify nightly
    """
    from hpohash import api
    from hpohash.render import VerifyContext
    from hpohash.selection import Selection

    if check_all and store.parent_run_id:
        raise UsageError("--check-all and --parent-run-id exclude each other")
    Selection.parse(select, ignore)  # a bad code is a usage error before any connection
    if since is not None and (check_all or store.parent_run_id):
        raise UsageError("--since excludes --check-all and --parent-run-id")
    since_ms = parse_since(since) if since is not None else None
    _check_output_path(output)
    _, scope = _load_scope(
        store,
        include_deleted=include_deleted,
        show_progress=_interactive(fmt, quiet),
        check_all=check_all,
        since_ms=since_ms,
    )
    report = api.verify_scope(scope, select=select, ignore=ignore)
    argv = _scope_argv(store, report)
    store_argv = argv[:2] if store.tracking_uri else []
    if store.tags_config:
        store_argv += ["--tags-config", store.tags_config]
    ctx = VerifyContext(
        backfill_command=_command("backfill", *argv, "--dry-run"),
        diff_command=_command("diff", *store_argv),
        statistics=statistics,
        strict=strict,
        to_file=output is not None,
    )
    renderer = _renderer(fmt)
    if output:
        _write_output(output, renderer.format_verify(report, ctx, quiet=quiet))
        write_text(_renderer("table").format_verify_summary(report, ctx))
    else:
        write_text(renderer.format_verify(report, ctx, quiet=quiet))
    if fmt == "github" and os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as fh:
            fh.write(renderer.step_summary(report, ctx))
    return 1 if not report.ok or (strict and report.summary.warnings) else 0


# ------------------------------------------------------------------------------------------ backfill


def _check_journal_path(path: str | None) -> None:
    """Before anything is read: a journal is never overwritten, and its place must be creatable."""
    if path:
        from hpohash.writes import check_journal_path

        check_journal_path(path)


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
    the dry run found changes), 2 usage/input error, 3 tracking backend failure, 4 internal error,
    130 interrupted (it says what was written and where the journal is).
    \b
    Examples:
      hpohash backfill -e hpohash-demo --dry-run
      hpohash backfill -e hpohash-demo --yes
      hpohash backfill -e sweeps --dry-run --exit-code     # CI: is anything left to backfill?
    """
    from hpohash import api
    from hpohash.render import BackfillContext
    from hpohash.render.progress import progress_reporter
    from hpohash.reports import BackfillReport

    if exit_code and not dry_run:
        raise UsageError("--exit-code only goes with --dry-run")
    if dry_run and yes:
        raise UsageError("--dry-run and --yes exclude each other")
    _check_journal_path(journal_path)
    tracking, scope = _load_scope(store, show_progress=_interactive(fmt, quiet))
    plan = api.plan_from_scope(tracking, scope, trial_key_schema=trial_key_schema, force=force)
    note = tracking.undo_limit_note(plan.changes)  # said before anything is written
    _warn([note] if note else [])
    renderer = _renderer(fmt)
    argv = _scope_argv(store, plan)
    if trial_key_schema != "auto":
        argv += ["--trial-key-schema", trial_key_schema]
    if force:
        argv.append("--force")
    undo_argv = argv[:2] if store.tracking_uri else []
    ctx = BackfillContext(apply_command=_command("backfill", *argv, "--yes"), undo_command=_command("undo", *undo_argv))

    def ask(summary: str) -> bool:
        if fmt == "table":
            write_text(renderer.format_backfill(BackfillReport(plan, dry_run=True), ctx, preview=True))
        return click.confirm(f"Write {summary}?", default=False, err=True)

    if dry_run or not plan.changes:
        report = BackfillReport(plan, dry_run=dry_run)
    else:
        with progress_reporter(_interactive(fmt, quiet)) as progress:
            report = api.apply(
                plan, journal=journal_path, workers=workers, progress=progress, confirm=api.confirmation(yes, ask)
            )
    write_text(renderer.format_backfill(report, ctx))
    result = report.result
    if result is not None and result.backend_failed:
        return 3
    if plan.conflicts or (result is not None and result.failures):
        return 1
    if dry_run and exit_code and plan.fixes_errors:
        return 1  # errors left to backfill (a change that only fixes a warning does not fail the gate)
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
    from hpohash import api

    if dry_run and yes:
        raise UsageError("--dry-run and --yes exclude each other")
    _check_journal_path(journal_path)
    renderer = _renderer(fmt)

    def preview(report: Any) -> None:
        if fmt == "table":
            write_text(renderer.format_undo(report, preview=True))

    def ask(summary: str) -> bool:
        return click.confirm(f"Write {summary}?", default=False, err=True)

    report = api.undo(
        journals,
        tracking_uri=tracking_uri,
        dry_run=dry_run,
        journal=journal_path,
        workers=workers,
        confirm=api.confirmation(yes, ask),
        preview=preview,
    )
    write_text(renderer.format_undo(report))
    result = report.result
    if result is not None and result.backend_failed:
        return 3
    return 0 if report.ok else 1


# ------------------------------------------------------------------------------------------ diff


@cli.command("diff")
@click.argument("run_a")
@click.argument("run_b", required=False)
@click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db).")
@config_source_options
@click.option(
    "--against-config-dir",
    is_flag=True,
    help="With one trial or refit: compare it with the --config-dir configs instead of its parent.",
)
@click.option("--stage", help="With a config tree: the experiment file's stage whose hpo_config the disk side uses.")
@click.option("--model", help="Model for the --config-dir side (default: the run's model).")
@click.option("--tags-config", type=str, help="Pipeline tags YAML overriding the default tag keys.")
@output_options
def diff_cmd(
    run_a: str,
    run_b: str | None,
    tracking_uri: str | None,
    config_dirs: tuple[str, ...],
    config_history: bool,
    config_rev: str | None,
    max_history_mib: int,
    against_config_dir: bool,
    stage: str | None,
    model: str | None,
    tags_config: str | None,
    fmt: str,
    quiet: bool,
    verbose: bool,
) -> int:
    """Explain why two runs do (not) share a study or trial hash, field by field.

    \b
    RUN_A RUN_B          two runs (parents, trials or refits)
    RUN                  a trial or refit against its parent
    PARENT --config-dir D   a parent against the configs on disk ("would these configs reuse that study?")
    \b
    Runs that logged no configs get theirs from --config-dir (and its git history): the candidate that
    reproduces their parent's stored hash.
    \b
    Exit codes: 0 same study (and same trial where both have one), 1 different, 2 error.
    \b
    Examples:
      hpohash diff 3f2a... 9b1c...
      hpohash diff 9b1c... --config-dir config/               # a refit against its parent
      hpohash diff 3f2a... --config-dir configs/ --model distilbert-base-uncased
    """
    from hpohash import api

    report = api.diff(
        run_a,
        run_b,
        tracking_uri=tracking_uri,
        config_dirs=config_dirs,
        config_history=config_history,
        config_rev=config_rev,
        max_history_mib=max_history_mib,
        against_config_dir=against_config_dir,
        stage=stage,
        model=model,
        tags_config=tags_config,
        warn=_warn,
    )
    write_text(_renderer(fmt).format_diff(report))
    return 0 if report.ok else 1


# ------------------------------------------------------------------------------------------ demo


@cli.command("rules")
@click.argument("code", required=False)
@output_options
def rules_cmd(code: str | None, fmt: str, quiet: bool, verbose: bool) -> int:
    """The finding codes: severity, what each means, and what backfill changes to fix it.

    \b
    Examples:
      hpohash rules                 # the catalogue
      hpohash rules HH120           # one code, with its explanation and an example
      hpohash rules --format json   # for tools
    """
    from hpohash.rules import RULES

    if code is not None:
        wanted = code.strip().upper()
        if wanted not in RULES:
            raise UsageError(f"rules {code}: no such finding code (codes: {', '.join(RULES)})")
        rules = [RULES[wanted]]
    else:
        rules = list(RULES.values())
    write_text(_renderer(fmt).format_rules(rules, detail=code is not None))
    return 0


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
    write_text(_renderer(fmt).format_demo(created))
    return 0


# ------------------------------------------------------------------------------------------ entry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr.

    stdout and stderr pass through :func:`hpohash.redact.redact` for the whole command, so no
    credential from the tracking URI or the environment is printed by hpohash, MLflow or a traceback.
    """
    from hpohash import redact as rd

    args = list(sys.argv[1:] if argv is None else argv)
    rd.add_env_secrets()
    for i, arg in enumerate(args):
        if arg == "--tracking-uri" and i + 1 < len(args):
            rd.add_uri_secrets(args[i + 1])
        elif arg.startswith("--tracking-uri="):
            rd.add_uri_secrets(arg.split("=", 1)[1])
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = rd.RedactingStream(out), rd.RedactingStream(err)
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = out, err


def _say(line: str) -> None:
    from hpohash.redact import redact

    sys.stderr.write(redact(line) + "\n")
    sys.stderr.flush()


def _traceback(exc: BaseException) -> None:
    """``--verbose``: the traceback (redacted), then the same one line and exit code as without it."""
    import traceback

    _say("".join(traceback.format_exception(exc)).rstrip("\n"))


def _is_backend_failure(exc: BaseException) -> bool:
    """An exception from MLflow or the HTTP stack that escaped classification: the backend, not a bug."""
    kinds: list[type] = [ConnectionError, TimeoutError]
    for module, name in (
        ("mlflow.exceptions", "MlflowException"),
        ("requests.exceptions", "RequestException"),
        ("sqlalchemy.exc", "SQLAlchemyError"),
    ):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            kinds.append(cls)
    return isinstance(exc, tuple(kinds))


def _interrupted() -> int:
    """Ctrl-C: say what was written, where the journal is, and how to finish or go back."""
    ledger = getattr(sys.modules.get("hpohash.writes"), "LEDGER", None)
    _say("hpohash: " + (ledger.interrupted_message() if ledger is not None else "interrupted: nothing written"))
    return EXIT_INTERRUPTED


def _backend_settings(verbose: bool) -> Any:
    """The command's backend settings, from the environment variables the CLI honours (nowhere else)."""
    from hpohash.settings import SERVER_FILTER, BackendSettings

    server_filter = os.environ.get("HPOHASH_SERVER_FILTER", "").strip().lower()
    parts = os.environ.get("HPOHASH_SCAN_PARTS", "").strip()
    return BackendSettings(
        server_filter=server_filter if server_filter in SERVER_FILTER else "auto",
        scan_parts=int(parts) if parts.isdigit() else 0,  # anything else: auto, as for the filter
        verbose=verbose,
    )


def _run(args: list[str]) -> int:
    from hpohash.settings import using_settings
    from hpohash.tracking import configure_process

    configure_process()
    verbose = "--verbose" in args or "-v" in args
    ledger = getattr(sys.modules.get("hpohash.writes"), "LEDGER", None)
    if ledger is not None:  # one command per call, even when called in-process many times
        ledger.reset()
    try:
        with using_settings(_backend_settings(verbose)):
            rv = cli.main(args=args, prog_name="hpohash", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            if verbose:
                _traceback(exc)
            return _interrupted()
        _say("hpohash: aborted: nothing written")
        return EXIT_FINDINGS
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        if verbose:
            _traceback(exc)
        _say(f"hpohash: error: {exc.format_message()}")
        return EXIT_USAGE
    except HpohashError as exc:
        if verbose:
            _traceback(exc)
        _say(f"hpohash: {exc}" if getattr(exc, "declined", False) else f"hpohash: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if verbose:
            _traceback(exc)
        return _interrupted()
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if verbose:
            _traceback(exc)
        text = " ".join(str(exc).split())[:300]
        if _is_backend_failure(exc):
            _say(f"hpohash: error: tracking backend failed: {type(exc).__name__}: {text}")
            return EXIT_BACKEND
        _say(
            f"hpohash: internal error: {type(exc).__name__}: {text} — a bug in hpohash, please report it"
            + ("" if verbose else " (rerun with --verbose for the traceback)")
        )
        return EXIT_INTERNAL
    return int(rv or 0)


def entry() -> None:
    sys.exit(main())
