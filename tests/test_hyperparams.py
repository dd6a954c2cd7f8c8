"""Typed hyperparameters recovered from MLflow's string params (SPEC §4)."""

from __future__ import annotations

from hpohash.hyperparams import parse_untyped, recover_hyperparameters

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
