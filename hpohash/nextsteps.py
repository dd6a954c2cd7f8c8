"""The commands a report suggests next (``hpohash backfill … --dry-run``, ``hpohash undo …``), built
from the request that produced it, so a next step names the same store, experiments and tag keys and
can be pasted as is. No credentials: the tracking URI is the redacted one.
"""

from __future__ import annotations

import shlex
from typing import Any

from hpohash.githistory import DEFAULT_HISTORY_MIB
from hpohash.request import Request


def command(*argv: str) -> str:
    return " ".join(["hpohash", *(shlex.quote(a) for a in argv)])


def scope_argv(request: Request, read: Any, *, named: bool = True) -> list[str]:
    """The options that name this scope again. ``named``: the request's experiments came from options;
    otherwise (MLflow's experiment variables, ``--check-all``) the experiments read that held HPO runs."""
    from hpohash.tracking import redact_uri

    argv: list[str] = []
    if request.tracking_uri:
        argv += ["--tracking-uri", redact_uri(request.tracking_uri)]
    if named and (request.experiments or request.experiment_ids):
        argv += [a for n in request.experiments for a in ("-e", n)]
        argv += [a for i in request.experiment_ids for a in ("--experiment-id", i)]
    elif not request.parent_run_id:
        names = read.experiments_with_runs or read.experiments
        argv += [a for name in names for a in ("-e", name)]
    if request.parent_run_id:
        argv += ["--parent-run-id", request.parent_run_id]
    if request.tags_config:
        argv += ["--tags-config", request.tags_config]
    argv += [a for d in request.config_dirs for a in ("--config-dir", d)]
    if not request.config_history:
        argv.append("--no-config-history")
    if request.config_rev:
        argv += ["--config-rev", request.config_rev]
    if request.max_history_mib != DEFAULT_HISTORY_MIB:
        argv += ["--max-history-mib", str(request.max_history_mib)]
    if request.model:
        argv += ["--model", request.model]
    return argv


def store_argv(request: Request) -> list[str]:
    """What a per-run command (``diff``) needs of the scope: the store and the tag keys."""
    from hpohash.tracking import redact_uri

    argv = ["--tracking-uri", redact_uri(request.tracking_uri)] if request.tracking_uri else []
    if request.tags_config:
        argv += ["--tags-config", request.tags_config]
    return argv


def verify_commands(request: Request, report: Any, *, named: bool) -> tuple[str, str]:
    """The backfill dry run and the diff command a verify report suggests."""
    return command("backfill", *scope_argv(request, report, named=named), "--dry-run"), command(
        "diff", *store_argv(request)
    )


def backfill_commands(
    request: Request, plan: Any, *, named: bool, trial_key_schema: str, force: bool
) -> tuple[str, str]:
    """The apply command a dry run suggests, and the undo command after a write."""
    argv = scope_argv(request, plan, named=named)
    if trial_key_schema != "auto":
        argv += ["--trial-key-schema", trial_key_schema]
    if force:
        argv.append("--force")
    undo_argv = argv[:2] if request.tracking_uri else []
    return command("backfill", *argv, "--yes"), command("undo", *undo_argv)
