"""``--select`` / ``--ignore``: which finding codes count, by prefix, the way ruff selects rules.

Kept apart from the audit (and free of heavy imports) so a bad code is a usage error before any
connection to the tracking store is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hpohash.errors import UsageError

#: every finding code (SPEC §5) with the short title ``--statistics`` prints
CODES: dict[str, str] = {
    "HH100": "parent has no study_key_hash",
    "HH101": "parent schema tag missing or not 2.0",
    "HH102": "parent v2 tag differs from its configs' v2 hash",
    "HH103": "parent fingerprint tags missing or differ",
    "HH110": "trial study_key_hash is not the study's v2 hash",
    "HH111": "trial has no trial_key_hash",
    "HH112": "trial trial_key_hash is not its v2 trial key",
    "HH120": "refit study_key_hash is not the study's v2 hash",
    "HH121": "refit has no link to its trial",
    "HH122": "refit link names no trial of the study",
    "HH123": "refit trial_key_hash differs from its trial's",
    "HH124": "refit artifact not available",
    "HH130": "champion trial resolves to no refit",
    "HH140": "configs not found",
    "HH141": "config artifact malformed",
    "HH142": "no config candidate reproduces the parent hash",
    "HH150": "parent not in scope",
    "HH160": "output_dir folder is not the v2 prefix",
}


def _split(values: Iterable[str], option: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            code = part.strip().upper()
            if not code:
                continue
            if code != "ALL" and not any(c.startswith(code) for c in CODES):
                raise UsageError(f"{option} {part.strip()}: no finding code starts with it (codes are HH100–HH160)")
            out.append("HH" if code == "ALL" else code)
    return tuple(out)


@dataclass(frozen=True)
class Selection:
    """Codes selected and ignored by prefix; the longest matching prefix decides, ``--ignore`` on a tie."""

    select: tuple[str, ...] = ("HH",)
    ignore: tuple[str, ...] = ()

    @classmethod
    def parse(cls, select: Sequence[str], ignore: Sequence[str]) -> Selection:
        return cls(_split(select, "--select") or ("HH",), _split(ignore, "--ignore"))

    def wants(self, code: str) -> bool:
        sel = max((len(p) for p in self.select if code.startswith(p)), default=-1)
        ign = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return sel > ign

    def filter(self, findings: Iterable[Any]) -> list[Any]:
        """The findings (objects with a ``code``) this selection keeps, in their order."""
        return [f for f in findings if self.wants(f.code)]
