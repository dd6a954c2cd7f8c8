"""A throwaway PostgreSQL cluster (Debian's `postgresql` package: initdb + pg_ctl in a temp dir, a free
127.0.0.1 port) for the tests and benchmarks that run `mlflow server` on a real database.

PostgreSQL refuses to run as root, so as root (CI) the cluster is made and run by the `postgres`
system user the package creates. ``unavailable()`` says in words why it cannot be had here, so the
tests that need it skip with a reason a newcomer can act on.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.server import free_port

INSTALL_HINT = "install it with `apt-get install -y postgresql` (Debian) and `pip install -e '.[test]'`"


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name.split(".")[0]))
    return Path(dirs[-1]) if dirs and (Path(dirs[-1]) / "initdb").exists() else None


def _run_as() -> str | None:
    """The user that runs the cluster: ourselves, or (as root) the package's `postgres` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return ""
    return "postgres"


def unavailable() -> str | None:
    """Why no PostgreSQL cluster can be started here (None: it can)."""
    if _bin_dir() is None:
        return f"PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql): {INSTALL_HINT}"
    if _run_as() == "":
        return "running as root and there is no `postgres` user to run PostgreSQL as: " + INSTALL_HINT
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return f"the psycopg2 driver MLflow needs for PostgreSQL is missing: {INSTALL_HINT}"
    return None


class PostgresCluster:
    """initdb + pg_ctl in a temp dir on a free port; ``uri`` names a fresh database in it."""

    def __init__(self, database: str = "mlflow") -> None:
        self.bin = _bin_dir()
        self.user = _run_as()
        self.port = free_port()
        self.database = database
        self.dir = Path(tempfile.mkdtemp(prefix="hpohash-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.started = False

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def _cmd(self, *args: str) -> list[str]:
        assert self.bin is not None
        cmd = [str(self.bin / args[0]), *args[1:]]
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def start(self) -> None:
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        opts = "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        opts += " -c synchronous_commit=off -c full_page_writes=off"
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True, "cwd": self.dir}
        subprocess.run(
            self._cmd("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"),
            **quiet,
        )
        server_opts = f"-p {self.port} {opts}"
        subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", server_opts, "-w", "start"), **quiet
        )
        self.started = True
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                self._cmd("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd=self.dir,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"createdb failed: {done.stderr.decode()[-500:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop the server and remove the cluster's directory: nothing is left behind."""
        if self.started:
            subprocess.run(
                self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.dir,
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)
