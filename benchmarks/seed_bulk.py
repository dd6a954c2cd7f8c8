"""Bulk seeder: writes MLflow's SQL schema directly, in large transactions, so a store of 100,000 runs
shaped like the pipeline's is seeded in minutes (through ``MlflowClient`` it takes hours).

Shapes follow shared/pipeline/README.md (the newest pipeline): per study one parent (~22 tags, 8 params,
no metrics), trials (~16 tags, 4 hyperparameter params, 8 metrics: the objective, cv_mean, cv_std,
fold_<i>_macro-f1) and one refit (~19 tags, 4 params, 2 metrics). ``legacy`` studies carry the old
shape hpohash repairs (trials on the v1 study hash, the refit anchored on the 8-hex folder, no refit
link), so nearly every run has a finding: the worst case for memory and output. ``non_hpo`` adds that
share of runs of other stages (training, evaluation) that verify must not read.

The experiment itself is created through ``MlflowClient`` (so its artifact location is whatever the
store or server assigns), and each parent's configs are logged as artifacts through the same client:
through the server's artifact proxy when ``client`` talks HTTP. After seeding, ``check_readback``
compares a parent, a trial, a refit and a non-HPO run as ``MlflowClient.get_run`` returns them with
what was written, and counts the runs in the database.

Usage (standalone): python benchmarks/seed_bulk.py --db-uri sqlite:///big.db --runs 100000
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from hpohash import hashing as h  # noqa: E402

CASE = yaml.safe_load((ROOT / "tests" / "reference_vectors" / "c01_realistic.yaml").read_text())
FOLDS = 5
BATCH_RUNS = 5000


@dataclass
class Seeded:
    experiment_id: str
    runs: int = 0
    hpo_runs: int = 0
    studies: int = 0
    samples: dict[str, tuple[str, dict[str, str], dict[str, str], dict[str, float]]] = field(default_factory=dict)


def _common_tags(name: str, start: int) -> dict[str, str]:
    return {
        "mlflow.runName": name,
        "mlflow.user": "pipeline",
        "mlflow.source.name": "src/train.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": "3f2a9c1e0b7d4a6f8e2c1d0b9a8f7e6d5c4b3a21",
    }


def _study_runs(k: int, legacy: bool, n_trials: int, start: int) -> list[tuple[str, str, int, dict, dict, dict]]:
    """(run_id, name, start_time, tags, params, metrics) of one study: parent, trials, refit."""
    model = f"distilbert-{k}"
    sh = h.compute_study_hashes(CASE["data"], CASE["hpo"], CASE["train"], model)
    v2, v1 = sh.study_key_hash, sh.study_key_hash_v1["1.0"]
    folder = f"/outputs/hpo/local/{model}/study-{v2[:8]}"
    pid = uuid.uuid4().hex
    rows = []
    refit_id = uuid.uuid4().hex
    parent_tags = {
        "code.stage": "hpo",
        "code.model": "distilbert",
        "code.study_key_hash": v2,
        "code.study.key_schema_version": "2.0",
        "code.study_family_hash": sh.study_family_hash["2.0"],
        "code.fingerprint.data": sh.data_fingerprint,
        "code.fingerprint.eval": sh.eval_fingerprint,
        "code.objective.direction": "maximize",
        "code.output_dir": folder,
        "code.refit_run_id": refit_id,
        "code.refit_completed": "true",
        "code.artifact.available": "true",
        "code.run_key_hash": uuid.uuid4().hex * 2,
        "code.grouping_schema_version": "1",
        "mlflow.runType": "sweep",
        "azureml.sweep": "true",
        **_common_tags(f"hpo_{model}_study-{v2[:8]}", start),
    }
    parent_params = {
        "backbone": model,
        "study_name": f"hpo_{model}",
        "objective_metric": "macro-f1",
        "primary_metric": "macro-f1",
        "objective_goal": "maximize",
        "max_trials": str(n_trials),
        "n_trials_planned": str(n_trials),
        "checkpoint_path": f"{folder}/study.db",
    }
    rows.append((pid, f"hpo_{model}_study-{v2[:8]}", start, parent_tags, parent_params, {}))
    anchor = v1 if legacy else v2
    schema = "1.0" if legacy else "2.0"
    best: tuple[str, dict[str, Any], int, float] | None = None
    for i in range(n_trials):
        hp = {"learning_rate": 1e-5 + i * 1e-8, "batch_size": 8 if i % 2 else 16, "dropout": 0.1, "weight_decay": 0.01}
        tid = uuid.uuid4().hex
        score = 0.5 + i / 1e4
        name = f"hpo_{model}_study-{v2[:8]}_t{i:02d}"
        tags = {
            "code.stage": "hpo",
            "mlflow.parentRunId": pid,
            "code.study_key_hash": anchor,
            "code.trial_key_hash": h.trial_key_hash(anchor, hp, schema=schema),
            "code.study_family_hash": parent_tags["code.study_family_hash"],
            "code.hpo.trial_number": str(i),
            "trial_number": str(i),
            "code.trial_id": f"{pid[:8]}-{i}",
            "code.output_dir": folder,
            **_common_tags(name, start),
        }
        metrics = {"macro-f1": score, "cv_mean": score, "cv_std": 0.01}
        metrics.update({f"fold_{f}_macro-f1": score + f / 1e3 for f in range(FOLDS)})
        rows.append((tid, name, start + 1 + i, tags, {k: str(v) for k, v in hp.items()}, metrics))
        best = (tid, hp, i, score)
    assert best is not None
    tid, hp, i, score = best
    refit_tags = {
        "code.stage": "hpo_refit",
        "code.run_type": "refit",
        "mlflow.parentRunId": pid,
        "code.parent_run_id": pid,
        "code.study_key_hash": anchor,
        "code.trial_key_hash": h.trial_key_hash(v1[:8] if legacy else v2, hp, schema=schema),
        "code.trial_id": f"{pid[:8]}-{i}",
        "code.artifact.available": "true",
        "code.refit_protocol_fp": v2[:16],
        "code.output_dir": folder,
        **_common_tags(f"hpo_{model}_study-{v2[:8]}_refit", start),
    }
    if not legacy:
        refit_tags.update(
            {
                "code.study.key_schema_version": "2.0",
                "code.fingerprint.data": sh.data_fingerprint,
                "code.fingerprint.eval": sh.eval_fingerprint,
                "code.refit.of_trial_run_id": tid,
            }
        )
    rows.append(
        (refit_id, refit_tags["mlflow.runName"], start + 1 + n_trials, refit_tags,
         {k: str(v) for k, v in hp.items()}, {"macro-f1": score, "loss": 0.3})
    )  # fmt: skip
    return rows


def _other_run(j: int, start: int) -> tuple[str, str, int, dict, dict, dict]:
    """A run of another pipeline stage (final training, evaluation): the shape verify must skip."""
    name = f"train_distilbert_{j}"
    tags = {
        "code.stage": "final_training" if j % 2 else "benchmark",
        "code.model": "distilbert",
        "code.output_dir": f"/outputs/final/{j}",
        "code.run_key_hash": uuid.uuid4().hex * 2,
        "code.artifact.available": "true",
        "code.fingerprint.data": "d" * 64,
        "code.fingerprint.eval": "e" * 64,
        **_common_tags(name, start),
    }
    params = {"learning_rate": "2e-05", "batch_size": "16", "dropout": "0.1", "weight_decay": "0.01"}
    metrics = {"macro-f1": 0.8, "loss": 0.3, "cv_mean": 0.8, "cv_std": 0.01}
    metrics.update({f"fold_{f}_macro-f1": 0.8 for f in range(4)})
    return uuid.uuid4().hex, name, start, tags, params, metrics


def bulk_seed(
    db_uri: str,
    client: Any,
    experiment: str,
    n_runs: int,
    *,
    trials_per_study: int = 98,
    legacy: bool = True,
    non_hpo: float = 0.0,
    start_ms: int | None = None,
    upload_workers: int = 8,
) -> Seeded:
    """Create ``experiment`` through ``client``, then write ``n_runs`` runs straight into the database."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels import models as m

    exp_id = client.create_experiment(experiment)
    location = client.get_experiment(exp_id).artifact_location
    out = Seeded(exp_id)
    engine = sa.create_engine(db_uri)
    start0 = start_ms if start_ms is not None else int(time.time() * 1000) - n_runs * 1000
    n_hpo = round(n_runs * (1 - non_hpo))
    parents: list[str] = []
    buf: list[tuple[str, str, int, dict, dict, dict]] = []

    def flush() -> None:
        if not buf:
            return
        runs, tags, params, metrics, latest = [], [], [], [], []
        for rid, name, start, t, p, mt in buf:
            runs.append(
                {"run_uuid": rid, "name": name, "source_type": "LOCAL", "source_name": "src/train.py",
                 "entry_point_name": "", "user_id": "pipeline", "status": "FINISHED", "start_time": start,
                 "end_time": start + 500, "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
                 "artifact_uri": f"{location}/{rid}/artifacts", "experiment_id": int(exp_id)}
            )  # fmt: skip
            tags += [{"key": k, "value": v, "run_uuid": rid} for k, v in t.items()]
            params += [{"key": k, "value": v, "run_uuid": rid} for k, v in p.items()]
            for k, v in mt.items():
                row = {"key": k, "value": v, "timestamp": start + 400, "step": 0, "is_nan": False, "run_uuid": rid}
                metrics.append(row)
                latest.append(row)
        with engine.begin() as conn:
            for table, rows in (
                (m.SqlRun, runs), (m.SqlTag, tags), (m.SqlParam, params),
                (m.SqlMetric, metrics), (m.SqlLatestMetric, latest),
            ):  # fmt: skip
                if rows:
                    conn.execute(sa.insert(table.__table__), rows)
        buf.clear()

    start = start0
    while out.hpo_runs < n_hpo:
        left = n_hpo - out.hpo_runs
        n_trials = max(1, min(trials_per_study, left - 2))
        rows = _study_runs(out.studies, legacy, n_trials, start)[:left]
        parents.append(rows[0][0])
        if out.studies == 0:
            out.samples = {"parent": rows[0][:1] + rows[0][3:], "trial": rows[1][:1] + rows[1][3:]}
            if len(rows) > 2:
                out.samples["refit"] = rows[-1][:1] + rows[-1][3:]
        buf += rows
        out.hpo_runs += len(rows)
        out.studies += 1
        start += 1000 * (len(rows) + 1)
        if len(buf) >= BATCH_RUNS:
            flush()
    for j in range(n_runs - n_hpo):
        row = _other_run(j, start0 + j * 997)
        if j == 0:
            out.samples["other"] = row[:1] + row[3:]
        buf.append(row)
        if len(buf) >= BATCH_RUNS:
            flush()
    flush()
    out.runs = n_runs
    engine.dispose()
    _upload_configs(client, parents, upload_workers)
    return out


def _upload_configs(client: Any, parents: list[str], workers: int) -> None:
    """Each parent's data/hpo/train configs as ``config/*.yaml`` artifacts, through the client (and so
    through the server's artifact proxy when the client talks HTTP)."""
    texts = {f"config/{n}.yaml": yaml.safe_dump(CASE[n]) for n in ("data", "hpo", "train")}

    def upload(rid: str) -> None:
        for path, text in texts.items():
            client.log_text(rid, text, path)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(upload, parents))


def check_readback(db_uri: str, client: Any, seeded: Seeded) -> None:
    """What was written reads back through ``MlflowClient`` exactly; the database holds every run."""
    import sqlalchemy as sa

    for role, (rid, tags, params, metrics) in seeded.samples.items():
        run = client.get_run(rid)
        got = (dict(run.data.tags), dict(run.data.params), dict(run.data.metrics))
        if got != (tags, params, metrics):
            raise AssertionError(f"seeded {role} run {rid} reads back differently: {got} != {(tags, params, metrics)}")
    engine = sa.create_engine(db_uri)
    with engine.connect() as conn:
        n = conn.execute(
            sa.text("SELECT COUNT(*) FROM runs WHERE experiment_id = :e"), {"e": int(seeded.experiment_id)}
        ).scalar_one()
    engine.dispose()
    if n != seeded.runs:
        raise AssertionError(f"database holds {n} runs of experiment {seeded.experiment_id}, seeded {seeded.runs}")
    arts = {a.path for a in client.list_artifacts(seeded.samples["parent"][0], "config")}
    if arts != {"config/data.yaml", "config/hpo.yaml", "config/train.yaml"}:
        raise AssertionError(f"parent's config artifacts read back as {sorted(arts)}")


def timed_seed(db_uri: str, client: Any, experiment: str, n_runs: int, log: Callable[[str], None] = print, **kw: Any):
    t0 = time.perf_counter()
    seeded = bulk_seed(db_uri, client, experiment, n_runs, **kw)
    check_readback(db_uri, client, seeded)
    log(
        f"seeded {seeded.runs} runs ({seeded.hpo_runs} HPO runs in {seeded.studies} studies) into "
        f"experiment '{experiment}' in {time.perf_counter() - t0:.1f}s; read back through MlflowClient: ok"
    )
    return seeded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-uri", required=True, help="sqlite:///path.db or postgresql+psycopg2://…")
    ap.add_argument("--experiment", default="bench")
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--non-hpo", type=float, default=0.0, help="share of runs of other stages")
    args = ap.parse_args()
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=args.db_uri)
    timed_seed(args.db_uri, client, args.experiment, args.runs, non_hpo=args.non_hpo)


if __name__ == "__main__":
    main()
