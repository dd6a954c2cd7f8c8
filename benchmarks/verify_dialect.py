"""hpohash verify through a restricted-dialect proxy against the same verify straight to the server.

Usage: python benchmarks/verify_dialect.py [--runs 10000] [--profile azureml|databricks] [--store sqlite|postgresql]
Bulk-seeds one experiment of N runs (seed_bulk.py) into a store, starts `mlflow server` on it and the
test suite's restricted-dialect proxy (tests/proxy.py, no throttling) in front of it, then times
`hpohash verify` as a whole process twice each way, alternating, and keeps each side's fastest:
  direct:  the server's own dialect (ILIKE filters, offset page tokens read ahead);
  proxied: the profile's (Azure ML: no ILIKE/IS NULL/start_time, so '=' per stage value, opaque
           tokens followed one page at a time; Databricks: opaque tokens).
Prints both times and the ratio (target: proxied within 1.2x of direct at 10,000 runs) and whether
the two findings JSON documents are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _common import ROOT, database, timed
from seed_bulk import timed_seed

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--profile", choices=["azureml", "databricks"], default="azureml")
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from mlflow import MlflowClient

    from tests.proxy import AZURE_ML, DATABRICKS, RestrictedProxy
    from tests.server import MlflowServer

    profile = AZURE_ML if args.profile == "azureml" else DATABRICKS
    with tempfile.TemporaryDirectory(prefix="hpohash-bench-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        cluster = None
        try:
            cluster, db_uri = database(args.store, work)
            server = MlflowServer(work, db_uri)
            server.start()
            proxy = RestrictedProxy(server.uri, profile)
            proxy.start()
            try:
                timed_seed(db_uri, MlflowClient(tracking_uri=server.uri), "bench", args.runs)
                times: dict[str, list[float]] = {"direct": [], "proxied": []}
                outs: dict[str, str] = {}
                for _ in range(args.repeat):
                    for side, uri in (("direct", server.uri), ("proxied", proxy.uri)):
                        cmd = [sys.executable, "-m", "hpohash", "verify", "--tracking-uri", uri, "-e", "bench"]
                        seconds, _, out = timed([*cmd, "--format", "json", "--quiet"], cwd=work)
                        times[side].append(seconds)
                        outs[side] = out.replace(proxy.uri, server.uri)
                searches, probes = proxy.counts["search"], proxy.counts["probe"]
            finally:
                proxy.stop()
                server.stop()
        finally:
            if cluster is not None:
                cluster.stop()
            os.chdir(ROOT)
    direct, proxied = min(times["direct"]), min(times["proxied"])
    same = json.loads(outs["direct"]) == json.loads(outs["proxied"])
    print(f"store: mlflow server on {args.store}; runs: {args.runs}; profile: {profile.name} (no throttling)")
    print(f"verify direct:  {direct:.1f}s (fastest of {args.repeat})")
    print(f"verify proxied: {proxied:.1f}s (fastest of {args.repeat}); {searches} searches, {probes} probes")
    print(f"ratio proxied/direct: {proxied / direct:.2f}  (target <= 1.2 at 10,000 runs); same findings: {same}")


if __name__ == "__main__":
    main()
