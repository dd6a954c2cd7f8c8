"""A store shaped exactly like the one the training pipeline's own code writes (pipeline/README.md):
no config artifacts, the pipeline's tag/param/metric sets, and a git repository holding three
versions of its config tree (examples/pipeline/config, a copy of shared/pipeline/config).

Three studies, each hashed from the tree as it was at one commit:
- ``legacy`` (commit 1, early v2): parent tagged 2.0 with its v2 hash, study folder named after the
  v1 hash, trials on v2 with ``1.0``-inner trial hashes, refit still on the **v1** study hash.
- ``gen1`` (commit 2): correct, ``1.0``-inner trial hashes (before 2026-01-18).
- ``gen2`` (commit 3, the work tree): correct, ``2.0``-inner trial hashes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpohash import hashing as h
from tests.builders import Builder

TREE = Path(__file__).resolve().parent.parent / "examples" / "pipeline" / "config"
MODEL = "distilbert"
HPS = (
    {"learning_rate": 2.1e-05, "batch_size": 4, "dropout": 0.15, "weight_decay": 0.004},
    {"learning_rate": 3.3e-05, "batch_size": 4, "dropout": 0.22, "weight_decay": 0.01},
    {"learning_rate": 1.2e-05, "batch_size": 4, "dropout": 0.27, "weight_decay": 0.05},
)
SCORES = (0.71, 0.83, 0.64)  # trial 1 is the champion
DAY_MS = 86_400_000


@dataclass
class Version:
    """One commit of the config tree: what changed, when, and the files a study used."""

    name: str
    date: str  # ISO 8601, the commit date
    data_file: str
    edits: dict[str, tuple[str, str]]
    commit: str = ""
    configs: dict[str, Any] = field(default_factory=dict)


VERSIONS = (
    Version(
        "legacy",
        "2025-12-01T10:00:00+00:00",
        "data/resume_v1.yaml",
        {"data/resume_v1.yaml": ('version: "2"', 'version: "1"'), "hpo/smoke.yaml": ("max: 0.3", "max: 0.4")},
    ),
    Version("gen1", "2026-01-10T10:00:00+00:00", "data/resume_v1.yaml", {"hpo/smoke.yaml": ("max: 0.3", "max: 0.4")}),
    Version("gen2", "2026-02-01T10:00:00+00:00", "data/resume_tiny.yaml", {}),
)


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)})
    if date:
        env.update({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    out = subprocess.run(
        ["git", "-c", "user.name=pipeline", "-c", "user.email=pipeline@example.invalid", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return out.stdout.strip()


def write_tree(dest: Path, edits: dict[str, tuple[str, str]]) -> None:
    """The example tree with textual edits (text, so YAML 1.1 quirks like ``1e-5`` stay as written)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(TREE, dest)
    for rel, (old, new) in edits.items():
        p = dest / rel
        text = p.read_text(encoding="utf-8")
        assert old in text, (rel, old)
        p.write_text(text.replace(old, new, 1), encoding="utf-8")


def load(tree: Path, rel: str) -> dict[str, Any]:
    return yaml.safe_load((tree / rel).read_text(encoding="utf-8")) or {}


def make_repo(root: Path) -> tuple[Path, list[Version]]:
    """A git repository with the three versions of ``config/`` committed in date order."""
    repo = root / "pipeline-repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("training pipeline\n")
    versions = []
    for v in VERSIONS:
        write_tree(repo / "config", v.edits)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"configs: {v.name}", date=v.date)
        commit = git(repo, "rev-parse", "HEAD")
        tree = repo / "config"
        configs = {
            "data": load(tree, v.data_file),
            "hpo": load(tree, "hpo/smoke.yaml"),
            "train": load(tree, "train.yaml"),
            "benchmark": load(tree, "benchmark.yaml"),
        }
        versions.append(Version(v.name, v.date, v.data_file, v.edits, commit, configs))
    return repo, versions


@dataclass
class PipelineStudy:
    version: Version
    parent: str
    trials: list[str]
    refit: str
    v2: str
    v1: str
    hashes: h.StudyHashes


def _ms(iso: str) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def build_study(b: Builder, exp_id: str, v: Version, *, trial_schema: str, legacy_refit: bool) -> PipelineStudy:
    """Parent, three trials and a refit with exactly the pipeline's tags, params and metrics."""
    c = v.configs
    sh = h.compute_study_hashes(c["data"], c["hpo"], c["train"], MODEL, benchmark=c["benchmark"])
    v2 = sh.study_key_hash
    v1 = h.study_key_hash_v1(c["data"], c["hpo"], MODEL, benchmark=c["benchmark"], schema="1.0")
    family = h.study_family_hash(c["data"], c["hpo"], benchmark=c["benchmark"], schema="1.0")
    folder = (v1 if legacy_refit else v2)[:8]
    out_dir = f"/mnt/outputs/hpo/local/{MODEL}/study-{folder}"
    start = _ms(v.date) + DAY_MS  # the sweep ran a day after its configs were committed
    client = b.client

    def run(name: str, tags: dict[str, str], params: dict[str, Any], metrics: dict[str, float], t: int) -> str:
        rid = client.create_run(exp_id, run_name=name, start_time=t, tags=tags).info.run_id
        for k, val in params.items():
            client.log_param(rid, k, str(val))
        for k, val in metrics.items():
            client.log_metric(rid, k, val, timestamp=t, step=0)
        client.set_terminated(rid, end_time=t + 1000)
        return rid

    parent = run(
        f"hpo_{MODEL}_study-{folder}",
        {
            "code.stage": "hpo",
            "code.model": MODEL,
            "code.study_key_hash": v2,
            "code.study.key_schema_version": "2.0",
            "code.study_family_hash": family,
            "code.fingerprint.data": sh.data_fingerprint,
            "code.fingerprint.eval": sh.eval_fingerprint,
            "code.objective.direction": "maximize",
            "code.output_dir": out_dir,
            "code.artifact.available": "true",
            "code.run_key_hash": h.sha256_hex(f"run-{v.name}"),
            "code.grouping_schema_version": "1",
            "mlflow.runType": "sweep",
            "azureml.sweep": "true",
        },
        {
            "backbone": MODEL,
            "study_name": f"hpo_{MODEL}_test_v3",
            "objective_metric": "macro-f1",
            "primary_metric": "macro-f1",
            "objective_goal": "maximize",
            "max_trials": 3,
            "n_trials_planned": 3,
            "checkpoint_path": f"{out_dir}/study.db",
        },
        {},
        start,
    )
    trials = []
    for i, (hp, score) in enumerate(zip(HPS, SCORES, strict=True)):
        trials.append(
            run(
                f"hpo_{MODEL}_study-{folder}_t{i:02d}",
                {
                    "code.stage": "hpo",
                    "mlflow.parentRunId": parent,
                    "code.study_key_hash": v2,
                    "code.trial_key_hash": h.trial_key_hash(v2, hp, schema=trial_schema),
                    "code.study_family_hash": family,
                    "code.hpo.trial_number": str(i),
                    "trial_number": str(i),
                    "code.trial_id": str(i),
                    "code.output_dir": out_dir,
                },
                hp,
                {
                    "macro-f1": score,
                    "cv_mean": score,
                    "cv_std": 0.01,
                    "fold_0_macro-f1": score,
                    "fold_1_macro-f1": score,
                },
                start + (i + 1) * 1000,
            )
        )
    best = max(range(len(HPS)), key=lambda i: SCORES[i])
    refit = run(
        f"hpo_{MODEL}_study-{folder}_refit",
        {
            "code.stage": "hpo_refit",
            "code.run_type": "refit",
            "mlflow.parentRunId": parent,
            "code.parent_run_id": parent,
            "code.study_key_hash": v1 if legacy_refit else v2,
            "code.study.key_schema_version": "2.0",
            "code.fingerprint.data": sh.data_fingerprint,
            "code.fingerprint.eval": sh.eval_fingerprint,
            "code.trial_key_hash": h.trial_key_hash(v2, HPS[best], schema=trial_schema),
            "code.refit.of_trial_run_id": trials[best],
            "code.trial_id": str(best),
            "code.artifact.available": "true",
            "code.refit_protocol_fp": h.sha256_hex("refit-protocol"),
            "code.output_dir": out_dir,
        },
        HPS[best],
        {"macro-f1": SCORES[best] + 0.01, "loss": 0.3},
        start + 10_000,
    )
    client.set_tag(parent, "code.refit_run_id", refit)  # written by the pipeline after the refit
    client.set_tag(parent, "code.refit_completed", "true")
    return PipelineStudy(v, parent, trials, refit, v2, v1, sh)


def build_pipeline_store(b: Builder, root: Path) -> tuple[str, str, Path, dict[str, PipelineStudy]]:
    """The repository and the three studies; returns (experiment id, name, repo, studies by version)."""
    repo, versions = make_repo(root)
    exp_id, name = b.experiment("pipeline")
    studies = {
        versions[0].name: build_study(b, exp_id, versions[0], trial_schema="1.0", legacy_refit=True),
        versions[1].name: build_study(b, exp_id, versions[1], trial_schema="1.0", legacy_refit=False),
        versions[2].name: build_study(b, exp_id, versions[2], trial_schema="2.0", legacy_refit=False),
    }
    return exp_id, name, repo, studies
