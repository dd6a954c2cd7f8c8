"""Provenance discovery over a long config history: one study whose configs are from the oldest commit.

Usage: python benchmarks/discovery_history.py [--commits 500]
Builds a git repository holding the pipeline-layout tree (examples/pipeline/config), then N commits
that each change one config file (data version, hpo max_trials, a train value, the prod search space),
with increasing dates. The study's parent hash is the v2 hash of the *oldest* configs, so discovery
walks the whole history. Prints the time to read the history (one `git log`, one `git cat-file
--batch`) and to find the study's configs, with and without pruning by the parent's fingerprint
tags, and as a share of the 2 s target. Nothing here is a timed assertion: it prints what it measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hpohash import hashing as h  # noqa: E402
from hpohash.sources import ConfigSources, Evidence  # noqa: E402
from tests.pipeline import git, load, write_tree  # noqa: E402

#: each edit changes the v2 study key (data version, early termination, training epochs), so every
#: commit holds new candidates and the oldest study's hash is reproduced only by the base commit
EDITS = (
    ("data/resume_v1.yaml", 'version: "2"', 'version: "{k}"'),
    ("hpo/smoke.yaml", "slack_factor: 0.2", "slack_factor: 0.{k}"),
    ("train.yaml", "", "num_epochs: {k}\n"),
    ("hpo/prod.yaml", "", "# revision {k}\n"),  # changes no hash: a blob that dedupes nothing
)


def build(root: Path, commits: int) -> tuple[Path, dict]:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_tree(repo / "config", {})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base", date="2023-12-31T00:00:00+00:00")
    tree = repo / "config"
    oldest = {n: load(tree, f) for n, f in (("data", "data/resume_v1.yaml"), ("hpo", "hpo/smoke.yaml"))}
    oldest["train"] = load(tree, "train.yaml")
    originals = {rel: (tree / rel).read_text() for rel, _, _ in EDITS}
    t0 = time.perf_counter()
    for k in range(1, commits + 1):
        rel, old, new = EDITS[k % len(EDITS)]
        p = tree / rel
        if not old:
            p.write_text(originals[rel] + "\n" + new.format(k=k + 10))
        else:
            p.write_text(originals[rel].replace(old, new.format(k=k + 10), 1))
        when = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=k)
        git(repo, "commit", "-q", "-am", f"configs {k}", date=when.isoformat())
    print(f"built {commits} commits in {time.perf_counter() - t0:.1f} s")
    return tree, oldest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=500)
    args = ap.parse_args()
    model = "distilbert"
    with tempfile.TemporaryDirectory() as d:
        tree, oldest = build(Path(d), args.commits)
        sh = h.compute_study_hashes(oldest["data"], oldest["hpo"], oldest["train"], model)
        for label, pruned in (("no fingerprint tags", False), ("pruned by fingerprint tags", True)):
            t0 = time.perf_counter()
            sources = ConfigSources.read([str(tree)])
            t1 = time.perf_counter()
            found = sources.discover(
                Evidence(
                    stored=sh.study_key_hash,
                    schema_tag="2.0",
                    model=model,
                    data_fp=sh.data_fingerprint if pruned else None,
                    eval_fp=sh.eval_fingerprint if pruned else None,
                )
            )
            t2 = time.perf_counter()
            assert found.candidate is not None, found.explanation
            rev = found.candidate.revisions[-1]
            print(
                f"{label}: read history {t1 - t0:.2f} s ({len(sources.candidates)} distinct candidates), "
                f"discover {t2 - t1:.2f} s ({found.examined} hashed), total {t2 - t0:.2f} s "
                f"= {(t2 - t0) / 2.0:.2f} of the 2 s target; found at {rev.label}"
            )


if __name__ == "__main__":
    main()
