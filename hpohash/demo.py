"""``hpohash demo``: an experiment that reproduces the pipeline's situation (SPEC §5 ``demo``).

Two studies whose parents carry v2 tags; trials still on v1 study hashes; refits whose trial hash is
anchored on the 8-character folder hash; one refit without a link; configs logged as artifacts
(YAML for one study, JSON for the other). ``verify`` then shows the problems, ``backfill --yes``
fixes them, and ``verify`` passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from hpohash import hashing as h
from hpohash.errors import UsageError
from hpohash.tags import TagRegistry
from hpohash.tracking import Tracking

EXPERIMENT = "hpohash-demo"
MARKER = "hpohash.demo"


@dataclass(frozen=True)
class DemoStudy:
    model: str
    configs: dict[str, Any]
    trials: tuple[dict[str, Any], ...]
    scores: tuple[float, ...]
    link_refit: bool
    as_json: bool


STUDIES = (
    DemoStudy(
        model="distilbert",
        configs={
            "data": {
                "name": "resume-ner-data",
                "version": "2",
                "local_path": "../dataset",
                "schema": {"format": "json", "annotation_format": "character_spans"},
            },
            "hpo": {
                "search_space": {
                    "backbone": {"type": "choice", "values": ["distilbert"]},
                    "learning_rate": {"type": "loguniform", "min": "1e-5", "max": "5e-5"},
                    "batch_size": {"type": "choice", "values": [8, 16]},
                    "dropout": {"type": "uniform", "min": 0.1, "max": 0.3},
                },
                "sampling": {"algorithm": "random", "max_trials": 3},
                "objective": {"metric": "macro-f1", "direction": "maximize"},
                "k_fold": {"enabled": False},
            },
            "train": {"training": {"epochs": 5}},
        },
        trials=(
            {"learning_rate": 2.33e-05, "batch_size": 16, "dropout": 0.1733},
            {"learning_rate": 3.1e-05, "batch_size": 8, "dropout": 0.25},
            {"learning_rate": 1.2e-05, "batch_size": 16, "dropout": 0.2},
        ),
        scores=(0.81, 0.84, 0.78),
        link_refit=True,
        as_json=False,
    ),
    DemoStudy(
        model="distilroberta",
        configs={
            "data": {"name": "resume-ner-data", "version": "2", "split_seed": 0},
            "hpo": {
                "search_space": {
                    "learning_rate": {"type": "loguniform", "min": "1e-5", "max": "5e-5"},
                    "batch_size": {"type": "choice", "values": [8, 16]},
                },
                "objective": {"metric": "macro-f1"},
                "early_termination": {"policy": "median"},
            },
            "train": {"num_epochs": 2},
        },
        trials=(
            {"learning_rate": 1e-05, "batch_size": 8},
            {"learning_rate": 4e-05, "batch_size": 16},
        ),
        scores=(0.79, 0.82),
        link_refit=False,
        as_json=True,
    ),
)


def _demo_experiment(tracking: Tracking) -> str:
    """Create the demo experiment, or empty it when it carries the demo marker; refuse any other one."""
    found = tracking.experiment_tags(EXPERIMENT)
    if found is None:
        return tracking.create_experiment(EXPERIMENT, {MARKER: "true"})
    exp_id, tags, deleted = found
    if tags.get(MARKER) != "true":
        raise UsageError(f"experiment '{EXPERIMENT}' exists and is not a demo experiment: refusing to write into it")
    tracking.restore_and_empty(exp_id, restore=deleted)
    return exp_id


def write_demo(tracking: Tracking, reg: TagRegistry | None = None) -> dict[str, Any]:
    """Write the demo experiment; returns its id and the run ids it created."""
    reg = reg or TagRegistry()
    k = reg.key
    exp_id = _demo_experiment(tracking)
    created: dict[str, Any] = {"experiment_id": exp_id, "studies": []}
    for n, spec in enumerate(STUDIES, 1):
        c = spec.configs
        sh = h.compute_study_hashes(c["data"], c["hpo"], c["train"], spec.model)
        v1 = sh.study_key_hash_v1["1.0"]
        suffix = "json" if spec.as_json else "yaml"
        texts = {
            f"config/{name}.{suffix}": json.dumps(body, indent=2)
            if spec.as_json
            else yaml.safe_dump(body, sort_keys=False)
            for name, body in c.items()
        }
        parent_id = tracking.create_run(
            exp_id,
            f"hpo_{spec.model}",
            tags={
                k("stage"): "hpo",
                k("backbone"): spec.model,
                k("study_key_hash"): sh.study_key_hash,
                k("key_schema_version"): "2.0",
                k("data_fingerprint"): sh.data_fingerprint,
                k("eval_fingerprint"): sh.eval_fingerprint,
                k("objective_direction"): str(c["hpo"]["objective"].get("direction", "maximize")),
            },
            texts=texts,
        )
        trial_ids = []
        for i, (hp, score) in enumerate(zip(spec.trials, spec.scores, strict=True)):
            trial_ids.append(
                tracking.create_run(
                    exp_id,
                    f"hpo_{spec.model}_trial_{i}",
                    tags={
                        k("stage"): "hpo",
                        k("parent"): parent_id,
                        k("trial_number"): str(i),
                        k("study_key_hash"): v1,  # the v1 hash the trials kept computing
                        k("trial_key_hash"): h.trial_key_hash(v1, hp, schema="1.0"),
                    },
                    params={**{p: str(v) for p, v in hp.items()}, "backbone": spec.model},
                    metrics={"macro-f1": score},
                )
            )
        best = max(range(len(spec.trials)), key=lambda i: spec.scores[i])
        refit_tags = {
            k("stage"): "hpo_refit",
            k("parent"): parent_id,
            k("trial_number"): str(best),
            k("study_key_hash"): v1,
            # the refit bug of the plan's Task 3: anchored on the disk folder study-<8 hex of v1>
            k("trial_key_hash"): h.trial_key_hash(v1[:8], spec.trials[best], schema="1.0"),
            k("artifact_available"): "true",
        }
        if spec.link_refit:
            refit_tags[k("refit_of_trial_run_id")] = trial_ids[best]
        refit_id = tracking.create_run(
            exp_id,
            f"hpo_{spec.model}_refit",
            tags=refit_tags,
            params={**{p: str(v) for p, v in spec.trials[best].items()}, "backbone": spec.model},
            metrics={"macro-f1": spec.scores[best]},
        )
        created["studies"].append(
            {
                "study": n,
                "parent": parent_id,
                "trials": trial_ids,
                "refit": refit_id,
                "study_key_hash": sh.study_key_hash,
            }
        )
    return created
