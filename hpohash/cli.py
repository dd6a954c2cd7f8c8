"""The thin Click layer: options → request → one call into ``hpohash.api`` → one renderer → exit code.

Option declarations live in ``hpohash.options``, what only a command line has (the environment,
``-o``, the terminal, stdout, errors as one line and an exit code) in ``hpohash.edge``, exit-code
policy in ``hpohash.exits``, the next commands a report suggests in ``hpohash.nextsteps``.
Heavy imports (mlflow, rich) happen inside commands so ``--help`` and ``hash`` start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from hpohash import edge
from hpohash.errors import UsageError
from hpohash.options import (
    SectionedGroup,
    backfill_options,
    demo_options,
    diff_options,
    hash_options,
    rules_options,
    undo_options,
    verify_options,
)
from hpohash.version import __version__


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


@cli.command("hash")
@hash_options
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
    from hpohash import api

    report = api.hash_configs(
        model=model,
        config_dir=config_dir,
        stage=stage,
        data=data_file,
        hpo=hpo_file,
        train=train_file,
        benchmark=benchmark_file,
        hyperparameters=hyperparameters,
        trial_key_schema=trial_key_schema,
    )
    edge.write_text(edge.renderer(fmt).format_hash(report, show_key=show_key))
    return 0


# ------------------------------------------------------------------------------------------ verify


@cli.command("verify")
@verify_options
def verify_cmd(
    check_all: bool,
    include_deleted: bool,
    strict: bool,
    since: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    statistics: bool,
    output: str | None,
    scope: dict[str, Any],
    store: dict[str, Any],
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
    from hpohash import api, exits, nextsteps
    from hpohash.render import VerifyContext

    request, env = edge.request(
        scope, store, check_all=check_all, since=since, include_deleted=include_deleted, select=select, ignore=ignore
    )
    edge.check_output_path(output)
    with edge.naming(env), edge.progress(fmt, quiet) as progress:
        report = api.verify(request, progress=progress, warn=edge.warn)
    backfill_command, diff_command = nextsteps.verify_commands(request, report, named=env is None)
    ctx = VerifyContext(
        backfill_command=backfill_command,
        diff_command=diff_command,
        statistics=statistics,
        strict=strict,
        to_file=output is not None,
    )
    renderer = edge.renderer(fmt)
    if output:
        edge.write_output(output, renderer.format_verify(report, ctx, quiet=quiet))
        edge.write_text(edge.renderer("table").format_verify_summary(report, ctx))
    else:
        edge.write_text(renderer.format_verify(report, ctx, quiet=quiet))
    if fmt == "github":
        edge.step_summary(renderer.step_summary(report, ctx))
    return exits.verify_exit(report, strict=strict)


# ------------------------------------------------------------------------------------------ backfill


@cli.command("backfill")
@backfill_options
def backfill_cmd(
    dry_run: bool,
    yes: bool,
    exit_code: bool,
    force: bool,
    trial_key_schema: str,
    workers: int | None,
    journal_path: str | None,
    scope: dict[str, Any],
    store: dict[str, Any],
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
    from hpohash import api, exits, nextsteps
    from hpohash.render import BackfillContext
    from hpohash.reports import BackfillReport

    if exit_code and not dry_run:
        raise UsageError("--exit-code only goes with --dry-run")
    if dry_run and yes:
        raise UsageError("--dry-run and --yes exclude each other")
    request, env = edge.request(scope, store)
    edge.check_journal_path(journal_path)
    with edge.naming(env), edge.progress(fmt, quiet) as progress:
        plan = api.plan_backfill(
            request, trial_key_schema=trial_key_schema, force=force, progress=progress, warn=edge.warn
        )
    apply_command, undo_command = nextsteps.backfill_commands(
        request, plan, named=env is None, trial_key_schema=trial_key_schema, force=force
    )
    ctx = BackfillContext(apply_command=apply_command, undo_command=undo_command)
    renderer = edge.renderer(fmt)

    def ask(summary: str) -> bool:
        if fmt == "table":
            edge.write_text(renderer.format_backfill(BackfillReport(plan, dry_run=True), ctx, preview=True))
        return click.confirm(f"Write {summary}?", default=False, err=True)

    if dry_run or not plan.changes:
        report = BackfillReport(plan, dry_run=dry_run)
    else:  # the write is its own call: the plan is shown and confirmed between the two
        with edge.progress(fmt, quiet) as progress:
            report = api.apply(
                plan, journal=journal_path, workers=workers, progress=progress, confirm=api.confirmation(yes, ask)
            )
    edge.write_text(renderer.format_backfill(report, ctx))
    return exits.backfill_exit(report, dry_run=dry_run, exit_code=exit_code)


@cli.command("undo")
@undo_options
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
    from hpohash import api, exits

    if dry_run and yes:
        raise UsageError("--dry-run and --yes exclude each other")
    edge.check_journal_path(journal_path)
    renderer = edge.renderer(fmt)

    def preview(report: Any) -> None:
        if fmt == "table":
            edge.write_text(renderer.format_undo(report, preview=True))

    def ask(summary: str) -> bool:
        return click.confirm(f"Write {summary}?", default=False, err=True)

    report = api.undo(
        journals,
        store=edge.store(tracking_uri),
        dry_run=dry_run,
        journal=journal_path,
        workers=workers,
        confirm=api.confirmation(yes, ask),
        preview=preview,
    )
    edge.write_text(renderer.format_undo(report))
    return exits.undo_exit(report)


# ------------------------------------------------------------------------------------------ diff


@cli.command("diff")
@diff_options
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
    from hpohash import api, exits

    report = api.diff(
        run_a,
        run_b,
        store=edge.store(tracking_uri),
        config_dirs=config_dirs,
        config_history=config_history,
        config_rev=config_rev,
        max_history_mib=max_history_mib,
        model=model,
        tags_config=tags_config,
        against_config_dir=against_config_dir,
        stage=stage,
        warn=edge.warn,
    )
    edge.write_text(edge.renderer(fmt).format_diff(report))
    return exits.diff_exit(report)


# ------------------------------------------------------------------------------------------ demo


@cli.command("rules")
@rules_options
def rules_cmd(code: str | None, fmt: str, quiet: bool, verbose: bool) -> int:
    """The finding codes: severity, what each means, and what backfill changes to fix it.

    \b
    Examples:
      hpohash rules                 # the catalogue
      hpohash rules HH120           # one code, with its explanation and an example
      hpohash rules --format json   # for tools
    """
    from hpohash import api

    edge.write_text(edge.renderer(fmt).format_rules(api.rules(code), detail=code is not None))
    return 0


@cli.command("demo")
@demo_options
def demo_cmd(tracking_uri: str | None, fmt: str, quiet: bool, verbose: bool) -> int:
    """Write the demo experiment 'hpohash-demo' (legacy hashes to find and fix).

    Refuses to touch an existing experiment of that name that it did not create.

    \b
    Example:
      hpohash demo && hpohash verify -e hpohash-demo
    """
    from hpohash import api

    edge.write_text(edge.renderer(fmt).format_demo(api.demo(store=edge.store(tracking_uri))))
    return 0


# ------------------------------------------------------------------------------------------ entry


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr (see ``hpohash.edge``)."""
    return edge.main(cli, argv)


def entry() -> None:
    edge.entry(cli)
