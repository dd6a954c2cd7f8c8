"""Typed hyperparameters recovered from MLflow's string params (SPEC §4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hpohash.hashing import EXCLUDED_HYPERPARAMETERS
from hpohash.hyperparams import Recovered, SearchSpace, parse_untyped, recover_hyperparameters, recover_value

SPACE = {
    "backbone": {"type": "choice", "values": ["distilbert"]},
    "learning_rate": {"type": "loguniform", "min": "1e-5", "max": "5e-5"},
    "batch_size": {"type": "choice", "values": [8, 16]},
    "use_crf": {"type": "choice", "values": [True, False]},
    "layers": {"type": "int", "min": 1, "max": 4},
    "optimizer": {"type": "categorical", "values": ["adamw", "sgd"]},
}


def test_recovery_through_search_space() -> None:
    params = {
        "backbone": "distilbert",
        "learning_rate": "1e-05",
        "batch_size": "16",
        "use_crf": "True",
        "layers": "3",
        "optimizer": "sgd",
        "epochs": "5",  # not in the search space: not a hyperparameter
    }
    rec = recover_hyperparameters(params, SPACE)
    assert rec.values == {"learning_rate": 1e-05, "batch_size": 16, "use_crf": True, "layers": 3, "optimizer": "sgd"}
    assert type(rec.values["batch_size"]) is int
    assert rec.values["use_crf"] is True
    assert type(rec.values["learning_rate"]) is float
    assert rec.mismatches == ()


def test_unmatched_values_are_flagged_not_silently_retyped() -> None:
    rec = recover_hyperparameters({"batch_size": "32", "learning_rate": "fast", "layers": "2.5"}, SPACE)
    assert rec.values == {"batch_size": 32, "learning_rate": "fast", "layers": 2.5}
    assert set(rec.mismatches) == {"batch_size", "learning_rate", "layers"}


def test_empty_search_space_takes_all_params_but_excluded() -> None:
    rec = recover_hyperparameters(
        {"lr": "0.001", "bs": "8", "flag": "false", "name": "X", "trial_number": "3", "backbone": "b"}, {}
    )
    assert rec.values == {"lr": 0.001, "bs": 8, "flag": False, "name": "X"}


def test_parse_untyped_order() -> None:
    assert parse_untyped("16") == 16 and type(parse_untyped("16")) is int
    assert parse_untyped("1e-05") == 1e-05
    assert parse_untyped("TRUE") is True
    assert parse_untyped("abc") == "abc"


def test_a_choice_written_twice_the_same_way_recovers_the_first_option() -> None:
    space = {"units": {"type": "choice", "values": [1, "1", True, "True"]}}
    assert recover_hyperparameters({"units": "1"}, space).values["units"] == 1
    assert type(recover_hyperparameters({"units": "1"}, space).values["units"]) is int
    assert recover_hyperparameters({"units": "True"}, space).values["units"] is True


def _one_by_one(params: Mapping[str, str], space: Any) -> Recovered:
    """The recovery spelled out param by param through ``recover_value`` (the oracle of the compiled space)."""
    if not isinstance(space, Mapping) or not space:
        return recover_hyperparameters(params, {})
    values, mismatches = {}, []
    for name, spec in space.items():
        if name in EXCLUDED_HYPERPARAMETERS or name not in params:
            continue
        values[name], fits = recover_value(params[name], spec)
        if not fits:
            mismatches.append(name)
    return Recovered(values, tuple(mismatches))


_TEXTS = st.sampled_from(["16", "16.0", "2.5", "1e-05", "True", "false", "adamw", "", " 8 ", "nan", "-0", "inf"])
_OPTIONS = st.lists(st.one_of(st.integers(-3, 20), st.booleans(), st.floats(allow_nan=False), _TEXTS), max_size=5)
_SPECS = st.one_of(
    st.builds(lambda kind: {"type": kind}, st.sampled_from(["uniform", "LogUniform", "int", "qrandint", "weird", ""])),
    st.builds(lambda kind, opts: {"type": kind, "values": opts}, st.sampled_from(["choice", "categorical"]), _OPTIONS),
    st.builds(lambda opts: {"type": "choice", "options": opts}, _OPTIONS),
    st.none(),
    st.integers(),
)
_NAMES = st.sampled_from(["lr", "batch_size", "dropout", "backbone", "trial_number", "units"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_NAMES, _SPECS, max_size=5), st.dictionaries(_NAMES, _TEXTS, max_size=6))
def test_a_search_space_read_once_recovers_each_trial_as_each_entry_would(space: dict, params: dict) -> None:
    compiled = SearchSpace(space)
    for _ in range(2):  # the same space, reused for another trial, answers the same
        got = compiled.recover(params)
        want = _one_by_one(params, space)
        assert repr(got.values) == repr(want.values) and got.mismatches == want.mismatches
