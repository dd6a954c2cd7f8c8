"""hpohash: audit and repair the study/trial hash and link tags of HPO runs in MLflow.

The commands as functions (no shelling out from a pipeline or a notebook)::

    import hpohash
    report = hpohash.verify(tracking_uri="sqlite:///mlflow.db", experiments=["hpohash-demo"])
    plan = hpohash.plan_backfill(tracking_uri="sqlite:///mlflow.db", experiments=["hpohash-demo"])
    result = hpohash.apply(plan, journal="backfill.jsonl")

Imports are lazy: ``import hpohash`` (and ``hpohash.hashing``) never imports MLflow.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from hpohash.version import __version__ as __version__

__all__ = [
    "RULES",
    "Aborted",
    "ArgumentError",
    "BackfillPlan",
    "BackfillReport",
    "BackendError",
    "DiffReport",
    "Finding",
    "HpohashError",
    "Request",
    "Rule",
    "Store",
    "UndoReport",
    "UsageError",
    "VerifyReport",
    "apply",
    "diff",
    "plan_backfill",
    "undo",
    "verify",
]

_LAZY = {
    "verify": "hpohash.api",
    "plan_backfill": "hpohash.api",
    "apply": "hpohash.api",
    "undo": "hpohash.api",
    "diff": "hpohash.api",
    "Aborted": "hpohash.api",
    "Request": "hpohash.request",
    "Store": "hpohash.request",
    "ArgumentError": "hpohash.errors",
    "BackfillPlan": "hpohash.reports",
    "BackfillReport": "hpohash.reports",
    "DiffReport": "hpohash.reports",
    "UndoReport": "hpohash.reports",
    "VerifyReport": "hpohash.reports",
    "Finding": "hpohash.audit",
    "RULES": "hpohash.rules",
    "Rule": "hpohash.rules",
    "HpohashError": "hpohash.errors",
    "UsageError": "hpohash.errors",
    "BackendError": "hpohash.errors",
}

if TYPE_CHECKING:
    from hpohash.api import Aborted, apply, diff, plan_backfill, undo, verify
    from hpohash.audit import Finding
    from hpohash.errors import ArgumentError, BackendError, HpohashError, UsageError
    from hpohash.reports import BackfillPlan, BackfillReport, DiffReport, UndoReport, VerifyReport
    from hpohash.request import Request, Store
    from hpohash.rules import RULES, Rule


def __getattr__(name: str) -> Any:
    """The public names, imported when first used (the CLI's --help and ``hash`` stay fast)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hpohash' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


class _Package(types.ModuleType):
    """``hpohash.diff`` is the function, also once the ``hpohash/diff.py`` module has been imported.

    Importing a submodule binds it on its package under the same name, which would turn the public
    ``hpohash.diff(...)`` into a module for the rest of the process; the module stays reachable as
    ``sys.modules["hpohash.diff"]`` (``from hpohash.diff import …`` works as ever).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name, "").startswith("hpohash.api"):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
