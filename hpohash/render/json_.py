"""JSON renderer: the SPEC's documented shapes, one object on stdout, nothing else."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from hpohash.render import write_stdout


def emit(obj: Any) -> None:
    """Indented for a person at a terminal; one line otherwise (C encoder: 10,000 runs' findings fast).

    Always strict JSON: a float JSON cannot express (a ``nan`` param typed through a float search
    space) is written as its string instead of the ``NaN`` token strict parsers reject.
    """
    indent = 2 if sys.stdout.isatty() else None
    try:
        text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), indent=indent, ensure_ascii=False, allow_nan=False)
    write_stdout(text + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
    emit(report)


def render_verify(report: dict[str, Any], *, quiet: bool = False, ctx: Any = None) -> None:
    emit(report)


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
