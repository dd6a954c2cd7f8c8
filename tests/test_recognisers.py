"""Each legacy cause is produced for the value it describes, and not for the others (SPEC §3)."""

from __future__ import annotations

import pytest
import yaml

from hpohash import hashing as h
from tests.test_hashing_vectors import EXPECTED, VECTORS

CASE = yaml.safe_load((VECTORS / "c01_realistic.yaml").read_text())
EXP = EXPECTED["c01_realistic.yaml"]
SH = h.compute_study_hashes(CASE["data"], CASE["hpo"], CASE["train"], CASE["model"])
HP = CASE["hyperparameters"][0]
T = EXP["trials"][0]


def test_study_hash_causes() -> None:
    assert SH.recognise_study_hash(EXP["study_key_hash_v2"]) == "v2"
    assert SH.recognise_study_hash(EXP["study_key_hash_v1"]["1.0"]) == "v1"
    assert SH.recognise_study_hash(EXP["study_key_hash_v1"]["2.0"]) == "v1"
    assert SH.recognise_study_hash("0" * 64) == "unknown"
    assert SH.recognise_study_hash(None) is None
    assert SH.recognise_study_hash("") is None


def test_seed_eval_cause() -> None:
    seed = h.hash_payload(h.study_key_v2(CASE["data"], CASE["hpo"], CASE["train"], "distilbert", eval_cfg={}))
    assert seed != EXP["study_key_hash_v2"]
    assert SH.recognise_study_hash(seed) == "seed-eval"


def test_seed_eval_same_as_v2_when_train_eval_given() -> None:
    """With an explicit train.eval both formulas agree, so the value is simply v2."""
    train = {"eval": {"evaluator_version": "x"}}
    sh = h.compute_study_hashes({}, {"objective": {}}, train, "m")
    assert sh.study_key_hash_seed_eval == sh.study_key_hash
    assert sh.recognise_study_hash(sh.study_key_hash) == "v2"


@pytest.mark.parametrize("schema", ["1.0", "2.0"])
def test_trial_hash_causes(schema: str) -> None:
    assert SH.recognise_trial_hash(T["trial_key_hash_v2"][schema], HP) == ("v2", schema)
    assert SH.recognise_trial_hash(T["trial_key_hash_v1"][schema], HP) == ("v1", schema)
    assert SH.recognise_trial_hash(T["trial_key_hash_folder8"][schema], HP) == ("folder8", schema)


def test_trial_hash_unknown_and_other_hyperparameters() -> None:
    assert SH.recognise_trial_hash("f" * 64, HP) == ("unknown", None)
    other = dict(HP, learning_rate=9e-5)
    assert SH.recognise_trial_hash(T["trial_key_hash_v2"]["2.0"], other) == ("unknown", None)
    assert SH.recognise_trial_hash(None, HP) is None


def test_recognise_trial_hash_on_anchor() -> None:
    v2 = EXP["study_key_hash_v2"]
    assert h.recognise_trial_hash_on(T["trial_key_hash_v2"]["1.0"], v2, HP) == "1.0"
    assert h.recognise_trial_hash_on(T["trial_key_hash_v2"]["2.0"], v2, HP) == "2.0"
    assert h.recognise_trial_hash_on(T["trial_key_hash_v1"]["2.0"], v2, HP) is None


def test_majority_schema() -> None:
    assert h.majority_schema(["1.0", "1.0", "2.0"]) == "1.0"
    assert h.majority_schema(["2.0", "1.0"]) == "2.0"
    assert h.majority_schema([None, None]) == "2.0"
    assert h.majority_schema([]) == "2.0"
