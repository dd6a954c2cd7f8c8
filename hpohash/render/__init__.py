"""One renderer per output format: ``table`` (Rich), ``json``, ``markdown``, ``github``, ``junit``.

A renderer formats a typed report into text and returns it (an iterator of chunks for streaming
JSON); the caller writes it, to stdout or to the ``-o`` file, with :func:`write_text`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from hpohash.reports import BackfillReport, DiffReport, UndoReport, VerifyReport
    from hpohash.rules import Rule


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


def write_text(text: str | Iterable[str], stream: IO[str] | None = None) -> None:
    """Write what a renderer returned: to stdout (a closed pipe drops the rest), or to an open file."""
    chunks = [text] if isinstance(text, str) else text
    for chunk in chunks:
        if stream is None:
            write_stdout(chunk)
        else:
            stream.write(chunk)


T = TypeVar("T")


def by_run(items: Iterable[T], run_id: Callable[[T], str] = attrgetter("run_id")) -> dict[str, list[T]]:
    """Findings, changes, conflicts or restored tags grouped by run, runs in first-seen order (the
    one grouping every format uses)."""
    runs: dict[str, list[T]] = {}
    for item in items:
        runs.setdefault(run_id(item), []).append(item)
    return runs


@dataclass(frozen=True)
class VerifyContext:
    """What the ``hpohash.verify/1`` report does not carry but a person or a CI system needs.

    The commands are built by the CLI from the options it was given, so a next step names the same
    store, experiments and tag keys and can be pasted as is.
    """

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
    """What one output format implements (a module per format): a typed report in, text out.

    ``github`` and ``junit`` implement ``format_verify`` only: they are CI formats for verify, and
    Click offers them for verify alone.
    """

    def format_verify(
        self, report: VerifyReport, ctx: VerifyContext, *, quiet: bool = False
    ) -> str | Iterable[str]: ...
    def format_backfill(self, report: BackfillReport, ctx: BackfillContext, *, preview: bool = False) -> str: ...
    def format_undo(self, report: UndoReport, *, preview: bool = False) -> str: ...
    def format_diff(self, report: DiffReport) -> str: ...
    def format_hash(self, report: dict[str, Any], *, show_key: bool = False) -> str: ...
    def format_rules(self, rules: Iterable[Rule], *, detail: bool = False) -> str: ...
    def format_demo(self, created: dict[str, Any]) -> str: ...


#: the functions each format module provides (a test holds the modules to it)
RENDER_FUNCTIONS = tuple(name for name in vars(Renderer) if name.startswith("format_"))
