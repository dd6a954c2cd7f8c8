"""The smoke test CI also runs on the oldest MLflow hpohash claims (``.ci/run``: pyproject's floor in a
venv of its own): verify, backfill and undo on a SQLite store and through a real ``mlflow server``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.entities import ViewType

from tests.builders import Builder


def tags_of(b: Builder, exp_id: str) -> dict[str, dict[str, str]]:
    runs = b.client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)
    return {r.info.run_id: dict(r.data.tags) for r in runs}


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_verify_backfill_undo(store: str, request: pytest.FixtureRequest, run_cli, tmp_path: Path) -> None:
    b: Builder = request.getfixturevalue("builder" if store == "sqlite" else "http_builder")
    exp, name = b.experiment()
    s = b.study(exp, folds=2)
    b.make_legacy(s)
    before = tags_of(b, exp)
    store_args = ["--tracking-uri", b.uri, "-e", name]

    r = run_cli(["verify", *store_args, "--format", "json"])
    assert r.code == 1, r.err
    assert json.loads(r.out)["findings"]
    journal = tmp_path / "j.jsonl"
    r = run_cli(["backfill", *store_args, "--yes", "--format", "json", "--journal", str(journal)])
    assert r.code == 0, r.err
    assert json.loads(r.out)["summary"]["runs_written"] == 4
    assert run_cli(["verify", *store_args]).code == 0
    r = run_cli(["undo", str(journal), "--tracking-uri", b.uri, "--yes"])
    assert r.code == 0, r.err
    assert tags_of(b, exp) == before
