"""Build real MLflow runs for the tests with the public MLflow client (no mocks of the store).

A study is built correct (as the pipeline writes it after the v2 migration), from a reference case,
and each test then breaks exactly the tag it is about.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from hpohash import hashing as h

VECTORS = Path(__file__).parent / "reference_vectors"
EXPECTED = json.loads((VECTORS / "expected.json").read_text())

# c01's search space types: learning_rate/dropout/weight_decay floats, batch_size an int choice.
C01_TRIALS = (
    {"learning_rate": 2.33e-05, "batch_size": 16, "dropout": 0.1733, "weight_decay": 0.0042},  # = c01 trial 0
    {"learning_rate": 3.1e-05, "batch_size": 8, "dropout": 0.25, "weight_decay": 0.01},  # = c01 trial 2
    {"learning_rate": 1.5e-05, "batch_size": 8, "dropout": 0.2, "weight_decay": 0.02},
)
C01_SCORES = (0.80, 0.85, 0.70)  # trial 1 is the champion


def load_case(name: str) -> dict[str, Any]:
    return yaml.safe_load((VECTORS / name).read_text(encoding="utf-8"))


@dataclass
class BuiltStudy:
    experiment_id: str
    parent: str
    trials: list[str]
    refit: str | None
    folds: list[str] = field(default_factory=list)
    hashes: h.StudyHashes | None = None
    hps: tuple[dict[str, Any], ...] = ()


class Builder:
    """Creates experiments and finished runs in a real tracking store."""

    def __init__(self, uri: str, artifact_root: str | None = None) -> None:
        self.uri = uri
        self.artifact_root = artifact_root
        self.client = MlflowClient(tracking_uri=uri)

    def experiment(self, prefix: str = "exp") -> tuple[str, str]:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        location = f"{self.artifact_root}/{name}" if self.artifact_root else None
        return self.client.create_experiment(name, artifact_location=location), name

    def run(
        self,
        exp_id: str,
        name: str,
        tags: dict[str, str],
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        artifacts: dict[str, str] | None = None,
        start_time: int | None = None,
    ) -> str:
        rid = self.client.create_run(exp_id, run_name=name, start_time=start_time).info.run_id
        self.client.log_batch(
            rid,
            metrics=[Metric(k, v, 0, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        for path, text in (artifacts or {}).items():
            self.client.log_text(rid, text, path)
        self.client.set_terminated(rid)
        return rid

    def tags(self, run_id: str) -> dict[str, str]:
        return {k: v for k, v in self.client.get_run(run_id).data.tags.items() if not k.startswith("mlflow.")}

    def all_tags(self, run_id: str) -> dict[str, str]:
        return dict(self.client.get_run(run_id).data.tags)

    def set(self, run_id: str, **tags: str) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k.replace("__", "."), v)

    def study(
        self,
        exp_id: str,
        *,
        case: str = "c01_realistic.yaml",
        model: str = "distilbert",
        hps: tuple[dict[str, Any], ...] = C01_TRIALS,
        scores: tuple[float, ...] = C01_SCORES,
        trial_schema: str = "2.0",
        config_format: str | None = "yaml",
        refit: bool = True,
        folds: int = 0,
        trial_experiment: str | None = None,
        parent_tags: dict[str, str] | None = None,
        data_update: dict[str, Any] | None = None,
        start_time: int | None = None,
    ) -> BuiltStudy:
        """A correct v2 study: parent, trials (with params and the objective metric), a linked refit."""
        c = load_case(case)
        c["data"].update(data_update or {})
        sh = h.compute_study_hashes(c["data"], c["hpo"], c["train"], model)
        v2 = sh.study_key_hash
        artifacts = {}
        if config_format == "yaml":
            artifacts = {f"config/{n}.yaml": yaml.safe_dump(c[n], sort_keys=False) for n in ("data", "hpo", "train")}
        elif config_format == "json":
            artifacts = {f"config/{n}.json": json.dumps(c[n]) for n in ("data", "hpo", "train")}
        common = {
            "code.study_key_hash": v2,
            "code.study.key_schema_version": "2.0",
            "code.fingerprint.data": sh.data_fingerprint,
            "code.fingerprint.eval": sh.eval_fingerprint,
        }
        ptags = {"code.stage": "hpo", "code.backbone": model, "code.objective.direction": "maximize", **common}
        ptags.update(parent_tags or {})
        parent = self.run(exp_id, f"sweep-{model}", ptags, artifacts=artifacts, start_time=start_time)
        texp = trial_experiment or exp_id
        trials = []
        for i, (hp, score) in enumerate(zip(hps, scores, strict=True)):
            ttags = {
                "code.stage": "hpo",
                "code.hpo.trial_number": str(i),
                "code.trial_key_hash": h.trial_key_hash(v2, hp, schema=trial_schema),
                **common,
            }
            if texp == exp_id:
                ttags["mlflow.parentRunId"] = parent
            else:
                ttags["code.lineage.hpo_sweep_run_id"] = parent
            trials.append(
                self.run(
                    texp,
                    f"trial-{i}",
                    ttags,
                    params={**hp, "backbone": model},
                    metrics={"macro-f1": score},
                    start_time=None if start_time is None else start_time + 1 + i,
                )
            )
        fold_ids = []
        for j in range(folds):
            fold_ids.append(
                self.run(
                    texp, f"fold-{j}", {"code.stage": "hpo", "mlflow.parentRunId": trials[0]}, metrics={"macro-f1": 0.1}
                )
            )
        refit_id = None
        if refit:
            best = max(range(len(hps)), key=lambda i: scores[i])
            refit_id = self.run(
                exp_id,
                "refit",
                {
                    "code.stage": "hpo_refit",
                    "mlflow.parentRunId": parent,
                    "code.hpo.trial_number": str(best),
                    "code.trial_key_hash": h.trial_key_hash(v2, hps[best], schema=trial_schema),
                    "code.refit.of_trial_run_id": trials[best],
                    "code.artifact.available": "true",
                    **common,
                },
                params={**hps[best], "backbone": model},
                metrics={"macro-f1": scores[best]},
                start_time=None if start_time is None else start_time + 1000,
            )
        return BuiltStudy(exp_id, parent, trials, refit_id, fold_ids, sh, hps)

    def make_legacy(self, s: BuiltStudy, *, link_refit: bool = False) -> None:
        """Turn a correct study into the plan's situation: v1 trials, folder8 refit (optionally unlinked)."""
        assert s.hashes is not None
        v1 = s.hashes.study_key_hash_v1["1.0"]
        for run_id, hp in zip(s.trials, s.hps, strict=True):
            self.client.set_tag(run_id, "code.study_key_hash", v1)
            self.client.set_tag(run_id, "code.trial_key_hash", h.trial_key_hash(v1, hp, schema="1.0"))
            for key in ("code.fingerprint.data", "code.fingerprint.eval", "code.study.key_schema_version"):
                self.client.delete_tag(run_id, key)
        if s.refit:
            best = int(self.tags(s.refit)["code.hpo.trial_number"])
            self.client.set_tag(s.refit, "code.study_key_hash", v1)
            self.client.set_tag(s.refit, "code.trial_key_hash", h.trial_key_hash(v1[:8], s.hps[best], schema="1.0"))
            for key in ("code.fingerprint.data", "code.fingerprint.eval", "code.study.key_schema_version"):
                self.client.delete_tag(s.refit, key)
            if not link_refit:
                self.client.delete_tag(s.refit, "code.refit.of_trial_run_id")
