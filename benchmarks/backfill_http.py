"""hpohash backfill over HTTP against a sequential `set_tag` per tag, same plan, on a local `mlflow server`.

Usage: python benchmarks/backfill_http.py [--runs 10000] [--workers 8] [--store sqlite|postgresql]
                                          [--baseline-tags 1500]
Bulk-seeds two identical experiments of N legacy runs (v1 trials, folder8 refits; seed_bulk.py) into one
store (SQLite, or a throwaway PostgreSQL cluster), starts `mlflow server` on it, then:
  baseline: the plan of experiment A (from `hpohash backfill --dry-run`) written one `set_tag` per tag,
            sequentially, in-process (so the baseline pays no start-up). At 10,000 runs the plan has
            ~40,000 tags (~20 minutes sequentially), so only the first --baseline-tags are written and
            the baseline for the whole plan is their time scaled by the plan's tag count (printed);
  hpohash:  `hpohash backfill --yes` on experiment B as a whole process (start-up, scan, plan, journal,
            one `log_batch` per run through the thread pool), timed whole.
Prints both times and the ratio. Target: hpohash >= 10x faster at 10,000 runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, database, timed
from seed_bulk import timed_seed

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--baseline-tags", type=int, default=1500, help="tags the sequential baseline writes (0: all)")
    args = ap.parse_args()

    from mlflow import MlflowClient

    from tests.server import MlflowServer

    with tempfile.TemporaryDirectory(prefix="hpohash-bench-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        cluster = None
        try:
            cluster, db_uri = database(args.store, work)
            server = MlflowServer(work, db_uri)
            server.start()
            try:
                uri = server.uri
                client = MlflowClient(tracking_uri=uri)
                for name in ("bench-a", "bench-b"):
                    timed_seed(db_uri, client, name, args.runs)
                hp = [sys.executable, "-m", "hpohash", "backfill", "--tracking-uri", uri, "--format", "json", "--quiet"]
                _, _, out = timed([*hp, "-e", "bench-a", "--dry-run"], cwd=work)
                plan = json.loads(out)
                changes = plan["changes"]
                sample = changes[: args.baseline_tags] if args.baseline_tags else changes
                start = time.perf_counter()
                for c in sample:
                    client.set_tag(c["run_id"], c["key"], c["new"])
                sample_s = time.perf_counter() - start
                baseline = sample_s * len(changes) / len(sample)

                hp_s, rss, out = timed([*hp, "-e", "bench-b", "--yes", "--workers", str(args.workers)], cwd=work)
                done = json.loads(out)
                _, _, again = timed([*hp, "-e", "bench-b", "--dry-run"], cwd=work)
            finally:
                server.stop()
        finally:
            if cluster is not None:
                cluster.stop()
            os.chdir(ROOT)
    print(
        f"store: mlflow server on {args.store}; runs per experiment: {args.runs}; "
        f"tags in the plan: {len(changes)} on {plan['summary']['runs_planned']} runs"
    )
    scaled = "" if len(sample) == len(changes) else f" ({len(sample)} tags in {sample_s:.1f}s, scaled to the plan)"
    print(f"baseline, sequential set_tag per tag (in-process): {baseline:.1f}s{scaled}")
    print(
        f"hpohash backfill --yes (whole process, {args.workers} workers): {hp_s:.1f}s; "
        f"wrote {done['summary']['runs_written']} runs, {done['summary']['tags_planned']} tags; peak RSS {rss} MiB"
    )
    print(f"speed-up: {baseline / hp_s:.1f}x  (target >= 10x at 10,000 runs)")
    print(f"second backfill plans {json.loads(again)['summary']['tags_planned']} tags")


if __name__ == "__main__":
    main()
