"""`hpohash diff` against a real SQLite MLflow store: the fields, not two opaque hashes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.builders import EXPECTED, Builder
from tests.conftest import assert_one_error_line, write_case_dir

C01 = EXPECTED["c01_realistic.yaml"]


def _usage_error(r, fragment: str) -> None:
    assert_one_error_line(r, 2, fragment)


def diff(run_cli, b: Builder, *args: str) -> tuple[int, dict]:
    r = run_cli(["diff", "--tracking-uri", b.uri, "--format", "json", *args])
    assert r.err == "", r.err
    return r.code, json.loads(r.out)


def paths(doc: dict) -> list[str]:
    return [d["path"] for d in doc["differences"]]


def test_parents_differing_only_in_split_seed(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    a = builder.study(exp, refit=False)
    b = builder.study(exp, refit=False, data_update={"split_seed": 7})
    code, doc = diff(run_cli, builder, a.parent, b.parent)
    assert code == 1
    assert doc["same_study"] is False and doc["same_trial"] is None
    assert paths(doc) == ["data.data_fingerprint", "data.data_fingerprint_inputs.split_seed", "data.split_seed"]
    by = {d["path"]: d for d in doc["differences"]}
    assert (by["data.split_seed"]["a"], by["data.split_seed"]["b"]) == ("default", 7)
    assert (by["data.data_fingerprint_inputs.split_seed"]["a"], by["data.data_fingerprint_inputs.split_seed"]["b"]) == (
        None,
        7,
    )
    assert doc["a"]["study_key_hash"] == C01["study_key_hash_v2"] and doc["a"]["cause"] is None
    assert doc["schema"] == "hpohash.diff/1"
    assert set(doc["a"]) >= {
        "label",
        "run_id",
        "stored_study_key_hash",
        "study_key_hash",
        "stored_trial_key_hash",
        "trial_key_hash",
        "cause",
    }


def test_parents_with_different_models(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    a = builder.study(exp, refit=False)
    b = builder.study(exp, refit=False, model="bert-base-cased")
    code, doc = diff(run_cli, builder, a.parent, b.parent)
    assert code == 1
    assert doc["differences"] == [{"path": "model", "a": "distilbert", "b": "bert-base-cased"}]


def test_two_trials_of_one_study(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    code, doc = diff(run_cli, builder, s.trials[0], s.trials[1])
    assert code == 1
    assert (doc["same_study"], doc["same_trial"]) == (True, False)
    assert paths(doc) == [
        "hyperparameters.batch_size",
        "hyperparameters.dropout",
        "hyperparameters.learning_rate",
        "hyperparameters.weight_decay",
    ]
    lr = next(d for d in doc["differences"] if d["path"] == "hyperparameters.learning_rate")
    assert (lr["a"], lr["b"]) == (2.33e-05, 3.1e-05)
    assert doc["a"]["trial_key_hash"] == C01["trials"][0]["trial_key_hash_v2"]["2.0"]
    assert doc["b"]["trial_key_hash"] == C01["trials"][2]["trial_key_hash_v2"]["2.0"]


def test_run_against_equal_configs_on_disk(run_cli, builder: Builder, c01_dir: Path) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    code, doc = diff(run_cli, builder, s.trials[0], "--config-dir", str(c01_dir), "--against-config-dir")
    assert code == 0
    assert (doc["same_study"], doc["same_trial"], doc["differences"]) == (True, True, [])
    assert doc["b"]["run_id"] is None and doc["b"]["label"] == f"config-dir {c01_dir}"
    assert doc["b"]["study_key_hash"] == C01["study_key_hash_v2"]
    # other configs on disk: which fields would stop the reuse
    write_case_dir("c05_objective_fallback.yaml", c01_dir)
    code, doc = diff(run_cli, builder, s.parent, "--config-dir", str(c01_dir), "--model", "distilroberta")
    assert code == 1
    assert "model" in paths(doc) and "data.name" in paths(doc) and "hpo.search_space.batch_size.type" in paths(doc)
    assert doc["b"]["study_key_hash"] == EXPECTED["c05_objective_fallback.yaml"]["study_key_hash_v2"]


def test_v1_trial_against_its_parent(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    code, doc = diff(run_cli, builder, s.trials[0])
    assert code == 1
    assert doc["differences"] == []  # same configs ...
    assert doc["same_study"] is False  # ... different claims
    assert doc["a"]["cause"] == "v1" and doc["b"]["cause"] is None
    assert doc["a"]["study_key_hash"] == C01["study_key_hash_v1"]["1.0"]
    assert doc["b"]["study_key_hash"] == C01["study_key_hash_v2"]
    assert doc["b"]["label"] == f"parent {s.parent}"


def test_folder8_refit_against_its_trial(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    code, doc = diff(run_cli, builder, s.refit, s.trials[1])
    assert code == 1
    assert (doc["same_study"], doc["same_trial"], doc["differences"]) == (True, False, [])
    assert doc["a"]["cause"] == "folder8" and doc["b"]["cause"] == "v1"
    assert doc["a"]["stored_trial_key_hash"] == C01["trials"][2]["trial_key_hash_folder8"]["1.0"]


def test_table_output(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    a = builder.study(exp, refit=False)
    b = builder.study(exp, refit=False, data_update={"split_seed": 7})
    r = run_cli(["diff", "--tracking-uri", builder.uri, a.parent, b.parent])
    assert r.code == 1 and "different studies" in r.out and "data.data_fingerprint_inputs.split_seed" in r.out


def test_bad_input(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    _usage_error(run_cli(["diff", "--tracking-uri", builder.uri, "f" * 32]), f"run '{'f' * 32}' not found")
    _usage_error(
        run_cli(["diff", "--tracking-uri", builder.uri, s.parent, "--config-dir", str(tmp_path / "x")]),
        "no such directory",
    )
    (tmp_path / "data.yaml").write_text("a: [\n")
    _usage_error(
        run_cli(["diff", "--tracking-uri", builder.uri, s.parent, "--config-dir", str(tmp_path)]), "malformed YAML"
    )
    _usage_error(run_cli(["diff", "--tracking-uri", builder.uri, s.parent]), "is a parent: give a second run")
    _usage_error(
        run_cli(["diff", "--tracking-uri", builder.uri, s.folds[0] if s.folds else s.parent, s.parent, "x"]),
        "unexpected extra argument",
    )


def test_an_empty_mapping_against_fields_lists_only_the_fields() -> None:
    from hpohash.diff import ABSENT, differences

    a = {"data": {"schema": {"format": "json", "types": ["A"]}}, "model": "m"}
    b = {"data": {"schema": {}}, "model": "m"}
    assert [d.as_dict() for d in differences(a, b)] == [
        {"path": "data.schema.format", "a": "json", "b": ABSENT},
        {"path": "data.schema.types[0]", "a": "A", "b": ABSENT},
    ]
