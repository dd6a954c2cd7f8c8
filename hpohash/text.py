"""The two text helpers every room uses: one line for a message, a short form for a hash."""

from __future__ import annotations

import re
from typing import Any

_HEX64 = re.compile(r"[0-9a-f]{64}")


def one_line(value: Any) -> str:
    """Any message (a parser's, MLflow's, an exception's) as one line: errors are one line each."""
    return " ".join(str(value).split())


def shorten(value: str | None, *, keep: int = 12, none: str = "—") -> str:
    """A long value (a hash) as its first ``keep`` characters and an ellipsis; short values
    (``2.0``, ``true``) whole; ``None`` as ``none``."""
    if not value:
        return none
    return value[:keep] + "…" if len(value) > keep + 4 else value


def short_hash(value: str | None) -> str:
    """A 64-character hash as its first 8 characters and an ellipsis; anything else whole (``∅`` for none)."""
    if value is None:
        return "∅"
    return value[:8] + "…" if _HEX64.fullmatch(value) else value
