"""An in-memory scope builder: plain run records, configs as bytes, no MLflow (the rule cases use it).

A correct c01 study is built with short run ids (``p`` the parent, ``t0``–``t2`` the trials, ``r``
the refit linked to the champion ``t1``), each case changes a few tags, and ``build_scope`` makes the
same study model ``verify`` and ``backfill`` read from a store.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hpohash import hashing as h
from hpohash import sources as src
from hpohash.loading import build_scope
from hpohash.records import Experiment, RunRecord
from hpohash.study import Scope
from hpohash.tags import TagRegistry
from tests.builders import C01_SCORES, C01_TRIALS, load_case

MODEL = "distilbert"


def placeholders(case: Mapping[str, Any]) -> dict[str, str]:
    """The values a case may name: ``{v2}``, ``{v1}``, ``{v1_8}``, ``{t0_v2}`` (2.0 form), ``{t0_v2_10}``
    (1.0 form), ``{t0_v1}``, ``{t1_folder8}``, ``{seed}``, ``{fp_data}``, ``{fp_eval}``."""
    sh = h.compute_study_hashes(case["data"], case["hpo"], case["train"], MODEL)
    v1 = sh.study_key_hash_v1["1.0"]
    out = {
        "v2": sh.study_key_hash,
        "v1": v1,
        "v1_8": v1[:8],
        "v2_8": sh.study_key_hash[:8],
        "seed": sh.study_key_hash_seed_eval,
        "fp_data": sh.data_fingerprint,
        "fp_eval": sh.eval_fingerprint,
    }
    for i, hp in enumerate(C01_TRIALS):
        out[f"t{i}_v2"] = h.trial_key_hash(sh.study_key_hash, hp, schema="2.0")
        out[f"t{i}_v2_10"] = h.trial_key_hash(sh.study_key_hash, hp, schema="1.0")
        out[f"t{i}_v1"] = h.trial_key_hash(v1, hp, schema="1.0")
        out[f"t{i}_folder8"] = h.trial_key_hash(v1[:8], hp, schema="1.0")
    return out


def expand(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values) if "{" in value else value
    if isinstance(value, list):
        return [expand(v, values) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, values) for k, v in value.items()}
    return value


def correct_runs(values: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """A correct v2 study as the pipeline writes it after the migration (ids: p, t0–t2, r)."""
    common = {
        "code.study_key_hash": values["v2"],
        "code.study.key_schema_version": "2.0",
        "code.fingerprint.data": values["fp_data"],
        "code.fingerprint.eval": values["fp_eval"],
    }
    runs: dict[str, dict[str, Any]] = {
        "p": {
            "tags": {"code.stage": "hpo", "code.backbone": MODEL, "code.objective.direction": "maximize", **common},
            "params": {},
            "metrics": {},
        }
    }
    for i, (hp, score) in enumerate(zip(C01_TRIALS, C01_SCORES, strict=True)):
        runs[f"t{i}"] = {
            "tags": {
                "code.stage": "hpo",
                "mlflow.parentRunId": "p",
                "code.hpo.trial_number": str(i),
                "code.trial_key_hash": values[f"t{i}_v2"],
                **common,
            },
            "params": {**{k: str(v) for k, v in hp.items()}, "backbone": MODEL},
            "metrics": {"macro-f1": score},
        }
    runs["r"] = {
        "tags": {
            "code.stage": "hpo_refit",
            "mlflow.parentRunId": "p",
            "code.hpo.trial_number": "1",
            "code.trial_key_hash": values["t1_v2"],
            "code.refit.of_trial_run_id": "t1",
            "code.artifact.available": "true",
            **common,
        },
        "params": {**{k: str(v) for k, v in C01_TRIALS[1].items()}, "backbone": MODEL},
        "metrics": {"macro-f1": C01_SCORES[1]},
    }
    return runs


def record(run_id: str, spec: Mapping[str, Any], start: int) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        experiment_id="1",
        name=spec.get("name", run_id),
        _artifact=f"memory:///{run_id}",
        lifecycle_stage="deleted" if spec.get("deleted") else "active",
        status="FINISHED",
        start_time=start,
        tags=dict(spec["tags"]),
        params=dict(spec["params"]),
        metrics={k: float(v) for k, v in spec["metrics"].items()},
    )


def scope_for(case: Mapping[str, Any], tmp: Path) -> tuple[Scope, dict[str, str]]:
    """The scope of one case: the correct study, then its ``set``/``delete``/``add`` edits, configs
    logged on the parent unless ``configs: none`` (or bytes given per name), ``config_dir: <case>``."""
    ref = load_case("c01_realistic.yaml")
    values = placeholders(ref)
    runs = correct_runs(values)
    for rid, tags in (case.get("set") or {}).items():
        runs[rid]["tags"].update(expand(tags, values))
    for rid, keys in (case.get("delete") or {}).items():
        for key in keys:
            if key.startswith("param:"):
                runs[rid]["params"].pop(key[len("param:") :], None)
            else:
                runs[rid]["tags"].pop(key, None)
    for rid, spec in (case.get("add") or {}).items():
        runs[rid] = {"tags": expand(spec.get("tags", {}), values), "params": spec.get("params", {}), "metrics": {}}
        runs[rid].update({k: v for k, v in spec.items() if k in ("deleted", "name")})
    for rid in case.get("remove") or []:
        runs.pop(rid)
    records = {rid: record(rid, spec, i * 1000) for i, (rid, spec) in enumerate(runs.items())}

    logged: dict[str, tuple[str, bytes]] = {
        n: (f"config/{n}.yaml", yaml.safe_dump(copy.deepcopy(ref[n])).encode()) for n in ("data", "hpo", "train")
    }
    configs = case.get("configs", "logged")
    if configs == "none":
        logged = {}
    elif isinstance(configs, dict):
        for name, text in configs.items():
            logged[name] = (f"config/{name}.yaml", str(text).encode())

    def fetch(study: Any) -> list[tuple[str, dict[str, Any]]]:
        return [(study.parent.run_id, dict(logged))] if logged else []

    disk = None
    if case.get("config_dir"):
        d = tmp / "config-dir"
        d.mkdir(parents=True, exist_ok=True)
        other = load_case(case["config_dir"])
        for n in ("data", "hpo", "train"):
            (d / f"{n}.json").write_text(json.dumps(other[n]))
        disk = src.ConfigSources.read([str(d)], history=False)
    scope = build_scope(
        TagRegistry(), [Experiment("1", "memory")], records, tracking_uri="memory://", fetch=fetch, disk=disk
    )
    return scope, values
