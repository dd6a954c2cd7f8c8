"""``diff``: why two sides do (not) share a study or trial hash, field by field (SPEC §5 ``diff``).

Pure: sides are built from already-loaded runs or configs; the differences are computed over the v2
study-key payload with the fingerprint inputs expanded, so users see ``data.split_seed`` rather than
two opaque fingerprints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from hpohash import hashing as h
from hpohash.classify import REFIT, TRIAL
from hpohash.configs import ConfigSet
from hpohash.loading import RunSide
from hpohash.plan import study_cause
from hpohash.reports import Difference, DiffReport, DiffSide
from hpohash.tags import TagRegistry

ABSENT = "<absent>"


@dataclass(frozen=True)
class Side:
    """What one side claims and what its configs recompute to."""

    label: str
    run_id: str | None
    stored_study_key_hash: str | None
    recomputed_study_key_hash: str | None
    stored_trial_key_hash: str | None
    recomputed_trial_key_hash: str | None
    study_cause: str | None
    trial_cause: str | None
    payload: dict[str, Any] | None  # expanded v2 payload (+ hyperparameters), None without configs
    model: str | None
    note: str | None = None

    @property
    def study_claim(self) -> str | None:
        return self.stored_study_key_hash or self.recomputed_study_key_hash

    @property
    def trial_claim(self) -> str | None:
        return self.stored_trial_key_hash or self.recomputed_trial_key_hash


def expanded_payload(configs: ConfigSet, model: str, hp: Mapping[str, Any] | None) -> dict[str, Any]:
    """The v2 payload with the inputs behind each fingerprint, plus normalised hyperparameters."""
    payload = h.study_key_v2(configs.data, configs.hpo, configs.train, model)
    payload["data"]["data_fingerprint_inputs"] = h.data_fingerprint_inputs(configs.data)
    payload["evaluation"]["eval_config"] = h.eval_config(configs.hpo, configs.train)
    if hp is not None:
        payload["hyperparameters"] = h.normalise_hyperparameters(hp)
    return payload


def side_from_run(side: RunSide, reg: TagRegistry, label: str) -> Side:
    study, run = side.study, side.run
    is_member = side.role in (TRIAL, REFIT)
    hp = study.hp(run) if is_member else None
    stored_study = reg.read(run.tags, "study_key_hash")
    stored_trial = reg.read(run.tags, "trial_key_hash") if is_member else None
    v2 = study.recomputed_study_hash
    anchor = study.v2_hash  # the parent's 2.0 tag, else the recomputed hash
    recomputed_trial = None
    trial_cause = None
    if is_member and anchor is not None:
        # the stored trial hash is compared in the generation it was written in ("1.0" or "2.0"); one
        # recognition also says why a wrong one is what it is (v2 is tried first)
        schema = h.recognise_trial_hash_on(stored_trial, anchor, study.canonical_hp(run))
        if schema is None and study.config_hashes is not None:
            cause, schema = study.recognise_trial(stored_trial, study.canonical_hp(run)) or (None, None)
            trial_cause = None if cause == h.CAUSE_V2 else cause
        recomputed_trial = h.trial_key_hash(anchor, study.canonical_hp(run), schema=schema or "2.0")
    study_cause_ = None
    if stored_study and stored_study != anchor:
        study_cause_ = study_cause(study, stored_study, strict=False)
    note = None
    if study.configs is None:
        note = f"{label}: {study.config_missing or study.config_unmatched or 'no configs'}; fields not compared"
    elif not study.model:
        note = f"{label}: no model found; pass --model"
    return Side(
        label=label,
        run_id=run.run_id,
        stored_study_key_hash=stored_study,
        recomputed_study_key_hash=v2,
        stored_trial_key_hash=stored_trial,
        recomputed_trial_key_hash=recomputed_trial,
        study_cause=study_cause_,
        trial_cause=trial_cause,
        payload=expanded_payload(study.configs, study.model, hp) if study.configs and study.model else None,
        model=study.model,
        note=note,
    )


def parent_side_for(parent: Side, parent_side: RunSide, member_side: RunSide, member: Side) -> Side:
    """The parent as the other side of a trial/refit: it claims the trial hash of the member's
    hyperparameters on the study's hash, in the generation the member's stored hash was written in."""
    anchor = parent_side.study.v2_hash or parent.study_claim
    hp = member_side.study.canonical_hp(member_side.run)
    if anchor is None or member_side.role not in (TRIAL, REFIT):
        return parent
    schema = h.recognise_trial_hash_on(member.stored_trial_key_hash, anchor, hp) or "2.0"
    payload = parent.payload
    if payload is not None and member.payload is not None and "hyperparameters" in member.payload:
        payload = {**payload, "hyperparameters": member.payload["hyperparameters"]}
    return replace(parent, recomputed_trial_key_hash=h.trial_key_hash(anchor, hp, schema=schema), payload=payload)


def side_from_configs(configs: ConfigSet, model: str, label: str, other: Side, other_hp: Any) -> Side:
    """The configs on disk as a side: what a new sweep with them would claim."""
    v2 = h.study_key_hash_v2(configs.data, configs.hpo, configs.train, model)
    trial = None
    if other_hp is not None:
        schema = "2.0"
        if other.stored_trial_key_hash and other.recomputed_study_key_hash:
            schema = (
                h.recognise_trial_hash_on(other.stored_trial_key_hash, other.recomputed_study_key_hash, other_hp)
                or "2.0"
            )
        trial = h.trial_key_hash(v2, other_hp, schema=schema)
    return Side(label, None, None, v2, None, trial, None, None, expanded_payload(configs, model, other_hp), model)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaves; maps and lists are walked, so nested changes show where they are."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping) and value:
        for k in sorted(value, key=str):
            out.update(flatten(value[k], f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def differences(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> list[Difference]:
    if a is None or b is None:
        return []
    if "hyperparameters" not in a or "hyperparameters" not in b:
        a = {k: v for k, v in a.items() if k != "hyperparameters"}
        b = {k: v for k, v in b.items() if k != "hyperparameters"}
    fa, fb = flatten(a), flatten(b)
    out = []
    for path in sorted(set(fa) | set(fb), key=_path_order):
        va, vb = fa.get(path, ABSENT), fb.get(path, ABSENT)
        if (va is ABSENT and _has_children(fa, path)) or (vb is ABSENT and _has_children(fb, path)):
            continue  # an empty mapping on one side against fields on the other: the fields' rows say it
        if va != vb or type(va) is not type(vb):
            out.append(Difference(path, va, vb))
    return out


def _has_children(flat: Mapping[str, Any], path: str) -> bool:
    return any(p.startswith(path + ".") or p.startswith(path + "[") for p in flat)


def _path_order(path: str) -> tuple[int, str]:
    order = ("model", "data.", "hpo.", "training.", "evaluation.", "hyperparameters.")
    for i, p in enumerate(order):
        if path.startswith(p):
            return (i, path)
    return (len(order), path)


def diff_report(a: Side, b: Side) -> DiffReport:
    """The ``hpohash.diff/1`` report of two sides."""
    same_study = a.study_claim is not None and a.study_claim == b.study_claim
    same_trial = None
    if a.trial_claim is not None and b.trial_claim is not None:
        same_trial = a.trial_claim == b.trial_claim

    def side(s: Side) -> DiffSide:
        cause = s.trial_cause if same_study and same_trial is False else (s.study_cause or s.trial_cause)
        return DiffSide(
            label=s.label,
            run_id=s.run_id,
            stored_study_key_hash=s.stored_study_key_hash,
            study_key_hash=s.study_claim,
            recomputed_study_key_hash=s.recomputed_study_key_hash,
            stored_trial_key_hash=s.stored_trial_key_hash,
            trial_key_hash=s.trial_claim,
            recomputed_trial_key_hash=s.recomputed_trial_key_hash,
            cause=cause,
            model=s.model,
        )

    return DiffReport(
        a=side(a),
        b=side(b),
        same_study=same_study,
        same_trial=same_trial,
        differences=tuple(differences(a.payload, b.payload)),
        notes=tuple(n for n in (a.note, b.note) if n),
    )
