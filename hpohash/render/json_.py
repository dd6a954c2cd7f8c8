"""JSON renderer: the SPEC's documented shapes (each report's ``as_dict``), one object, nothing else."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpohash.render import BackfillContext, VerifyContext
    from hpohash.reports import BackfillReport, DiffReport, UndoReport, VerifyReport
    from hpohash.rules import Rule


def _pretty(to_file: bool = False) -> bool:
    """Indented for a person at a terminal; one line otherwise (C encoder: 10,000 runs' findings fast)."""
    return sys.stdout.isatty() and not to_file


def to_json(obj: Any, *, pretty: bool = False) -> str:
    """The one JSON encoding of every report: strict JSON (a float JSON cannot express, a ``nan``
    param typed through a float search space, is written as its string instead of the ``NaN`` token
    strict parsers reject), non-ASCII as is, one line unless ``pretty``."""
    return _dumps(obj, 2 if pretty else None) + "\n"


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


class _Encoded(dict[Any, str]):
    """Each distinct value's JSON, made once (a finding's strings mostly repeat: code, stage, parent,
    message)."""

    def __missing__(self, value: Any) -> str:
        text = self[value] = _encode_str(value) if type(value) is str else _dumps(value)
        return text


_encode_str = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes a str as


def encode_findings(findings: Sequence[Any]) -> str:
    """``json.dumps([f.as_dict() for f in findings], ensure_ascii=False)[1:-1]``, the same bytes, without
    the dicts (at 100,000 runs, 199,000 findings: a sixth of verify's time went to them).

    Only a finding's run id, expected and actual values are its own; the text around them repeats (one
    head per code and severity, one middle per stage, parent and message: a study's trials share it),
    so it is made once and the three are spliced in."""
    e = _Encoded({None: "null"})
    s = _encode_str
    heads: dict[tuple[Any, Any], str] = {}
    middles: dict[tuple[Any, Any, Any], str] = {}
    out = []
    for f in findings:
        head = heads.get(key := (f.code, f.severity))
        if head is None:
            head = heads[key] = f'{{"code": {e[f.code]}, "severity": {e[f.severity]}, "run_id": '
        middle = middles.get(place := (f.stage, f.parent_run_id, f.message))
        if middle is None:
            middle = middles[place] = (
                f', "stage": {e[f.stage]}, "parent_run_id": {e[f.parent_run_id]}, "message": {e[f.message]}, '
                '"expected": '
            )
        rid, expected, actual, fixable = f.run_id, f.expected, f.actual, f.fixable
        out.append(
            f"{head}{s(rid) if rid.__class__ is str else e[rid]}{middle}"
            f"{s(expected) if expected.__class__ is str else e[expected]}, "
            f'"actual": {s(actual) if actual.__class__ is str else e[actual]}, "cause": {e[f.cause]}, '
            f'"fixable": {"true" if fixable is True else "false" if fixable is False else _dumps(fixable)}}}'
        )
    return ", ".join(out)


def to_json_streaming(obj: dict[str, Any], last_key: str, *, pretty: bool = False) -> Iterator[str]:
    """``to_json`` with the list under ``obj``'s last key made a chunk at a time (same bytes): the
    findings of a 100,000-run store are never one string, nor a list of dicts, in memory."""
    items = obj[last_key]
    findings = items.findings() if hasattr(items, "findings") else None  # ``FindingDicts``
    if pretty or list(obj)[-1] != last_key:
        yield to_json(obj, pretty=pretty)
        return
    head = _dumps({**obj, last_key: []})
    assert head.endswith("[]}")
    yield head[:-2]
    # a batch of items is one encoder call: "[a, b]" is "[" + a + ", " + b + "]" for every item
    if findings is not None:
        sep = ""
        for start in range(0, len(findings), STREAM_CHUNK):
            yield sep + encode_findings(findings[start : start + STREAM_CHUNK])
            sep = ", "
        yield "]}\n"
        return
    batch: list[Any] = []
    sep = ""
    for item in items:
        batch.append(item)
        if len(batch) >= STREAM_CHUNK:
            yield sep + _dumps(batch)[1:-1]
            batch.clear()
            sep = ", "
    yield (sep + _dumps(batch)[1:-1] if batch else "") + "]}\n"


def format_hash(report: dict[str, Any], *, show_key: bool = False) -> str:
    return to_json(report, pretty=_pretty())


def format_verify(report: VerifyReport, ctx: VerifyContext, *, quiet: bool = False) -> Iterator[str]:
    return to_json_streaming(report.as_dict(), "findings", pretty=_pretty(ctx.to_file))


def format_demo(created: dict[str, Any]) -> str:
    return to_json({"schema": "hpohash.demo/1", **created}, pretty=_pretty())


def format_backfill(report: BackfillReport, ctx: BackfillContext, *, preview: bool = False) -> str:
    return "" if preview else to_json(report.as_dict(), pretty=_pretty())


def format_undo(report: UndoReport, *, preview: bool = False) -> str:
    return "" if preview else to_json(report.as_dict(), pretty=_pretty())


def format_diff(report: DiffReport) -> str:
    return to_json(report.as_dict(), pretty=_pretty())


def format_rules(rules: Iterable[Rule], *, detail: bool = False) -> str:
    return to_json({"schema": "hpohash.rules/1", "rules": [r.as_dict() for r in rules]}, pretty=_pretty())
