"""`hpohash hash`: reference values on stdout, and every bad input as one line with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_one_error_line, write_case_dir
from tests.test_hashing_vectors import EXPECTED

EXP = EXPECTED["c01_realistic.yaml"]


def _usage_error(r, fragment: str) -> None:
    assert_one_error_line(r, 2, fragment)


def test_hash_json_reproduces_reference(run_cli, c01_dir: Path) -> None:
    hp = json.dumps({"learning_rate": 2.33e-05, "batch_size": 16, "dropout": 0.1733, "weight_decay": 0.0042})
    r = run_cli(
        ["hash", "--config-dir", str(c01_dir), "--model", "distilbert", "--format", "json", "--hyperparameters", hp]
    )
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "hpohash.hash/1"
    assert doc["data_fingerprint"] == EXP["data_fingerprint"]
    assert doc["eval_fingerprint"] == EXP["eval_fingerprint"]
    assert doc["eval_config"] == EXP["eval_config"]
    assert json.dumps(doc["study_key"], sort_keys=True, separators=(",", ":")) == EXP["study_key_v2"]
    assert doc["study_key_hash"] == EXP["study_key_hash_v2"]
    assert doc["study_key_hash_v1"] == EXP["study_key_hash_v1"]
    assert doc["study_family_hash"] == EXP["study_family_hash"]
    assert doc["trials"][0]["trial_key_hash"] == EXP["trials"][0]["trial_key_hash_v2"]["2.0"]
    assert doc["trials"][0]["trial_key_hash_by_schema"] == EXP["trials"][0]["trial_key_hash_v2"]


def test_hash_json_config_files_and_schema_1(run_cli, tmp_path: Path) -> None:
    write_case_dir("c05_objective_fallback.yaml", tmp_path, suffix=".json")
    r = run_cli(
        [
            "hash",
            "--data",
            str(tmp_path / "data.json"),
            "--hpo",
            str(tmp_path / "hpo.json"),
            "--train",
            str(tmp_path / "train.json"),
            "--model",
            "distilroberta",
            "--format",
            "json",
            "--trial-key-schema",
            "1.0",
            "--hyperparameters",
            '{"learning_rate": 1e-05}',
        ]
    )
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    exp = EXPECTED["c05_objective_fallback.yaml"]
    assert doc["study_key_hash"] == exp["study_key_hash_v2"]
    assert doc["trials"][0]["trial_key_hash"] == exp["trials"][0]["trial_key_hash_v2"]["1.0"]


def test_hash_table_and_show_key(run_cli, c01_dir: Path) -> None:
    r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "distilbert", "--show-key"])
    assert r.code == 0, r.err
    assert EXP["study_key_hash_v2"] in r.out
    assert EXP["study_key_v2"] in r.out


def test_hash_markdown(run_cli, c01_dir: Path) -> None:
    r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "distilbert", "--format", "markdown"])
    assert r.code == 0
    assert f"| study_key_hash (v2) | `{EXP['study_key_hash_v2']}` |" in r.out


def test_missing_directory(run_cli, tmp_path: Path) -> None:
    _usage_error(
        run_cli(["hash", "--config-dir", str(tmp_path / "nope"), "--model", "m"]),
        f"{tmp_path / 'nope'}: no such directory",
    )


def test_malformed_yaml(run_cli, c01_dir: Path) -> None:
    (c01_dir / "hpo.yaml").write_text("search_space: {a: [1,\n")
    _usage_error(
        run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m"]), f"{c01_dir / 'hpo.yaml'}: malformed YAML"
    )


def test_yaml_list_instead_of_mapping(run_cli, c01_dir: Path) -> None:
    (c01_dir / "data.yaml").write_text("- a\n- b\n")
    _usage_error(
        run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m"]),
        f"{c01_dir / 'data.yaml'}: not a mapping (top level is a list)",
    )


def test_unknown_option(run_cli, c01_dir: Path) -> None:
    _usage_error(
        run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m", "--frobnicate"]), "No such option '--frobnicate'"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--hyperparameters", "{bad"], "--hyperparameters #1: not valid JSON"),
        (["--hyperparameters", "[1]"], "--hyperparameters #1: expected a JSON object, got list"),
        (["--data", "x.yaml"], "give either --config-dir or --data/--hpo/--train, not both"),
    ],
)
def test_bad_hash_options(run_cli, c01_dir: Path, args: list[str], fragment: str) -> None:
    _usage_error(run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m", *args]), fragment)


def test_missing_inputs(run_cli) -> None:
    _usage_error(run_cli(["hash", "--model", "m"]), "give --config-dir DIR, or all of --data, --hpo and --train")
    _usage_error(run_cli(["hash", "--config-dir", "x"]), "Missing option '--model'")


def test_real_process_no_traceback_and_no_mlflow_import(tmp_path: Path, c01_dir: Path) -> None:
    """As a user runs it: `python -m hpohash`; `hash` must not pay for importing mlflow."""
    code = (
        "import sys, runpy; sys.argv=['hpohash','hash','--config-dir',sys.argv[1],'--model','distilbert',"
        "'--format','json']\n"
        "try:\n    runpy.run_module('hpohash', run_name='__main__')\n"
        "except SystemExit as e:\n    assert 'mlflow' not in sys.modules, 'mlflow imported'\n    raise\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(c01_dir)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["study_key_hash"] == EXP["study_key_hash_v2"]
    bad = subprocess.run(
        [sys.executable, "-m", "hpohash", "hash", "--config-dir", str(tmp_path / "x"), "--model", "m"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
