"""JSON renderer: the SPEC's documented shapes, one object on stdout, nothing else."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
    emit(report)
