"""The thin Click layer: options in, one call into the package, one renderer out, one exit code.

Heavy imports (mlflow, rich) happen inside commands so ``--help`` and ``hash`` start fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from hpohash import __version__
from hpohash.errors import EXIT_BACKEND, EXIT_USAGE, HpohashError, UsageError

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


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--config-dir",
        type=click.Path(file_okay=False, path_type=str),
        help="Configs (data/hpo/train[/benchmark].yaml) for runs that logged none.",
    )(f)
    f = click.option("--tags-config", type=str, help="Pipeline tags YAML overriding the default tag keys.")(f)
    f = click.option("--experiment-id", "experiment_ids", multiple=True, help="Experiment id (repeatable).")(f)
    f = click.option(
        "--experiment-name", "-e", "experiment_names", multiple=True, help="Experiment name (repeatable)."
    )(f)
    f = click.option(
        "--tracking-uri",
        envvar=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's local sqlite:///mlflow.db).",
    )(f)
    return output_options(f)


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
@click.option(
    "--hyperparameters", "hyperparameters", multiple=True, help='Trial hyperparameters as JSON (repeatable).'
)
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


# ------------------------------------------------------------------------------------------ entry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    try:
        rv = cli.main(args=args, prog_name="hpohash", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hpohash: aborted", err=True)
        return EXIT_USAGE
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
