"""`hpohash demo`: the plan's situation, found by verify, fixed by backfill, in MLflow's default store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlflow import MlflowClient


def test_demo_verify_backfill_verify(run_cli, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'demo.db'}"
    r = run_cli(["demo", "--tracking-uri", uri, "--format", "json"])
    assert r.code == 0, r.err
    created = json.loads(r.out)
    assert created["experiment"] == "hpohash-demo" and len(created["studies"]) == 2

    r = run_cli(["verify", "--tracking-uri", uri, "-e", "hpohash-demo", "--format", "json"])
    doc = json.loads(r.out)
    assert r.code == 1
    codes = sorted({(f["code"], f["cause"]) for f in doc["findings"]}, key=str)
    assert codes == sorted(
        {("HH110", "v1"), ("HH112", "v1"), ("HH120", "v1"), ("HH121", None), ("HH123", "folder8"), ("HH130", None)},
        key=str,
    )
    assert doc["summary"] == {
        "studies": 2,
        "parents": 2,
        "trials": 5,
        "refits": 2,
        "errors": 16,
        "warnings": 0,
        "ok": False,
    }
    assert all(f["fixable"] for f in doc["findings"])

    r = run_cli(
        [
            "backfill",
            "--tracking-uri",
            uri,
            "-e",
            "hpohash-demo",
            "--yes",
            "--format",
            "json",
            "--journal",
            str(tmp_path / "j.jsonl"),
        ]
    )
    assert r.code == 0, r.err
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "hpohash-demo", "--format", "json"])
    assert r.code == 0 and json.loads(r.out)["findings"] == []

    # running the demo again starts over
    assert run_cli(["demo", "--tracking-uri", uri]).code == 0
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "hpohash-demo", "--format", "json"])
    assert r.code == 1 and json.loads(r.out)["summary"]["errors"] == 16


def test_demo_refuses_a_foreign_experiment(run_cli, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("hpohash-demo")
    run = client.create_run(exp).info.run_id
    r = run_cli(["demo", "--tracking-uri", uri])
    assert r.code == 2
    assert r.err.strip() == (
        "hpohash: error: experiment 'hpohash-demo' exists and is not a demo experiment: refusing to write into it"
    )
    assert [x.info.run_id for x in client.search_runs([exp])] == [run]


def test_demo_uses_mlflows_embedded_default(tmp_path: Path) -> None:
    """No --tracking-uri and no MLFLOW_TRACKING_URI: ./mlflow.db in the working directory, as make demo does."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    p = subprocess.run(
        [sys.executable, "-m", "hpohash", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "mlflow.db").is_file()
    assert f"into sqlite:///{tmp_path / 'mlflow.db'}" in p.stdout
    assert p.stderr == ""  # MLflow's own INFO lines (database creation) are not shown
    p = subprocess.run(
        [sys.executable, "-m", "hpohash", "verify", "-e", "hpohash-demo", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1
    assert p.stdout.splitlines()[-2:] == [
        "16 errors (16 fixable) in 7 runs of 2 studies",
        "fix: hpohash backfill -e hpohash-demo --dry-run",
    ]
