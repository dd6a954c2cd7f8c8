"""Shared fixtures. The real `mlflow server` fixture lives in tests/server_fixture.py."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hpohash.cli import main

VECTORS = Path(__file__).parent / "reference_vectors"

os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

# Hypothesis keeps caches (unicode tables, constants) under ./.hypothesis unless told otherwise
_HYPOTHESIS_DIR = tempfile.mkdtemp(prefix="hpohash-hypothesis-")
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", _HYPOTHESIS_DIR)
atexit.register(shutil.rmtree, _HYPOTHESIS_DIR, True)  # whichever process imported this module


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path) -> Iterator[None]:
    """Tests leave no trace: default journals (``.hpohash/``) and MLflow's ``mlflow.db`` land in tmp.

    Not ``monkeypatch.chdir``: a test's ``monkeypatch.undo()`` would take the working directory back
    to the repository with it.
    """
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process and return (exit code, stdout, stderr)."""

    def _run(args: Sequence[str]) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        result = Result(code, captured.out, captured.err)
        _check_verify_backfill_agree(list(args), result, capsys)
        return result

    return _run


#: verify options backfill does not share, or that change verify's exit code on purpose
_VERIFY_ONLY_FLAGS = {"--quiet", "-q", "--verbose", "-v", "--statistics"}
_VERIFY_ONLY_VALUED = {"--format", "-o", "--output"}
#: options that change which findings verify counts, or which experiments, on purpose
_NO_INVARIANT = {"--strict", "--include-deleted", "--select", "--ignore", "--check-all", "--since"}


def _check_verify_backfill_agree(args: list[str], r: Result, capsys: pytest.CaptureFixture[str]) -> None:
    """Every scenario in the suite that runs ``verify`` also checks the invariant of SPEC §5 rule 2:
    ``verify`` exits 0 ⇔ ``backfill --dry-run --exit-code`` (same options) exits 0."""
    if not args or args[0] != "verify" or r.code not in (0, 1) or _NO_INVARIANT & set(args):
        return
    rest: list[str] = []
    it = iter(args[1:])
    for a in it:
        if a in _VERIFY_ONLY_FLAGS:
            continue
        if a in _VERIFY_ONLY_VALUED:
            next(it, None)
            continue
        rest.append(a)
    code = main(["backfill", *rest, "--dry-run", "--exit-code", "--format", "json"])
    captured = capsys.readouterr()
    assert (r.code == 0) == (code == 0), (
        f"verify exited {r.code} but backfill --dry-run --exit-code exited {code} for {rest}: {captured.out[:2000]}"
    )


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

settings.register_profile(
    "hpohash", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150, database=None
)  # no example database: tests leave no .hypothesis/ behind
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


def _serve(tmp_path_factory: pytest.TempPathFactory, backend: str):
    from tests.server import MlflowServer

    cluster = None
    if backend == "postgresql":
        from tests.postgres import PostgresCluster, unavailable

        why = unavailable()
        if why:
            pytest.skip(why)
        cluster = PostgresCluster()
        cluster.start()
    # one worker is enough for the suite (a worker answers requests on threads); MLflow 3.17's
    # half-made-module 500 is stopped by the server's own sitecustomize (tests/server.py, _site)
    server = MlflowServer(tmp_path_factory.mktemp(f"server-{backend}"), cluster.uri if cluster else None, workers=1)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if cluster is not None:
            cluster.stop()


@pytest.fixture(scope="session")
def sqlite_mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on a SQLite file and a free 127.0.0.1 port, started once for the run."""
    yield from _serve(tmp_path_factory, "sqlite")


@pytest.fixture(scope="session")
def pg_mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on a throwaway PostgreSQL cluster (tests/postgres.py), started once for
    the run; skipped, saying why, where PostgreSQL cannot be had."""
    yield from _serve(tmp_path_factory, "postgresql")


@pytest.fixture
def mlflow_server(sqlite_mlflow_server):
    """The server most HTTP tests use; tests/test_http_server.py runs on both backends instead."""
    return sqlite_mlflow_server


@pytest.fixture
def http_builder(mlflow_server):
    from tests.builders import Builder

    if mlflow_server.proc is None or mlflow_server.proc.poll() is not None:
        mlflow_server.start()
    return Builder(mlflow_server.uri)
