"""verify time over a bare paged `search_runs` scan of the same experiment, and verify's peak memory,
as whole processes, at one or more store sizes.

Usage: python benchmarks/verify_vs_scan.py [--runs 10000 [50000 100000]] [--store sqlite|postgresql]
                                           [--server | --direct] [--non-hpo 0.5] [--repeat 1]
Seeds each size into its own experiment of one fresh store with the bulk seeder (seed_bulk.py: MLflow's
SQL schema written directly, legacy studies of 1 parent + 98 trials + 1 refit shaped like the
pipeline's, configs logged as artifacts), then times `hpohash verify --format json` and a bare scan
(1000 runs a page, every run of the experiment) on the same store, verify first:
  --store sqlite             the SQLite file in-process (add --server: through a local `mlflow server`);
  --store postgresql         a throwaway PostgreSQL cluster behind `mlflow server`, configs seeded and
                             read through the server's artifact proxy (--artifacts-destination);
                             add --direct: the cluster's own postgresql:// URI, no server.
On a SQL store (SQLite in-process, PostgreSQL --direct) verify reads runs by SQL (hpohash/sqlread.py);
it is also run through MLflow's search_runs (`--read-via api`, the same command) and the two JSON
reports must be byte-identical. The bare scan runs twice, as is and with the cyclic GC paused; ratios
are against the faster of the two.
Prints per size: the times, the ratios, verify's peak RSS, and the growth of peak RSS per 1,000 runs
between sizes. Targets (SQL path): ratio <= 0.2, peak RSS <= 250 MiB at 100,000 runs, growth <= 1 MiB
per 1,000 runs; through search_runs: ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    COUNT_SCRIPT,
    ROOT,
    SCAN_SCRIPT,
    SCAN_SCRIPT_GC_PAUSED,
    database,
    timed,
    timed_cpu,
)
from seed_bulk import timed_seed

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, nargs="+", default=[2000])
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--server", action="store_true", help="sqlite: go through a local `mlflow server` (HTTP)")
    ap.add_argument("--direct", action="store_true", help="postgresql: the database's own URI, no server")
    ap.add_argument("--non-hpo", type=float, default=0.0, help="share of seeded runs that are not HPO runs")
    ap.add_argument("--repeat", type=int, default=1, help="timings per size (median); sizes > 10k: keep 1")
    ap.add_argument("--count-calls", action="store_true", help="also count verify's MLflow calls (one more run)")
    args = ap.parse_args()

    from mlflow import MlflowClient

    from tests.server import MlflowServer

    with tempfile.TemporaryDirectory(prefix="hpohash-bench-") as tmp:
        work = Path(tmp)
        os.chdir(work)  # the SQLite store's default artifact root (./mlruns) lands here
        cluster = server = None
        try:
            cluster, db_uri = database(args.store, work)
            if args.store == "postgresql" and not args.direct:
                server = MlflowServer(work, db_uri)
            else:
                if args.server:
                    server = MlflowServer(work)
                    server.db = work / "mlflow.db"
            if server is not None:
                server.start()
            uri = server.uri if server is not None else db_uri
            client = MlflowClient(tracking_uri=uri)
            where = {
                ("sqlite", False): "SQLite in-process",
                ("sqlite", True): "mlflow server (HTTP) on SQLite, artifact proxy",
                ("postgresql", True): "mlflow server (HTTP) on PostgreSQL, artifact proxy",
                ("postgresql", False): "PostgreSQL by its own URI, artifacts on local files",
            }[(args.store, server is not None)]
            sql_store = server is None
            print(f"store: {where}; non-HPO share {args.non_hpo}; load average {os.getloadavg()[0]:.2f}", flush=True)
            rows = []
            for n in args.runs:
                exp = f"bench-{n}"
                seeded = timed_seed(db_uri, client, exp, n, non_hpo=args.non_hpo)
                scan_cmds = [
                    [sys.executable, "-c", script, uri, exp] for script in (SCAN_SCRIPT, SCAN_SCRIPT_GC_PAUSED)
                ]
                verify_args = ["verify", "--tracking-uri", uri, "-e", exp, "--format", "json"]
                verify_cmd = [sys.executable, "-m", "hpohash", *verify_args, "--quiet"]
                api_cmd = [*verify_cmd, "--read-via", "api"]  # the same command through search_runs
                verifies, apis, scans, fast_scans = [], [], [], []
                for _ in range(args.repeat):
                    verifies.append(timed_cpu(verify_cmd, cwd=work))
                    if sql_store:
                        apis.append(timed_cpu(api_cmd, cwd=work))
                    scans.append(timed_cpu(scan_cmds[0], cwd=work))
                    fast_scans.append(timed_cpu(scan_cmds[1], cwd=work))

                def med(runs: list[tuple[float, float, int, str]], i: int) -> float:
                    return statistics.median(r[i] for r in runs)

                def each(runs: list[tuple[float, float, int, str]]) -> str:
                    """Every timing behind a median (with ``--repeat``)."""
                    return f" ({', '.join(f'{r[0]:.1f}' for r in runs)})" if len(runs) > 1 else ""

                verify_s, verify_cpu = med(verifies, 0), med(verifies, 1)
                scan_s = min(med(scans, 0), med(fast_scans, 0))
                scan_cpu = min(med(scans, 1), med(fast_scans, 1))
                rss = max(r[2] for r in verifies)
                doc = json.loads(verifies[-1][3])
                summary, n_findings = doc["summary"], len(doc["findings"])
                del doc
                api_text = ""
                if apis:
                    same = "identical" if apis[-1][3] == verifies[-1][3] else "REPORTS DIFFER"
                    api_text = (
                        f" · via search_runs {med(apis, 0):7.1f}s (ratio {med(apis, 0) / scan_s:.2f}; CPU "
                        f"{med(apis, 1):.1f}s, ratio {med(apis, 1) / scan_cpu:.2f}; {max(r[2] for r in apis)} MiB; "
                        f"JSON {same})"
                    )
                print(
                    f"{n:>7} runs: fastest scan {scan_s:7.1f}s ({scans[-1][3].strip()} runs; GC on "
                    f"{med(scans, 0):.1f}s{each(scans)}, paused {med(fast_scans, 0):.1f}s{each(fast_scans)}; "
                    f"CPU {scan_cpu:.1f}s) · verify {verify_s:7.1f}s{each(verifies)} · ratio {verify_s / scan_s:.2f} · "
                    f"CPU {verify_cpu:.1f}s, ratio "
                    f"{verify_cpu / scan_cpu:.2f} · verify peak RSS {rss} MiB{api_text} · "
                    f"{summary['studies']} studies, {n_findings} findings · load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                if args.count_calls:
                    counted = timed([sys.executable, "-c", COUNT_SCRIPT, *verify_args], cwd=work)[2]
                    print(f"         MLflow calls by verify: {counted.strip().splitlines()[-1]}", flush=True)
                rows.append((n, scan_s, verify_s, rss, seeded.hpo_runs, scan_cpu, verify_cpu))
        finally:
            if server is not None:
                server.stop()
            if cluster is not None:
                cluster.stop()
            os.chdir(ROOT)
    targets = "ratio <= 0.2, peak RSS <= 250 MiB" if sql_store else "ratio <= 1.1, peak RSS <= 500 MiB"
    growth = 1 if sql_store else 2
    print(f"\n{where}: targets {targets} at 100,000 runs, growth <= {growth} MiB per 1,000 runs")
    for (n0, _, _, r0, *_), (n1, _, _, r1, *_) in zip(rows, rows[1:], strict=False):
        print(f"peak RSS growth {n0} -> {n1} runs: {(r1 - r0) / ((n1 - n0) / 1000):.2f} MiB per 1,000 runs")
    print("| runs | store | fastest bare scan | verify | ratio | CPU: scan, verify, ratio | verify peak RSS |")
    for n, scan_s, verify_s, rss, _, scan_cpu, verify_cpu in rows:
        print(
            f"| {n:,} | {where} | {scan_s:.1f} s | {verify_s:.1f} s | {verify_s / scan_s:.2f} | "
            f"{scan_cpu:.1f} s, {verify_cpu:.1f} s, {verify_cpu / scan_cpu:.2f} | {rss} MiB |"
        )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - t0:.0f}s)")
