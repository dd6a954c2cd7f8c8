"""The CLI's shared options and its ``--help`` layout: declarations only, no behaviour.

``store_options`` hands a command its scope options as one ``scope`` mapping named as
:class:`hpohash.request.Request` names them, plus the backend settings, so the command builds its
request in one call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from hpohash.githistory import DEFAULT_HISTORY_MIB

FORMATS = ("table", "json", "markdown")
#: verify also speaks the formats CI systems read natively
VERIFY_FORMATS = (*FORMATS, "github", "junit")

#: ``--help`` sections, by parameter name; an option not named here is listed under "Other options"
HELP_SECTIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "tracking_uri",
            "timeout",
            "read_via",
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
        (
            "config_dirs",
            "config_history",
            "config_rev",
            "max_history_mib",
            "stage",
            "against_config_dir",
            "tags_config",
            "model",
        ),
        "Config",
    ),
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
        **dict.fromkeys(("config_dir", "data_file", "hpo_file", "train_file", "benchmark_file"), "Config"),
        **dict.fromkeys(("hyperparameters", "trial_key_schema"), "Trial"),
        "show_key": "Output",
    },
}
_SECTION_ORDER = ("Scope", "Config", "Trial", "Backfill", "Output", "Other options")

#: the option each library argument is given by, for error messages (``ArgumentError.naming``)
FLAGS: dict[str, str] = {
    "tracking_uri": "--tracking-uri",
    "timeout": "--timeout",
    "read_via": "--read-via",
    "experiments": "--experiment-name",
    "experiment_ids": "--experiment-id",
    "parent_run_id": "--parent-run-id",
    "check_all": "--check-all",
    "since": "--since",
    "include_deleted": "--include-deleted",
    "config_dirs": "--config-dir",
    "config_dir": "--config-dir",
    "config_rev": "--config-rev",
    "max_history_mib": "--max-history-mib",
    "tags_config": "--tags-config",
    "model": "--model",
    "select": "--select",
    "ignore": "--ignore",
    "against_config_dir": "--against-config-dir",
    "stage": "--stage",
    "data": "--data",
    "hpo": "--hpo",
    "train": "--train",
    "benchmark": "--benchmark",
    "hyperparameters": "--hyperparameters",
    "yes": "--yes",
    "dry_run": "--dry-run",
    "journal": "--journal",
}


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


@dataclass
class RunState:
    """What one ``main`` call learns while Click parses: ``--verbose`` only when it parsed as that option."""

    verbose: bool = False


def _note_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value and isinstance(ctx.obj, RunState):
        ctx.obj.verbose = True
    return value


def output_options(f: Callable[..., Any], formats: Sequence[str] = FORMATS) -> Callable[..., Any]:
    f = click.option(
        "--verbose", "-v", is_flag=True, callback=_note_verbose, help="Show tracebacks and debug detail on errors."
    )(f)
    f = click.option("--quiet", "-q", is_flag=True, help="No progress bar; only the result.")(f)
    f = click.option(
        "--format", "fmt", type=click.Choice(formats), default="table", show_default=True, help="Output format."
    )(f)
    return f


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


def _complete_experiment_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    import os

    from hpohash.completion import experiment_names

    return experiment_names(ctx.params.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI"), incomplete)


def store_options(f: Callable[..., Any], formats: Sequence[str] = FORMATS) -> Callable[..., Any]:
    """Add the shared store options and hand them to the command as ``scope`` (a mapping of request
    arguments) and ``settings`` (timeout, read path)."""

    @functools.wraps(f)
    def bundled(
        *args: Any,
        tracking_uri: str | None,
        timeout: float | None,
        read_via: str,
        experiment_names: tuple[str, ...],
        experiment_ids: tuple[str, ...],
        tags_config: str | None,
        config_dirs: tuple[str, ...],
        config_history: bool,
        config_rev: str | None,
        max_history_mib: int,
        parent_run_id: str | None,
        model: str | None,
        **kwargs: Any,
    ) -> Any:
        scope = {
            "experiments": experiment_names,
            "experiment_ids": experiment_ids,
            "tags_config": tags_config,
            "config_dirs": config_dirs,
            "config_history": config_history,
            "config_rev": config_rev,
            "max_history_mib": max_history_mib,
            "parent_run_id": parent_run_id,
            "model": model,
        }
        store = {"tracking_uri": tracking_uri, "timeout": timeout, "read_via": read_via}
        return f(*args, scope=scope, store=store, **kwargs)

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
        "--read-via",
        type=click.Choice(("auto", "api", "sql")),
        default="auto",
        show_default=True,
        help="Read runs through MLflow's API, or directly from its SQL database where the store allows (auto).",
    )(g)
    g = click.option(
        "--timeout",
        metavar="SECONDS",
        type=click.FloatRange(min=0, min_open=True),
        help="Deadline of each request to the tracking backend (default 60).",
    )(g)
    g = click.option(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's local sqlite:///mlflow.db).",
    )(g)
    return output_options(g, formats)


def _stack(f: Callable[..., Any], *decorators: Callable[..., Any]) -> Callable[..., Any]:
    """Apply decorators as a stack written above ``f`` would: the last one first."""
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def hash_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash hash``."""
    return _stack(
        f,
        click.option(
            "--config-dir",
            type=str,
            help="data/hpo/train[/benchmark] .yaml|.yml|.json, or the pipeline's config tree "
            "(its experiment file's choice).",
        ),
        click.option(
            "--stage", help="With a config tree: use this stage's hpo_config override of the experiment file."
        ),
        click.option("--data", "data_file", type=str, help="Data config file (instead of --config-dir)."),
        click.option("--hpo", "hpo_file", type=str, help="HPO config file."),
        click.option("--train", "train_file", type=str, help="Train config file."),
        click.option("--benchmark", "benchmark_file", type=str, help="Benchmark config file (v1/family hash only)."),
        click.option("--model", required=True, help="Full backbone name, e.g. distilbert-base-uncased."),
        click.option(
            "--hyperparameters", "hyperparameters", multiple=True, help="Trial hyperparameters as JSON (repeatable)."
        ),
        click.option(
            "--trial-key-schema",
            type=click.Choice(["1.0", "2.0"]),
            default="2.0",
            show_default=True,
            help="Inner schema of the trial key to print as trial_key_hash.",
        ),
        click.option("--show-key", is_flag=True, help="Also print the canonical v2 study-key payload."),
        output_options,
    )


def verify_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash verify``."""
    return _stack(
        f,
        click.option(
            "--check-all",
            is_flag=True,
            help="Every study: of the given experiments, or, with no -e/--experiment-id, "
            "of every experiment in the store.",
        ),
        click.option("--include-deleted", is_flag=True, help="Also check deleted runs."),
        click.option("--strict", is_flag=True, help="Exit 1 on warnings too."),
        click.option(
            "--since",
            metavar="DURATION|DATE",
            help="Only the studies with a run started since then (1d, 12h, 2026-11-20), each read whole.",
        ),
        click.option(
            "--select",
            "select",
            multiple=True,
            metavar="CODES",
            help="Only these codes, by prefix (e.g. HH110,HH12; repeatable).",
        ),
        click.option(
            "--ignore",
            "ignore",
            multiple=True,
            metavar="CODES",
            help="Leave out these codes, by prefix (e.g. HH160; repeatable).",
        ),
        click.option("--statistics", is_flag=True, help="Count findings per code before the summary."),
        click.option(
            "--output",
            "-o",
            "output",
            metavar="FILE",
            help="Write the report (any --format) to FILE; the terminal gets a summary.",
        ),
        functools.partial(store_options, formats=VERIFY_FORMATS),
    )


def backfill_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash backfill``."""
    return _stack(
        f,
        click.option("--dry-run", is_flag=True, help="Show the plan; never write."),
        click.option("--yes", "-y", is_flag=True, help="Apply without asking."),
        click.option("--exit-code", is_flag=True, help="With --dry-run: exit 1 when anything is left to backfill."),
        click.option("--force", is_flag=True, help="Also replace stored values of unknown provenance."),
        click.option(
            "--trial-key-schema",
            type=click.Choice(["auto", "1.0", "2.0"]),
            default="auto",
            show_default=True,
            help="Trial-key generation to write (auto: the one the study's correct trial hashes use, else 2.0).",
        ),
        click.option(
            "--workers", type=click.IntRange(1, 64), help="Concurrent writes (default 8 over http(s), 1 locally)."
        ),
        click.option("--journal", "journal_path", help="Journal file (default .hpohash/journal-<UTC time>.jsonl)."),
        store_options,
    )


def undo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash undo``."""
    return _stack(
        f,
        click.argument("journals", nargs=-1, required=True),
        click.option("--tracking-uri", help="Tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)."),
        click.option("--dry-run", is_flag=True, help="Show what would be restored; never write."),
        click.option("--yes", "-y", is_flag=True, help="Restore without asking."),
        click.option(
            "--workers", type=click.IntRange(1, 64), help="Concurrent writes (default 8 over http(s), 1 locally)."
        ),
        click.option(
            "--journal", "journal_path", help="Journal for the undo itself (default .hpohash/journal-<time>.jsonl)."
        ),
        output_options,
    )


def diff_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash diff``."""
    return _stack(
        f,
        click.argument("run_a"),
        click.argument("run_b", required=False),
        click.option("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else ./mlflow.db)."),
        config_source_options,
        click.option(
            "--against-config-dir",
            is_flag=True,
            help="With one trial or refit: compare it with the --config-dir configs instead of its parent.",
        ),
        click.option(
            "--stage", help="With a config tree: the experiment file's stage whose hpo_config the disk side uses."
        ),
        click.option("--model", help="Model for the --config-dir side (default: the run's model)."),
        click.option("--tags-config", type=str, help="Pipeline tags YAML overriding the default tag keys."),
        output_options,
    )


def rules_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash rules``."""
    return _stack(
        f,
        click.argument("code", required=False),
        output_options,
    )


def demo_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``hpohash demo``."""
    return _stack(
        f,
        click.option("--tracking-uri", help="Where to write (default: MLFLOW_TRACKING_URI, else ./mlflow.db)."),
        output_options,
    )
