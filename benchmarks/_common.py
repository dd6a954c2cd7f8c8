"""Shared helpers for the benchmarks: seed a store in-process, time whole processes, a local server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

from hpohash import hashing as h  # noqa: E402

CASE = yaml.safe_load((ROOT / "tests" / "reference_vectors" / "c01_realistic.yaml").read_text())


def seed(
    uri: str,
    experiment: str,
    n_runs: int,
    *,
    trials_per_study: int = 98,
    legacy: bool = True,
    artifact_root: str | None = None,
) -> dict[str, Any]:
    """Studies of 1 parent + trials + 1 refit until ``n_runs`` runs exist; legacy = v1 trials, folder8 refit."""
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(experiment, artifact_location=artifact_root)
    made = 0
    study = 0
    while made < n_runs:
        model = f"distilbert-{study}"
        sh = h.compute_study_hashes(CASE["data"], CASE["hpo"], CASE["train"], model)
        v2, v1 = sh.study_key_hash, sh.study_key_hash_v1["1.0"]
        common = {
            "code.study.key_schema_version": "2.0",
            "code.fingerprint.data": sh.data_fingerprint,
            "code.fingerprint.eval": sh.eval_fingerprint,
        }
        parent = _run(
            client,
            exp_id,
            f"sweep-{study}",
            {"code.stage": "hpo", "code.backbone": model, "code.study_key_hash": v2, **common},
        )
        for name in ("data", "hpo", "train"):
            client.log_text(parent, yaml.safe_dump(CASE[name]), f"config/{name}.yaml")
        made += 1
        n_trials = max(1, min(trials_per_study, n_runs - made - 1))
        best = None
        for i in range(n_trials):
            hp = {
                "learning_rate": 1e-5 + i * 1e-8,
                "batch_size": 8 if i % 2 else 16,
                "dropout": 0.1,
                "weight_decay": 0.01,
            }
            anchor = v1 if legacy else v2
            tags = {
                "code.stage": "hpo",
                "mlflow.parentRunId": parent,
                "code.hpo.trial_number": str(i),
                "code.study_key_hash": anchor,
                "code.trial_key_hash": h.trial_key_hash(anchor, hp, schema="1.0" if legacy else "2.0"),
            }
            if not legacy:
                tags.update(common)
            tid = _run(client, exp_id, f"trial-{i}", tags, {**hp, "backbone": model}, {"macro-f1": 0.5 + i / 1e4})
            best = (tid, hp, i)
            made += 1
        if made < n_runs and best is not None:
            tid, hp, i = best
            anchor = v1 if legacy else v2
            tags = {
                "code.stage": "hpo_refit",
                "mlflow.parentRunId": parent,
                "code.hpo.trial_number": str(i),
                "code.study_key_hash": anchor,
                "code.artifact.available": "true",
                "code.trial_key_hash": h.trial_key_hash(
                    v1[:8] if legacy else v2, hp, schema="1.0" if legacy else "2.0"
                ),
            }
            if not legacy:
                tags.update(common)
                tags["code.refit.of_trial_run_id"] = tid
            _run(client, exp_id, "refit", tags, {**hp, "backbone": model})
            made += 1
        study += 1
    return {"experiment_id": exp_id, "runs": made, "studies": study}


def _run(
    client: MlflowClient,
    exp_id: str,
    name: str,
    tags: dict[str, str],
    params: dict | None = None,
    metrics: dict | None = None,
) -> str:
    rid = client.create_run(exp_id, run_name=name).info.run_id
    client.log_batch(
        rid,
        metrics=[Metric(k, v, 0, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(rid)
    return rid


def timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS MiB, stdout) of one whole process."""
    import tempfile

    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env or os.environ.copy(), cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the max of all children
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}: {err.decode()[-1000:]}")
    return elapsed, usage.ru_maxrss // 1024, out.decode()


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
