"""verify time over a bare paged `search_runs` scan of the same experiment, as whole processes.

Usage: python benchmarks/verify_vs_scan.py [--runs 2000] [--server] [--repeat 3]
Seeds N runs (legacy studies of 1 parent, 98 trials, 1 refit; configs as artifacts) into a fresh
SQLite store in-process, then times `hpohash verify` and a bare scan, each as a whole process, on the
same store (directly, or through a local `mlflow server` with --server), and prints the ratio, peak
RSS of verify and the MLflow calls verify made (no get_run per run). Targets: ratio <= 1.2, <= 400 MiB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import COUNT_SCRIPT, ROOT, SCAN_SCRIPT, seed, timed

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--server", action="store_true", help="go through a local `mlflow server` (HTTP)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="hpohash-bench-") as tmp:
        work = Path(tmp)
        db_uri = f"sqlite:///{work / 'mlflow.db'}"
        t0 = time.perf_counter()
        info = seed(db_uri, "bench", args.runs, artifact_root=(work / "artifacts").as_uri())
        print(f"seeded {info['runs']} runs in {info['studies']} studies in {time.perf_counter() - t0:.1f}s")
        server = None
        uri = db_uri
        if args.server:
            from tests.server import MlflowServer

            server = MlflowServer(work)
            server.db = work / "mlflow.db"
            server.start()
            uri = server.uri
        try:
            scan_cmd = [sys.executable, "-c", SCAN_SCRIPT, uri, "bench"]
            verify_args = ["verify", "--tracking-uri", uri, "-e", "bench", "--format", "json"]
            verify_cmd = [sys.executable, "-m", "hpohash", *verify_args, "--quiet"]
            timed(scan_cmd)  # warm the OS file cache once for both
            scans, verifies = [], []
            for _ in range(args.repeat):  # interleaved, so load on the machine hits both alike
                scans.append(timed(scan_cmd))
                verifies.append(timed(verify_cmd, cwd=work))
            scan_s = statistics.median(t for t, _, _ in scans)
            verify_s = statistics.median(t for t, _, _ in verifies)
            scanned, out = scans[-1][2], verifies[-1][2]
            rss = max(r for _, r, _ in verifies)
            summary = json.loads(out)["summary"]
            counted = timed([sys.executable, "-c", COUNT_SCRIPT, *verify_args], cwd=work)[2]
            calls = json.loads(counted.strip().splitlines()[-1])
        finally:
            if server:
                server.stop()
    where = "mlflow server (HTTP)" if args.server else "SQLite in-process"
    print(f"store: {where}; runs scanned: {scanned.strip()}; verify summary: {summary}")
    print(f"bare search_runs scan: {scan_s:.2f}s (median of {args.repeat})")
    print(f"hpohash verify:        {verify_s:.2f}s (median of {args.repeat})")
    print(f"ratio verify/scan:     {verify_s / scan_s:.2f}  (target <= 1.2)")
    print(f"verify peak RSS:       {rss} MiB (target <= 400 MiB)")
    print(f"MLflow calls by verify: {calls}  (get_run per run: {calls.get('get_run', 0)} for {info['runs']} runs)")


if __name__ == "__main__":
    main()
