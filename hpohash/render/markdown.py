"""Markdown renderer: plain GitHub-flavoured tables for CI job summaries."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text: str) -> None:
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
    parts = ["## hpohash hash", ""]
    rows = [
        ("model", report["model"]),
        ("study_key_hash (v2)", f"`{report['study_key_hash']}`"),
        ("data_fingerprint", f"`{report['data_fingerprint']}`"),
        ("eval_fingerprint", f"`{report['eval_fingerprint']}`"),
    ]
    rows += [(f"study_key_hash_v1 ({s})", f"`{h}`") for s, h in report["study_key_hash_v1"].items()]
    rows += [(f"study_family_hash ({s})", f"`{h}`") for s, h in report["study_family_hash"].items()]
    parts.append(table(["field", "value"], rows))
    if report["trials"]:
        parts += ["", table(
            ["hyperparameters", "trial_key_hash"],
            [(json.dumps(t["hyperparameters"], sort_keys=True), f"`{t['trial_key_hash']}`") for t in report["trials"]],
        )]
    if show_key:
        parts += ["", "```json", json.dumps(report["study_key"], sort_keys=True, separators=(",", ":")), "```"]
    emit("\n".join(parts))
