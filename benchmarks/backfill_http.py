"""hpohash backfill over HTTP against a sequential `set_tag` per tag, same plan, on a local `mlflow server`.

Usage: python benchmarks/backfill_http.py [--runs 200] [--workers 8]
Seeds two identical experiments of N legacy runs (v1 trials, folder8 refits) into one SQLite store,
starts `mlflow server` on it, then:
  baseline: the plan of experiment A (from `hpohash backfill --dry-run`) written one `set_tag` per tag,
            sequentially, in-process (so the baseline pays no start-up);
  hpohash:  `hpohash backfill --yes` on experiment B as a whole process (start-up, scan, plan, journal,
            one `log_batch` per run through the thread pool).
Prints both times and the ratio. Target: hpohash >= 5x faster.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, seed, timed

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    from mlflow import MlflowClient

    from tests.server import MlflowServer

    with tempfile.TemporaryDirectory(prefix="hpohash-bench-") as tmp:
        work = Path(tmp)
        db = work / "mlflow.db"
        art = (work / "artifacts").as_uri()
        for name in ("bench-a", "bench-b"):
            seed(f"sqlite:///{db}", name, args.runs, trials_per_study=48, artifact_root=f"{art}/{name}")
        server = MlflowServer(work)
        server.db = db
        server.start()
        try:
            uri = server.uri
            hp = [sys.executable, "-m", "hpohash", "backfill", "--tracking-uri", uri, "--format", "json", "--quiet"]
            _, _, out = timed([*hp, "-e", "bench-a", "--dry-run"], cwd=work)
            plan = json.loads(out)
            changes = plan["changes"]
            client = MlflowClient(tracking_uri=uri)
            start = time.perf_counter()
            for c in changes:
                client.set_tag(c["run_id"], c["key"], c["new"])
            baseline = time.perf_counter() - start

            hp_s, rss, out = timed([*hp, "-e", "bench-b", "--yes", "--workers", str(args.workers)], cwd=work)
            done = json.loads(out)
            _, _, again = timed([*hp, "-e", "bench-b", "--dry-run"], cwd=work)
        finally:
            server.stop()
    print(
        f"runs per experiment: {args.runs}; tags in the plan: {len(changes)} on {plan['summary']['runs_planned']} runs"
    )
    print(f"baseline, sequential set_tag per tag (in-process): {baseline:.1f}s")
    print(
        f"hpohash backfill --yes (whole process, {args.workers} workers): {hp_s:.1f}s; "
        f"wrote {done['summary']['runs_written']} runs, {done['summary']['tags_planned']} tags; peak RSS {rss} MiB"
    )
    print(f"speed-up: {baseline / hp_s:.1f}x  (target >= 5x)")
    print(f"second backfill plans {json.loads(again)['summary']['tags_planned']} tags")


if __name__ == "__main__":
    main()
