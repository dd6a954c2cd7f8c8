"""Typed hyperparameters recovered from MLflow's string params through the search space (SPEC §4).

MLflow stores every param as a string; the trial key was made from typed values, so ``"16"`` must
become the int 16 when the search space lists ints, and ``"True"`` the bool True.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    return _converter(spec)(text)


def _as_float(text: str) -> tuple[Any, bool]:
    try:
        return float(text), True
    except ValueError:
        return parse_untyped(text), False


def _as_int(text: str) -> tuple[Any, bool]:
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


def _untyped(text: str) -> tuple[Any, bool]:
    return parse_untyped(text), True


def _converter(spec: Any) -> Callable[[str], tuple[Any, bool]]:
    """How one search-space entry turns a param string into (typed value, fits)."""
    kind = str(spec.get("type", "")).lower() if isinstance(spec, Mapping) else ""
    if kind in FLOAT_TYPES:
        return _as_float
    if kind in INT_TYPES:
        return _as_int
    if kind in CHOICE_TYPES:
        options: dict[str, Any] = {}
        for option in _choices(spec):
            options.setdefault(str(option), option)  # the first option written that way, as a scan finds it

        def as_choice(text: str) -> tuple[Any, bool]:
            if text in options:
                return options[text], True
            return parse_untyped(text), False

        return as_choice
    return _untyped


class SearchSpace:
    """A search space read once for every trial of a study: which entry is a float, an int or a choice
    (and each choice's options as strings) is decided here, not again for each param of each run."""

    __slots__ = ("_entries", "_empty")

    def __init__(self, search_space: Any) -> None:
        space = search_space if isinstance(search_space, Mapping) else {}
        self._empty = not space
        self._entries = tuple(
            (name, _converter(spec)) for name, spec in space.items() if name not in EXCLUDED_HYPERPARAMETERS
        )

    def recover(self, params: Mapping[str, str]) -> Recovered:
        """Typed hyperparameters of a trial: search-space params only (all params if the space is empty)."""
        values: dict[str, Any] = {}
        if self._empty:
            for name, text in params.items():
                if name not in EXCLUDED_HYPERPARAMETERS:
                    values[name] = parse_untyped(text)
            return Recovered(values=values)
        mismatches: list[str] = []
        get = params.get
        for name, convert in self._entries:
            text = get(name, _ABSENT)
            if text is _ABSENT:
                continue
            value, fits = convert(text)
            values[name] = value
            if not fits:
                mismatches.append(name)
        return Recovered(values=values, mismatches=tuple(mismatches))


_ABSENT: Any = object()


def recover_hyperparameters(params: Mapping[str, str], search_space: Any) -> Recovered:
    """Typed hyperparameters of a trial: search-space params only (all params if the space is empty)."""
    return SearchSpace(search_space).recover(params)
