"""Reproduce every value the training pipeline's own code computed for the reference cases.

The cases in tests/reference_vectors/ are copied verbatim from the project's shared
`reference-vectors/` folder (SPEC §3); when that folder is present beside the checkout, a test
checks that the copy has not drifted from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hpohash import hashing as h

VECTORS = Path(__file__).parent / "reference_vectors"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference-vectors"
EXPECTED = json.loads((VECTORS / "expected.json").read_text())
CASES = sorted(EXPECTED)


def load_case(name: str) -> dict:
    return yaml.safe_load((VECTORS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", CASES)
def test_study_level_values(name: str) -> None:
    case, exp = load_case(name), EXPECTED[name]
    data, hpo, train, model = case["data"], case["hpo"], case["train"], case["model"]
    assert h.data_fingerprint(data) == exp["data_fingerprint"]
    assert h.eval_config(hpo, train) == exp["eval_config"]
    assert h.eval_fingerprint(h.eval_config(hpo, train)) == exp["eval_fingerprint"]
    assert h.canonical_json(h.study_key_v2(data, hpo, train, model)) == exp["study_key_v2"]
    assert h.study_key_hash_v2(data, hpo, train, model) == exp["study_key_hash_v2"]
    for schema in ("1.0", "2.0"):
        assert h.study_key_hash_v1(data, hpo, model, schema=schema) == exp["study_key_hash_v1"][schema]
        assert h.study_family_hash(data, hpo, schema=schema) == exp["study_family_hash"][schema]


@pytest.mark.parametrize("name", CASES)
def test_trial_hashes_all_variants(name: str) -> None:
    case, exp = load_case(name), EXPECTED[name]
    sh = h.compute_study_hashes(case["data"], case["hpo"], case["train"], case["model"])
    assert len(case["hyperparameters"]) == len(exp["trials"])
    for hp, trial in zip(case["hyperparameters"], exp["trials"], strict=True):
        assert hp == trial["hyperparameters"]  # YAML 1.1 typing kept ("1e-05" stays a string)
        for schema in ("1.0", "2.0"):
            v1 = sh.study_key_hash_v1[schema]
            assert h.trial_key_hash(sh.study_key_hash, hp, schema=schema) == trial["trial_key_hash_v2"][schema]
            assert h.trial_key_hash(v1, hp, schema=schema) == trial["trial_key_hash_v1"][schema]
            assert h.trial_key_hash(v1[:8], hp, schema=schema) == trial["trial_key_hash_folder8"][schema]


def test_c01_exact_literals() -> None:
    """Spell the headline values out, so a change to expected.json alone cannot hide a regression."""
    case = load_case("c01_realistic.yaml")
    assert (
        h.study_key_hash_v2(case["data"], case["hpo"], case["train"], "distilbert")
        == "cd9c89401962f762951d8cf6de25b45cc38a94bb839e89432352858752a7c3c4"
    )
    assert (
        h.trial_key_hash("cd9c89401962f762951d8cf6de25b45cc38a94bb839e89432352858752a7c3c4", case["hyperparameters"][0])
        == "8c74985da8b4b73728728cce48c6eb4adef826d5fc78c1d6977d5c6165aee147"
    )


def test_yaml_11_keeps_1e_minus_5_a_string() -> None:
    case = load_case("c01_realistic.yaml")
    assert case["hpo"]["search_space"]["learning_rate"]["min"] == "1e-5"


@pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=(
        f"nothing to compare with: {SHARED} (the project's shared folder the copy in tests/reference_vectors "
        "came from) exists only in the project's workspace, not in a plain clone; the copy itself is tested"
    ),
)
def test_copy_matches_shared_folder() -> None:
    for name in [*CASES, "expected.json"]:
        assert (VECTORS / name).read_bytes() == (SHARED / name).read_bytes(), name


def test_null_stays_null_and_absent_gets_default() -> None:
    with_null = h.study_key_v2({"split_seed": None}, {}, {}, "m")
    absent = h.study_key_v2({}, {}, {}, "m")
    assert with_null["data"]["split_seed"] is None
    assert absent["data"]["split_seed"] == "default"


def test_content_and_manifest_hash_win() -> None:
    assert h.data_fingerprint({"content_hash": "abc", "manifest_hash": "x"}) == h.sha256_hex("abc")
    assert h.data_fingerprint({"content_hash": "", "manifest_hash": 12}) == h.sha256_hex("12")


def test_eval_config_precedence() -> None:
    assert h.eval_config({"evaluation": {"a": 1}}, {"eval": {"b": 2}}) == {"b": 2}
    assert h.eval_config({"evaluation": {"a": 1}}, {"eval": {}}) == {"a": 1}
    derived = {"evaluator_version": "default", "metric": {"metric": "f1"}}
    assert h.eval_config({"objective": {"metric": "f1"}}, {}) == derived
    assert h.eval_config({"k_fold": {}}, {}) == {"evaluator_version": "default", "metric": {}}
    assert h.eval_config({}, {}) == {"evaluator_version": "default"}
    assert h.seed_eval_config({"objective": {"metric": "f1"}}, {}) == {}


def test_v1_benchmark_section() -> None:
    p = h.study_key_v1({}, {}, "m", benchmark={"benchmarking": {"max_length": 256}})
    assert p["benchmark"] == {"metric": "macro-f1", "max_length": 256}
    assert h.study_key_v1({}, {}, "m")["benchmark"] == {}
    assert "model" not in h.study_key_v1({}, {}, None)


def _every_hash_one_by_one(data: Any, hpo: Any, train: Any, model: str, benchmark: Any) -> h.StudyHashes:
    """``compute_study_hashes`` as first written, each hash from its own public function: the oracle
    for the version that makes each fingerprint and payload once."""
    schemas = h.TRIAL_KEY_SCHEMAS
    key = h.study_key_v2(data, hpo, train, model)
    return h.StudyHashes(
        model=model,
        data_fingerprint=key["data"]["data_fingerprint"],
        eval_config=h.eval_config(hpo, train),
        eval_fingerprint=key["evaluation"]["eval_fingerprint"],
        study_key=key,
        study_key_hash=h.hash_payload(key),
        study_key_hash_v1={s: h.study_key_hash_v1(data, hpo, model, benchmark=benchmark, schema=s) for s in schemas},
        study_family_hash={s: h.study_family_hash(data, hpo, benchmark=benchmark, schema=s) for s in schemas},
        study_key_hash_seed_eval=h.hash_payload(
            h.study_key_v2(data, hpo, train, model, eval_cfg=h.seed_eval_config(hpo, train))
        ),
        study_key_hash_v1_all=tuple(
            dict.fromkeys(
                h.study_key_hash_v1(data, hpo, model, benchmark=b, schema=s)
                for b in ((benchmark, None) if benchmark is not None else (None,))
                for s in schemas
            )
        ),
    )


_scalar = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4)
_value = st.recursive(_scalar, lambda inner: st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
_section = st.none() | st.dictionaries(
    st.sampled_from(["eval", "evaluation", "objective", "metric", "content_hash", "name", "search_space", "x"]),
    _value,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(data=_section, hpo=_section, train=_section, benchmark=_section, model=st.text(max_size=6))
def test_every_study_hash_is_the_one_its_own_function_makes(
    data: Any, hpo: Any, train: Any, benchmark: Any, model: str
) -> None:
    """Any configs, even ones the pipeline would refuse (a scalar where a section belongs): the same
    hashes, or the same error."""
    made = _outcome(lambda: h.compute_study_hashes(data, hpo, train, model, benchmark=benchmark))
    assert made == _outcome(lambda: _every_hash_one_by_one(data, hpo, train, model, benchmark))


def _outcome(compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return type(exc)
