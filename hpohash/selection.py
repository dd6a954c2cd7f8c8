"""``--select`` / ``--ignore``: which finding codes count, by prefix, the way ruff selects rules.

Kept apart from the audit (and free of heavy imports) so a bad code is a usage error before any
connection to the tracking store is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hpohash.errors import ArgumentError, literal
from hpohash.rules import RULES

#: every finding code with the short title ``--statistics`` prints (from the rule catalogue)
CODES: dict[str, str] = {code: rule.short for code, rule in RULES.items()}


def _split(values: Iterable[str], argument: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            code = part.strip().upper()
            if not code:
                continue
            if code != "ALL" and not any(c.startswith(code) for c in CODES):
                raise ArgumentError(
                    "{} " + literal(part.strip()) + ": no finding code starts with it (codes are HH100–HH160)", argument
                )
            out.append("HH" if code == "ALL" else code)
    return tuple(out)


@dataclass(frozen=True)
class Selection:
    """Codes selected and ignored by prefix; the longest matching prefix decides, ``--ignore`` on a tie."""

    select: tuple[str, ...] = ("HH",)
    ignore: tuple[str, ...] = ()

    @classmethod
    def parse(cls, select: Sequence[str], ignore: Sequence[str]) -> Selection:
        return cls(_split(select, "select") or ("HH",), _split(ignore, "ignore"))

    def wants(self, code: str) -> bool:
        sel = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ign = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return sel > ign

    def filter(self, findings: Iterable[Any]) -> list[Any]:
        """The findings (objects with a ``code``) this selection keeps, in their order (each code is
        decided once: a large store has hundreds of thousands of findings and some thirty codes)."""
        wanted: dict[str, bool] = {}
        out = []
        for f in findings:
            keep = wanted.get(f.code)
            if keep is None:
                keep = wanted[f.code] = self.wants(f.code)
            if keep:
                out.append(f)
        return out
