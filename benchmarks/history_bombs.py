"""The two config-history bombs of the untrusted-repository issue, read within ``--max-history-mib``.

Usage: python benchmarks/history_bombs.py [--max-history-mib 64]
Builds (in a temporary directory) a repository with 1,000 distinct ~1 MiB versions of data.yaml,
and one with 200 data × 200 hpo × 25 benchmark files edited over 20 commits; then, in a fresh
process each (peak RSS is that process's own), reads the candidates and searches them for a hash
none reproduces, so every candidate is hashed. Prints wall time, peak RSS and the warning, against
the issue's targets (500 MiB, 30 s). Nothing here is a timed assertion: it prints what it measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import timed  # noqa: E402
from tests.test_untrusted_git import BOMB, blob_bomb, combination_bomb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-history-mib", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, build in (
            ("1,000 × 1 MiB blobs", blob_bomb),
            ("200 × 200 × 25 files, 20 commits", combination_bomb),
        ):
            t0 = time.perf_counter()
            where = Path(tmp) / build.__name__
            where.mkdir()
            tree = build(where)
            built = time.perf_counter() - t0
            script = BOMB.format(root=str(ROOT), tree=str(tree), mib=args.max_history_mib)
            elapsed, peak_mib, out = timed([sys.executable, "-c", script])
            lines = dict(line.partition(" ")[::2] for line in out.splitlines() if not line.startswith("warning"))
            warnings = [line for line in out.splitlines() if line.startswith("warning")]
            print(
                f"{label} (built in {built:.1f} s): {elapsed:.1f} s ({elapsed / 30:.0%} of 30 s), "
                f"peak RSS {peak_mib} MiB ({peak_mib / 500:.0%} of 500 MiB), "
                f"git's peak {lines.get('git_maxrss_mib')} MiB, {lines.get('candidates')} candidates"
            )
            for w in warnings:
                print(f"  {w}")


if __name__ == "__main__":
    main()
