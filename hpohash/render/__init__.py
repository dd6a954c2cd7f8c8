"""One renderer per output format: ``table`` (Rich), ``json``, ``markdown``."""

from __future__ import annotations

import os
import sys


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
