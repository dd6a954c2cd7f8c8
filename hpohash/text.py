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


def parse_since(text: str, *, now: float | None = None) -> int:
    """``--since`` as epoch milliseconds: a duration back from now (``90m``, ``12h``, ``1d``, ``2w``)
    or an ISO date/time (``2026-11-20``, ``2026-11-20T06:00``; UTC unless it names a zone)."""
    import time
    from datetime import UTC, datetime

    from hpohash.errors import ArgumentError

    value = text.strip()
    m = re.fullmatch(r"(\d+)\s*([smhdw])", value.lower())
    if m:
        seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return int(((time.time() if now is None else now) - seconds) * 1000)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ArgumentError.on(
            "since", f"{text!r}: expected a duration like 1d, 12h, 30m, 2w or a date like 2026-11-20[T06:00]"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
