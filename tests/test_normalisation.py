"""Property tests of hyperparameter normalisation (SPEC §3 ``norm``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpohash import hashing as h

values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**9), max_value=10**9),
    st.booleans(),
    st.text(max_size=12),
)
names = st.text(alphabet="abcdefghij_", min_size=1, max_size=8).filter(lambda s: s not in h.EXCLUDED_HYPERPARAMETERS)
hps = st.dictionaries(names, values, max_size=6)
STUDY = "a" * 64


@given(hps)
def test_key_order_is_irrelevant(hp: dict) -> None:
    reversed_hp = dict(reversed(list(hp.items())))
    assert h.trial_key_hash(STUDY, hp) == h.trial_key_hash(STUDY, reversed_hp)


@given(hps, st.text(max_size=5), st.integers(), st.text(max_size=5))
def test_excluded_keys_are_ignored(hp: dict, backbone: str, number: int, run_id: str) -> None:
    noisy = dict(hp, backbone=backbone, trial_number=number, run_id=run_id)
    assert h.trial_key_hash(STUDY, noisy) == h.trial_key_hash(STUDY, hp)


@given(st.floats(min_value=1e-12, max_value=1e12, allow_nan=False))
def test_floats_equal_to_12_significant_digits_collapse(x: float) -> None:
    jitter = x * (1 + 1e-15)
    if f"{x:.12e}" == f"{jitter:.12e}":
        assert h.trial_key_hash(STUDY, {"lr": x}) == h.trial_key_hash(STUDY, {"lr": jitter})


def test_specific_collapse_and_distinction() -> None:
    assert h.normalise_value(2.3300000000000001e-05) == h.normalise_value(2.33e-05)
    assert h.normalise_value(0.0000233000001) == 2.33000001e-05
    assert h.normalise_value(0.0000233000001) != h.normalise_value(2.33e-05)


def test_zero_and_negative_zero() -> None:
    assert h.normalise_value(-0.0) == 0.0
    assert h.trial_key_hash(STUDY, {"x": -0.0}) == h.trial_key_hash(STUDY, {"x": 0.0})
    assert h.canonical_json(h.normalise_hyperparameters({"x": -0.0})) == '{"x":0.0}'


def test_types_kept() -> None:
    assert h.normalise_value(True) is True
    assert h.normalise_value(16) == 16 and isinstance(h.normalise_value(16), int)
    assert h.normalise_value("  AdamW ") == "adamw"
    assert h.normalise_value(None) == "none"
    assert h.normalise_value([1, "A"]) == "[1, 'a']"
    # an int and a float of the same value are different trials
    assert h.trial_key_hash(STUDY, {"bs": 16}) != h.trial_key_hash(STUDY, {"bs": 16.0})


@given(hps)
def test_normalisation_is_idempotent(hp: dict) -> None:
    once = h.normalise_hyperparameters(hp)
    assert h.normalise_hyperparameters(once) == once


@given(hps, st.sampled_from(["1.0", "2.0"]), st.text(max_size=70))
def test_spliced_trial_hash_equals_hash_of_the_whole_payload(hp: dict, schema: str, study: str) -> None:
    """trial_key_hash splices pre-computed canonical hyperparameters; it must equal H(canon(trial_key))."""
    assert h.trial_key_hash(study, hp, schema=schema) == h.hash_payload(h.trial_key(study, hp, schema=schema))


_SCALARS = st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.integers()))


@given(st.dictionaries(st.text(max_size=6), _SCALARS, max_size=6))
def test_the_trial_key_hyperparameters_are_the_canonical_json_of_their_normalised_values(hp: dict) -> None:
    """``canonical_hyperparameters`` joins them with an encoder made once; the bytes are ``canonical_json``'s."""
    assert h.canonical_hyperparameters(hp) == h.canonical_json(h.normalise_hyperparameters(hp))


def test_hyperparameters_json_cannot_order_are_refused_as_canonical_json_refuses_them() -> None:
    with pytest.raises(TypeError):
        h.canonical_hyperparameters({1: 1.0, "a": 2.0})  # keys of two types cannot be sorted
    assert h.canonical_hyperparameters({2: "X", 1: True}) == '{"1":true,"2":"x"}'
