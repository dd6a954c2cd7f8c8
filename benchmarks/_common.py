"""Shared helpers for the benchmarks: time whole processes, the bare scan, count verify's MLflow calls
(seeding: seed_bulk.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def database(store: str, work: Path) -> tuple[object | None, str]:
    """(the PostgreSQL cluster or None, the backend-store URI) for ``--store sqlite|postgresql``."""
    if store != "postgresql":
        return None, f"sqlite:///{work / 'mlflow.db'}"
    from tests.postgres import PostgresCluster, unavailable

    why = unavailable()
    if why:
        sys.exit(f"--store postgresql: {why}")
    cluster = PostgresCluster()
    cluster.start()
    return cluster, cluster.uri


#: Runs the measured command and reports its wall time and peak RSS on the last line of stderr.
#: The command is started from this small, freshly started process, never from the benchmark's own:
#: Linux records the peak RSS of the process that starts a command (``vfork`` + ``exec``) into the
#: command's ``ru_maxrss``, so a command started by a benchmark that has seeded 100,000 runs, or read
#: an 89 MB report, would report that benchmark's peak instead of its own.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
elapsed = time.perf_counter() - start
sys.stderr.write(f"\\nhpohash-timed {elapsed} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS MiB, stdout) of one whole process, measured by ``LAUNCHER``."""
    elapsed, _, rss, out = timed_cpu(cmd, env=env, cwd=cwd)
    return elapsed, rss, out


def timed_cpu(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS MiB, stdout) of one whole process. CPU time (user + system)
    is what a shared, loaded machine distorts least: wall times there vary with the other processes."""
    import tempfile

    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCHER, *cmd], stdout=out_f, stderr=err_f, env=env or os.environ.copy(), cwd=cwd
        )
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    err_text = err.decode(errors="replace")
    timings = [line for line in err_text.splitlines() if line.startswith("hpohash-timed ")]
    if proc.returncode not in (0, 1) or not timings:  # not timings: the command could not be started
        raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}: {err_text[-1000:]}")
    _, elapsed, maxrss_kib, cpu = timings[-1].split()
    return float(elapsed), float(cpu), int(maxrss_kib) // 1024, out.decode()


SCAN_SCRIPT = """
import sys
from mlflow import MlflowClient
from mlflow.entities import ViewType
client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.get_experiment_by_name(sys.argv[2])
token, n = None, 0
while True:
    page = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
    n += len(page)
    token = page.token
    if not token:
        break
print(n)
"""

#: The same scan with Python's cyclic GC paused (MLflow's entities for every tag of every run are
#: long-lived garbage-collector work): the fastest bare ``search_runs`` scan, what ratios are against.
SCAN_SCRIPT_GC_PAUSED = "import gc\ngc.disable()\n" + SCAN_SCRIPT

COUNT_SCRIPT = """
import sys, collections, json
from mlflow import MlflowClient
counts = collections.Counter()
from hpohash.tracking import Tracking
targets = [(MlflowClient, n) for n in ("get_run", "search_runs", "log_batch", "set_tag", "delete_tag")]
targets.append((Tracking, "fetch_configs"))
for cls, name in targets:
    orig = getattr(cls, name)
    def wrap(self, *a, _orig=orig, _name=name, **k):
        counts[_name] += 1
        return _orig(self, *a, **k)
    setattr(cls, name, wrap)
from hpohash.cli import main
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps(dict(counts)))
"""
