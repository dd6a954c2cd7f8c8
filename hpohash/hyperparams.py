"""Typed hyperparameters recovered from MLflow's string params through the search space (SPEC §4).

MLflow stores every param as a string; the trial key was made from typed values, so ``"16"`` must
become the int 16 when the search space lists ints, and ``"True"`` the bool True.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpohash.hashing import EXCLUDED_HYPERPARAMETERS

FLOAT_TYPES = frozenset({"uniform", "loguniform", "float", "quniform", "qloguniform", "normal", "lognormal"})
INT_TYPES = frozenset({"int", "randint", "qrandint", "integer"})
CHOICE_TYPES = frozenset({"choice", "categorical"})


@dataclass(frozen=True)
class Recovered:
    """Typed values plus the params whose string did not fit the type the search space declares."""

    values: dict[str, Any]
    mismatches: tuple[str, ...] = ()


def parse_untyped(text: str) -> Any:
    """int, then float, then ``true``/``false``, else the string itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return text


def _choices(spec: Mapping[str, Any]) -> list[Any]:
    for key in ("values", "choices", "options"):
        values = spec.get(key)
        if isinstance(values, list):
            return values
    return []


def recover_value(text: str, spec: Any) -> tuple[Any, bool]:
    """(typed value, fits) for one param string under its search-space entry."""
    kind = str(spec.get("type", "")).lower() if isinstance(spec, Mapping) else ""
    if kind in FLOAT_TYPES:
        try:
            return float(text), True
        except ValueError:
            return parse_untyped(text), False
    if kind in INT_TYPES:
        try:
            return int(text), True
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                return parse_untyped(text), False
            if as_float.is_integer():
                return int(as_float), True
            return as_float, False
    if kind in CHOICE_TYPES:
        for option in _choices(spec):
            if str(option) == text:
                return option, True
        return parse_untyped(text), False
    return parse_untyped(text), True


def recover_hyperparameters(params: Mapping[str, str], search_space: Any) -> Recovered:
    """Typed hyperparameters of a trial: search-space params only (all params if the space is empty)."""
    space = search_space if isinstance(search_space, Mapping) else {}
    values: dict[str, Any] = {}
    mismatches: list[str] = []
    if space:
        for name, spec in space.items():
            if name in EXCLUDED_HYPERPARAMETERS or name not in params:
                continue
            value, fits = recover_value(params[name], spec)
            values[name] = value
            if not fits:
                mismatches.append(name)
    else:
        for name, text in params.items():
            if name not in EXCLUDED_HYPERPARAMETERS:
                values[name] = parse_untyped(text)
    return Recovered(values=values, mismatches=tuple(mismatches))
