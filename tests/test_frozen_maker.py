"""``perf.frozen_maker``: the fast way findings, planned changes and run records are made gives the
very instances their own ``__init__`` gives."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from hpohash.audit import Finding, _new_finding
from hpohash.perf import frozen_maker
from hpohash.plan import PlannedChange, _new_change
from hpohash.records import EMPTY, RunRecord, RunStub, _new_record, new_stub

FIELDS = ("HH120", "error", "run-1", "trial", "parent-1", "trial hash is v1", "abc", "def", "v1", True)


def test_a_finding_made_fast_is_a_finding_in_every_way() -> None:
    fast, slow = _new_finding(*FIELDS), Finding(*FIELDS)
    assert type(fast) is Finding
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert fast.as_dict() == slow.as_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.code = "HH100"  # type: ignore[misc]
    assert not hasattr(fast, "__dict__")
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert type(pickle.loads(pickle.dumps(slow))) is Finding


def test_defaults_and_keywords_are_the_classes_own() -> None:
    short = ("HH100", "error", "r", "parent", None, "m")
    assert _new_finding(*short) == Finding(*short)
    assert _new_finding(*FIELDS[:6], cause="v2") == Finding(*FIELDS[:6], cause="v2")
    change = ("r", "trial", "code.trial_key_hash", None, "new", "why")
    assert _new_change(*change) == PlannedChange(*change) and _new_change(*change).fixes == ()
    record = ("r", "1", "name", "/root", "active", "FINISHED", 5, EMPTY, EMPTY, EMPTY)
    assert _new_record(*record) == RunRecord(*record) and _new_record(*record, True).artifact_uri == "/root/r/artifacts"
    assert new_stub("r", "1", "deleted") == RunStub("r", "1", "deleted") and new_stub("r", "1", "deleted").deleted
    with pytest.raises(TypeError):
        _new_finding("HH100")  # the twin's __init__ checks its arguments as the class's does


def test_a_default_factory_gives_each_instance_its_own_value() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Holder:
        name: str
        items: list[int] = dataclasses.field(default_factory=list)

    make = frozen_maker(Holder)
    first, second = make("a"), make("b")
    assert type(first) is Holder and first.items == [] and first.items is not second.items


def test_a_class_it_does_not_fit_is_made_by_its_own_init() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        name: str

    @dataclasses.dataclass(frozen=True, slots=True)
    class NotInInit:
        name: str
        derived: str = dataclasses.field(init=False, default="x")

    assert frozen_maker(NoSlots) is NoSlots
    assert frozen_maker(NotInInit) is NotInInit
