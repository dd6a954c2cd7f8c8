"""JSON renderer: the SPEC's documented shapes, one object on stdout, nothing else."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hpohash.render import write_stdout

if TYPE_CHECKING:
    from hpohash.reports import VerifyReport


def emit(obj: Any) -> None:
    """Indented for a person at a terminal; one line otherwise (C encoder: 10,000 runs' findings fast).

    Always strict JSON: a float JSON cannot express (a ``nan`` param typed through a float search
    space) is written as its string instead of the ``NaN`` token strict parsers reject.
    """
    write_stdout(_dumps(obj, 2 if sys.stdout.isatty() else None) + "\n")


def _dumps(obj: Any, indent: int | None = None) -> str:
    try:
        return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, default=_as_list)
    except ValueError:
        return json.dumps(_finite(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def _as_list(obj: Any) -> Any:
    """Lazy sequences (``FindingDicts``) where the encoder expects a list."""
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple) or (isinstance(obj, Sequence) and not isinstance(obj, str | bytes)):
        return [_finite(v) for v in obj]
    return obj


STREAM_CHUNK = 2000


def emit_streaming(obj: dict[str, Any], last_key: str) -> None:
    """``emit`` with the list under ``obj``'s last key written a chunk at a time (same bytes): the
    findings of a 100,000-run store are never one string, nor a list of dicts, in memory."""
    items = obj[last_key]
    if sys.stdout.isatty() or list(obj)[-1] != last_key:
        emit(obj)
        return
    head = _dumps({**obj, last_key: []})
    assert head.endswith("[]}")
    write_stdout(head[:-2])
    chunk: list[str] = []
    for i, item in enumerate(items):
        chunk.append(("" if i == 0 else ", ") + _dumps(item))
        if len(chunk) >= STREAM_CHUNK:
            write_stdout("".join(chunk))
            chunk.clear()
    write_stdout("".join(chunk) + "]}\n")


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
    emit(report)


def render_verify(verify: VerifyReport, *, quiet: bool = False, ctx: Any = None) -> None:
    report = verify.as_dict()
    emit_streaming(report, "findings")


def render_demo(created: dict[str, Any]) -> None:
    emit({"schema": "hpohash.demo/1", **created})


def render_backfill(report: Any, *, preview: bool = False, ctx: Any = None) -> None:
    if not preview:
        emit(report.as_dict())


def render_undo(report: Any, *, preview: bool = False) -> None:
    if not preview:
        emit(report.as_dict())


def render_diff(report: dict[str, Any]) -> None:
    emit(report)


def render_rules(rules: Any, *, detail: bool = False) -> None:
    emit({"schema": "hpohash.rules/1", "rules": [r.as_dict() for r in rules]})
