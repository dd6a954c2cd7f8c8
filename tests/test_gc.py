"""The cyclic garbage collector around a command (hpohash/perf.py): the console script's process freezes
what a pause made instead of walking it in the full collection the pause owes (0.15 s after the read,
0.2 s after the audit at 100,000 runs); a library caller's objects are never frozen. And nothing a read
keeps may hang on a reference cycle: frozen, it would never be freed (verify lets go of each study's
records once it is audited)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from types import MappingProxyType

import pytest

from hpohash import perf
from hpohash.classify import classify
from hpohash.records import RunRecord
from hpohash.tags import TagRegistry


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test found it, nothing left frozen, the library's default restored."""
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        perf._freeze = False
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


def _record(run_id: str, tags: dict[str, str]) -> RunRecord:
    empty = MappingProxyType({})
    return RunRecord(run_id, "0", "", "", "active", "FINISHED", 0, MappingProxyType(tags), empty, empty)


def test_classify_leaves_no_reference_cycle_holding_the_runs(collector: None) -> None:
    runs = {
        "p": _record("p", {"code.stage": "hpo"}),
        "t": _record("t", {"code.stage": "hpo", "mlflow.parentRunId": "p"}),
        "r": _record("r", {"code.stage": "hpo_refit", "mlflow.parentRunId": "p"}),
    }
    gc.disable()  # what only a collection would free stays, and shows in the count
    before = sys.getrefcount(runs)
    roles, study = classify(runs, TagRegistry())
    assert roles == {"p": "parent", "t": "trial", "r": "refit"} and study == {"t": "p", "r": "p"}
    assert sys.getrefcount(runs) == before


def test_a_library_caller_s_objects_are_never_frozen(collector: None) -> None:
    with perf.gc_paused():
        kept = [[i] for i in range(1000)]
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == 0 and len(kept) == 1000


def test_the_console_script_freezes_what_its_last_pause_made(collector: None) -> None:
    perf.freeze_after_pauses()
    with perf.gc_paused():
        with perf.gc_paused():
            kept = [[i] for i in range(1000)]
        assert not gc.isenabled() and gc.get_freeze_count() == 0  # the outer pause still runs
    assert gc.isenabled() and gc.get_freeze_count() >= len(kept)
