"""A real `mlflow server` subprocess on 127.0.0.1 for the HTTP tests (started once per session), on a
SQLite file or on any backend store URI (a throwaway PostgreSQL cluster: tests/postgres.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """Start/stop a tracking server on a fixed port and store, so a test can stop it and bring it back."""

    def __init__(self, workdir: Path, backend_uri: str | None = None, *, workers: int = 2) -> None:
        self.workdir = workdir
        self.workers = workers  # benchmarks of parallel reads ask for more
        self.backend_uri = backend_uri  # None: the SQLite file ``db``
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.db = workdir / "server.db"
        self.artifacts = workdir / "server-artifacts"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"

    def start(self, timeout: float = 180.0) -> None:
        cmd = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", self.backend_uri or f"sqlite:///{self.db}",
            "--artifacts-destination", str(self.artifacts),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
        ]  # fmt: skip
        env = dict(os.environ, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self._site()), env.get("PYTHONPATH")) if p)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        self._warm_up()
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer /health in {timeout}s: {self.log.read_text()[-2000:]}")

    def _site(self) -> Path:
        """A ``sitecustomize`` for the server's processes that makes ``import mlflow.server.auth`` fail
        at once, as it fails anyway without Flask-WTF (not installed with mlflow).

        MLflow 3.17's ``search_runs`` handler imports that module on every request and skips the
        permission filter on ImportError. Without Flask-WTF the import fails after running part of the
        module (~5 ms), so it is tried again by every search, and a search arriving meanwhile sees the
        module half made: ``AttributeError: ... 'auth_config'``, a 500. MLflow's default retries absorb
        that for users; the suite's clients retry nothing (``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``), so a
        test reading pages in parallel failed on it now and then (CI, three times), even after a
        warm-up. ``None`` in ``sys.modules`` is the same ImportError, without the half-made module."""
        site = self.workdir / "server-site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text('import sys\nsys.modules["mlflow.server.auth"] = None\n')
        return site

    def _warm_up(self) -> None:
        """One search at a time, each on a new connection, before a test sends any: the first search of
        a worker imports the handlers' other modules, one at a time."""
        body = b'{"experiment_ids": ["0"], "max_results": 1}'
        for _ in range(4 * self.workers):
            request = urllib.request.Request(
                f"{self.uri}/api/2.0/mlflow/runs/search",
                data=body,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    resp.read()
            except OSError:
                pass  # the warm-up only imports; a test reports any real failure itself

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
