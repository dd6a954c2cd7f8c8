"""Bounded parsing: a hostile or broken document is an error message, never a hang, a crash or 1 GB.

Configs are hashed from their canonical JSON, so every parsed value must be one JSON can express
(SPEC §4: no NaN/Infinity, no dates or binary) and small enough to serialise quickly. YAML keeps
PyYAML's ``safe_load`` semantics (the YAML 1.1 resolver: ``1e-5`` stays a string) and libyaml's
speed; the only addition is a walk over the composed node graph before construction, which counts
every alias use, so a 300-byte "billion laughs" document is refused instead of being expanded.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hpohash.errors import UsageError

#: nesting deeper than this is refused (real configs nest a handful of levels)
MAX_DEPTH = 100
#: values a document may expand to, counting each use of a YAML alias in full
MAX_NODES = 200_000


class LimitError(UsageError, ValueError):
    """A document outside the bounds above, or holding a value JSON cannot express: bad input (exit 2);
    still a ``ValueError`` for callers that catch what ``json``/``yaml`` parsing raises."""


def _yaml_loader() -> type:
    import yaml

    # libyaml's loader when present: the same YAML 1.1 safe resolver, several times faster
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` with the expanded size and depth of the document bounded.

    Raises ``yaml.YAMLError`` for malformed YAML and :class:`LimitError` for a document too deep, too
    large once its aliases are expanded, or with an integer too long to convert.
    """
    loader = _yaml_loader()(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError as exc:  # the pure-Python composer recurses per nesting level
            raise LimitError(f"nested deeper than {MAX_DEPTH} levels") from exc
        if node is None:
            return None
        if "*" in text:  # no alias, no expansion: ordinary configs keep libyaml's speed
            _check_nodes(node)
        try:
            return loader.construct_document(node)
        except ValueError as exc:  # int("9" * 5000): Python's integer string conversion limit
            raise LimitError(_int_message(exc)) from exc
    finally:
        loader.dispose()


def _children(node: Any) -> list[Any]:
    value = node.value
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, tuple):  # a mapping's (key node, value node)
                out.extend(item)
            else:
                out.append(item)
        return out
    return []


def _check_nodes(root: Any) -> None:
    """Expanded size and depth of a composed YAML node graph, each shared node measured once."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        nid = id(node)
        if finished:
            on_path.discard(nid)
            kids = _children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[nid] > MAX_NODES:
                raise LimitError(
                    f"expands to more than {MAX_NODES:,} values (YAML aliases repeat their anchor's "
                    "content): refusing to expand it"
                )
            if depth[nid] > MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels")
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise LimitError("an alias refers to a node that contains it (a recursive structure)")
        if len(on_path) > MAX_DEPTH:
            raise LimitError(f"nested deeper than {MAX_DEPTH} levels")
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _reject_constant(name: str) -> Any:
    raise LimitError(f"{name} is not a value JSON can express")


def load_json(text: str) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity``, overlong integers and runaway nesting.

    Raises ``json.JSONDecodeError`` for malformed JSON and :class:`LimitError` for the rest.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise LimitError(f"nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError:
        raise
    except LimitError:
        raise
    except ValueError as exc:
        raise LimitError(_int_message(exc)) from exc


def _int_message(exc: ValueError) -> str:
    text = str(exc)
    if "integer string conversion" in text:
        return "holds an integer too long to convert (more than 4300 digits)"
    return " ".join(text.split())


def _where(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path) or "the top level"


def check_value(value: Any) -> None:
    """Raise :class:`LimitError` naming the first place ``value`` is not JSON-expressible or too deep."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    seen = 0
    while stack:
        v, path = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise LimitError(f"holds more than {MAX_NODES:,} values")
        if len(path) > MAX_DEPTH:
            raise LimitError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(v, float):
            if not math.isfinite(v):
                raise LimitError(f"holds a value JSON cannot express: {v!r} at {_where(path)}")
        elif isinstance(v, dict):
            for k, item in v.items():
                if isinstance(k, float) and not math.isfinite(k):
                    raise LimitError(f"holds a key JSON cannot express: {k!r} at {_where(path)}")
                if not isinstance(k, str | int | float | bool | type(None)):
                    raise LimitError(
                        f"holds a key JSON cannot express: {type(k).__name__} {str(k)[:40]!r} at {_where(path)}"
                    )
                stack.append((item, (*path, k)))
        elif isinstance(v, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(v))
        elif not isinstance(v, str | int | bool | type(None)):
            raise LimitError(f"holds a value JSON cannot express: {type(v).__name__} at {_where(path)}")
    try:
        json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LimitError(f"holds a value JSON cannot express: {' '.join(str(exc).split())}") from exc


def read_bounded(path: Any, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a file, pipe or process substitution (``<(…)``), never more."""
    with open(path, "rb") as fh:
        return fh.read(limit + 1)
