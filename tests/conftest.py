"""Shared fixtures. The real `mlflow server` fixture lives in tests/server_fixture.py."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hpohash.cli import main

VECTORS = Path(__file__).parent / "reference_vectors"

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process and return (exit code, stdout, stderr)."""

    def _run(args: Sequence[str]) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return _run


def assert_one_error_line(r: Result, code: int, fragment: str, *, stdout_empty: bool = True) -> None:
    """Bad input: exactly one ``hpohash: error:`` line naming what and where, the exit code, no traceback."""
    assert r.code == code, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpohash: error: "), r.err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in r.err
    if stdout_empty:
        assert r.out == ""


def write_case_dir(case_name: str, directory: Path, *, suffix: str = ".yaml") -> dict:
    """Write a reference case's configs into data/hpo/train files; returns the case."""
    case = yaml.safe_load((VECTORS / case_name).read_text(encoding="utf-8"))
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("data", "hpo", "train"):
        body = case[name]
        if suffix == ".json":
            import json

            text = json.dumps(body)
        else:
            text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        (directory / f"{name}{suffix}").write_text(text, encoding="utf-8")
    return case


@pytest.fixture
def c01_dir(tmp_path: Path) -> Path:
    write_case_dir("c01_realistic.yaml", tmp_path / "c01")
    return tmp_path / "c01"


from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("hpohash", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150)
settings.load_profile("hpohash")


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real SQLite tracking store for the session; every test makes its own experiments in it."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri).search_experiments()  # creates the schema once
    return uri


@pytest.fixture
def builder(sqlite_uri: str):
    from tests.builders import Builder

    root = Path(sqlite_uri[len("sqlite:///") :]).parent / "artifacts"
    return Builder(sqlite_uri, artifact_root=root.as_uri())


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def mlflow_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on a free 127.0.0.1 port, once per backend store for the whole test run:
    a SQLite file, and a throwaway PostgreSQL cluster (skipped, saying why, where PostgreSQL is missing)."""
    from tests.server import MlflowServer

    cluster = None
    if request.param == "postgresql":
        from tests.postgres import PostgresCluster, unavailable

        why = unavailable()
        if why:
            pytest.skip(why)
        cluster = PostgresCluster()
        cluster.start()
    server = MlflowServer(tmp_path_factory.mktemp(f"server-{request.param}"), cluster.uri if cluster else None)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if cluster is not None:
            cluster.stop()


@pytest.fixture
def http_builder(mlflow_server):
    from tests.builders import Builder

    if mlflow_server.proc is None or mlflow_server.proc.poll() is not None:
        mlflow_server.start()
    return Builder(mlflow_server.uri)
