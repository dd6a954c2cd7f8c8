"""One renderer per output format: ``table`` (Rich), ``json``, ``markdown``, ``github``, ``junit``."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Protocol


def silence_stdout() -> None:
    """The reader went away (``hpohash verify | head``): drop the rest of the output, keep the exit code.

    A CI gate must not turn a clean verify into a failure (or a failure into a crash) because the
    pipe it printed into was closed early.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()


@dataclass(frozen=True, slots=True)
class CheckedRun:
    """One run verify looked at (JUnit reports a test case per run, passed or not)."""

    run_id: str
    stage: str
    parent_run_id: str | None


@dataclass(frozen=True)
class VerifyContext:
    """What the ``hpohash.verify/1`` report does not carry but a person or a CI system needs.

    The commands are built by the CLI from the options it was given, so a next step names the same
    store, experiments and tag keys and can be pasted as is.
    """

    runs: tuple[CheckedRun, ...] = ()
    backfill_command: str = "hpohash backfill --dry-run"
    diff_command: str = "hpohash diff"
    statistics: bool = False
    strict: bool = False
    to_file: bool = False


@dataclass(frozen=True)
class BackfillContext:
    """The commands backfill's last lines suggest: apply the dry run, undo the journal."""

    apply_command: str | None = None
    undo_command: str = "hpohash undo"


class Renderer(Protocol):
    """What one output format implements (a module per format); each receives a typed report.

    ``github`` and ``junit`` implement ``render_verify`` only: they are CI formats for verify.
    """

    def render_verify(self, verify: Any, *, quiet: bool = False, ctx: Any = None) -> None: ...
    def render_backfill(self, report: Any, *, preview: bool = False, ctx: Any = None) -> None: ...
    def render_undo(self, report: Any, *, preview: bool = False) -> None: ...
    def render_diff(self, report: dict[str, Any]) -> None: ...
    def render_hash(self, report: dict[str, Any], *, show_key: bool = False) -> None: ...
    def render_rules(self, rules: Any, *, detail: bool = False) -> None: ...
    def render_demo(self, created: dict[str, Any]) -> None: ...


#: the functions each format module provides (a test holds the modules to it)
RENDER_FUNCTIONS = tuple(name for name in vars(Renderer) if name.startswith("render_"))
