"""Partitioned HTTP scans: the curve over K, against `mlflow server --workers 4` on PostgreSQL.

Usage: python benchmarks/partitioned_scan.py [--runs 10000] [--parts 1 2 4] [--repeat 1] [--workers 4]
Seeds one experiment with the bulk seeder (seed_bulk.py) into a throwaway PostgreSQL cluster, starts
`mlflow server --workers N` on it, then times whole processes, each K in turn:
  bare K    the experiment's runs as K start-time parts (placed by hpohash's own split, pages of 1,000,
            cyclic GC paused), one thread a part, nothing done with the runs; K=1 is one sequential
            bare scan, the baseline of every ratio;
  verify K  `hpohash verify --format json` with HPOHASH_SCAN_PARTS=K (its JSON is checked identical).
Prints each time over the K=1 bare scan, with the load average beside it (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, database, timed
from seed_bulk import timed_seed

sys.path.insert(0, str(ROOT))

#: One bare scan read as K parts (argv: uri, experiment name, K); prints the runs read and the parts.
PART_SCAN_SCRIPT = """
import gc, sys, threading
gc.disable()
from mlflow import MlflowClient
from mlflow.entities import ViewType
from hpohash.settings import BackendSettings
from hpohash.tracking import Tracking
uri, name, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = MlflowClient(tracking_uri=uri)
exp = client.get_experiment_by_name(name).experiment_id
# the parts hpohash reads (its own first page, then the split of the rest), or one scan (K=1)
tracking = Tracking(uri, settings=BackendSettings(scan_parts=k))
first, head, parts = tracking._plan_parts(tracking.plan_search([exp], ())[0], True)
filters = [p.filter_string for p in parts] or [""]
counts = [0] * len(filters)
counts[0] = len(head) if head is not None else 0
def read(i):
    token = None
    if first is not None:  # one scan, its first page read already
        counts[i], token = len(first), first.token
        if not token:
            return
    while True:
        page = client.search_runs([exp], filter_string=filters[i], run_view_type=ViewType.ALL,
                                  max_results=1000, page_token=token)
        counts[i] += len(page)
        token = page.token
        if not token:
            return
threads = [threading.Thread(target=read, args=(i,)) for i in range(len(filters))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(counts), len(filters))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeat", type=int, default=1, help="timings per K (median)")
    ap.add_argument("--workers", type=int, default=4, help="`mlflow server --workers`")
    args = ap.parse_args()
    parts = sorted(set([1, *args.parts]))

    from mlflow import MlflowClient

    from tests.server import MlflowServer

    with tempfile.TemporaryDirectory(prefix="hpohash-bench-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        cluster = server = None
        try:
            cluster, db_uri = database("postgresql", work)
            server = MlflowServer(work, db_uri, workers=args.workers)
            server.start()
            client = MlflowClient(tracking_uri=server.uri)
            exp = f"bench-{args.runs}"
            timed_seed(db_uri, client, exp, args.runs)
            print(
                f"mlflow server --workers {args.workers} on PostgreSQL, {args.runs:,} runs, "
                f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            bare: dict[int, float] = {}
            verify: dict[int, float] = {}
            reports: set[str] = set()
            for k in parts:
                env = dict(os.environ, HPOHASH_SCAN_PARTS=str(k))
                verify_cmd = [sys.executable, "-m", "hpohash", "verify", "--tracking-uri", server.uri, "-e", exp,
                              "--format", "json", "--quiet"]  # fmt: skip
                scans, verifies = [], []
                for _ in range(args.repeat):
                    scans.append(timed([sys.executable, "-c", PART_SCAN_SCRIPT, server.uri, exp, str(k)], cwd=work))
                    verifies.append(timed(verify_cmd, env=env, cwd=work))
                bare[k] = statistics.median(t for t, _, _ in scans)
                verify[k] = statistics.median(t for t, _, _ in verifies)
                reports.add(verifies[-1][2])
                read, made = scans[-1][2].split()
                print(
                    f"K={k}: bare {bare[k]:6.1f}s ({read} runs in {made} part(s)) · verify {verify[k]:6.1f}s "
                    f"(peak RSS {max(r for _, r, _ in verifies)} MiB) · load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            print(f"\nverify JSON identical for every K: {'yes' if len(reports) == 1 else 'NO'}")
            print("| K | bare scan / one sequential bare scan | verify / one sequential bare scan |")
            for k in parts:
                print(f"| {k} | {bare[k] / bare[1]:.2f} | {verify[k] / bare[1]:.2f} |")
        finally:
            if server is not None:
                server.stop()
            if cluster is not None:
                cluster.stop()
            os.chdir(ROOT)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - t0:.0f}s)")
