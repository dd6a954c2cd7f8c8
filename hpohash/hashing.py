"""Pure hashing: the study, family and trial keys, bit for bit as the training pipeline makes them.

No I/O and no MLflow here, so a pipeline can import this module to know a hash before it creates
runs, and so every command recomputes hashes through one implementation (SPEC §3).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any

#: Inner ``schema_version`` strings of the trial key, v1 study key and family key (two generations).
TRIAL_KEY_SCHEMAS: tuple[str, str] = ("1.0", "2.0")
#: The v2 study key always carries this schema version; it is also the parent's schema tag value.
STUDY_KEY_V2_SCHEMA = "2.0"
#: Hyperparameters that are run bookkeeping, not part of a trial's identity.
EXCLUDED_HYPERPARAMETERS = frozenset({"backbone", "trial_number", "run_id"})

# Causes a stored value can be recognised as (SPEC §3 "Legacy variants").
CAUSE_V2 = "v2"
CAUSE_V1 = "v1"
CAUSE_FOLDER8 = "folder8"
CAUSE_SEED_EVAL = "seed-eval"
CAUSE_UNKNOWN = "unknown"

Config = Mapping[str, Any]


def sha256_hex(text: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: ``json.dumps(value, sort_keys=True, separators=(",", ":"))``'s own encoder, made once (dumps makes
#: one per call when given options; a trial's key is made for every run)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """The pipeline's canonical form: sorted keys, no spaces, ASCII-escaped, Python float repr."""
    return _CANONICAL.encode(value)


def _get(mapping: Config | None, key: str, default: Any = None) -> Any:
    """``mapping.get(key, default)`` that tolerates a ``None`` mapping (a config section left empty)."""
    if not mapping:
        return default
    return mapping.get(key, default)


def _section(mapping: Config | None, key: str) -> Any:
    """``mapping.get(key, {})`` — the pipeline's way of reading a sub-section."""
    return _get(mapping, key, {})


def data_fingerprint(data: Config | None) -> str:
    """Content hash, else manifest hash, else a hash of the data's identifying fields."""
    data = data or {}
    content_hash = data.get("content_hash")
    if content_hash:
        return sha256_hex(str(content_hash))
    manifest_hash = data.get("manifest_hash")
    if manifest_hash:
        return sha256_hex(str(manifest_hash))
    return sha256_hex(canonical_json(data_fingerprint_inputs(data)))


def data_fingerprint_inputs(data: Config | None) -> dict[str, Any]:
    """The fields the semantic data fingerprint is made of (also what ``diff`` expands)."""
    data = data or {}
    if data.get("content_hash"):
        return {"content_hash": str(data["content_hash"])}
    if data.get("manifest_hash"):
        return {"manifest_hash": str(data["manifest_hash"])}
    return {
        "name": data.get("name"),
        "version": data.get("version"),
        "split_seed": data.get("split_seed"),
        "label_mapping": data.get("label_mapping", {}),
        "schema": data.get("schema", {}),
    }


def eval_config(hpo: Config | None, train: Config | None) -> Any:
    """The derived eval config: ``train.eval``, else ``hpo.evaluation``, else one built from the objective."""
    train_eval = _get(train, "eval")
    if train_eval:
        return train_eval
    hpo_eval = _get(hpo, "evaluation")
    if hpo_eval:
        return hpo_eval
    if hpo:
        return {"evaluator_version": "default", "metric": hpo.get("objective", {})}
    return {"evaluator_version": "default"}


def seed_eval_config(hpo: Config | None, train: Config | None) -> Any:
    """The eval config of the plan's Task 1 snippet (no objective fallback): the ``seed-eval`` variant."""
    return _get(train, "eval") or _get(hpo, "evaluation") or {}


def eval_fingerprint(ev: Any) -> str:
    """Hash of the eval config's evaluator, metric, thresholding and the whole config."""
    return sha256_hex(
        canonical_json(
            {
                "evaluator_version": _get(ev, "evaluator_version", "default"),
                "metric_spec": _get(ev, "metric", {}),
                "thresholding": _get(ev, "thresholding", {}),
                "full_eval_config": ev,
            }
        )
    )


def normalise_model(model: str) -> str:
    return model.lower().strip()


def _hpo_common(hpo: Config | None, objective: Any) -> dict[str, Any]:
    return {
        "search_space": _section(hpo, "search_space"),
        "objective": objective,
        "k_fold": _section(hpo, "k_fold"),
        "sampling": {"algorithm": _get(_section(hpo, "sampling"), "algorithm", "random")},
        "early_termination": _section(hpo, "early_termination"),
    }


def study_key_v2(
    data: Config | None,
    hpo: Config | None,
    train: Config | None,
    model: str,
    *,
    eval_cfg: Any = None,
) -> dict[str, Any]:
    """The v2 study-key payload. ``eval_cfg`` overrides the derived eval config (variants only)."""
    ev = eval_config(hpo, train) if eval_cfg is None else eval_cfg
    return _study_key_v2(data, hpo, train, model, data_fingerprint(data), eval_fingerprint(ev))


def _study_key_v2(
    data: Config | None, hpo: Config | None, train: Config | None, model: str, data_fp: str, eval_fp: str
) -> dict[str, Any]:
    """``study_key_v2`` with both fingerprints given (``compute_study_hashes`` makes each once)."""
    objective = _section(hpo, "objective")
    return {
        "schema_version": STUDY_KEY_V2_SCHEMA,
        "data": {
            "name": _get(data, "name", ""),
            "version": _get(data, "version", ""),
            "schema": _get(data, "schema", {}),
            "split_seed": _get(data, "split_seed", "default"),
            "label_mapping": _get(data, "label_mapping", {}),
            "data_fingerprint": data_fp,
        },
        "hpo": _hpo_common(
            hpo,
            {
                "metric": _get(objective, "metric", "macro-f1"),
                "direction": _get(objective, "direction", "maximize"),
            },
        ),
        "training": {
            "max_steps": _get(train, "max_steps"),
            "num_epochs": _get(train, "num_epochs"),
            "seed_policy": _get(train, "seed_policy", "default"),
        },
        "evaluation": {"eval_fingerprint": eval_fp},
        "model": normalise_model(model),
    }


def study_key_v1(
    data: Config | None,
    hpo: Config | None,
    model: str | None,
    *,
    benchmark: Config | None = None,
    schema: str = "1.0",
) -> dict[str, Any]:
    """The legacy v1 study-key payload (``model=None`` gives the family payload)."""
    if benchmark is None:
        bench: dict[str, Any] = {}
    else:
        b = _section(benchmark, "benchmarking")
        bench = {"metric": _get(b, "metric", "macro-f1"), "max_length": _get(b, "max_length", 512)}
    payload: dict[str, Any] = {
        "schema_version": schema,
        "data": {
            "name": _get(data, "name", ""),
            "version": _get(data, "version", ""),
            "local_path": str(_get(data, "local_path", "")),
            "schema": _get(data, "schema", {}),
        },
        "hpo": _hpo_common(hpo, _section(hpo, "objective")),
        "benchmark": bench,
    }
    if model is not None:
        payload["model"] = normalise_model(model)
    return payload


def hash_payload(payload: Any) -> str:
    return sha256_hex(canonical_json(payload))


def study_key_hash_v2(data: Config | None, hpo: Config | None, train: Config | None, model: str) -> str:
    return hash_payload(study_key_v2(data, hpo, train, model))


def study_key_hash_v1(
    data: Config | None,
    hpo: Config | None,
    model: str,
    *,
    benchmark: Config | None = None,
    schema: str = "1.0",
) -> str:
    return hash_payload(study_key_v1(data, hpo, model, benchmark=benchmark, schema=schema))


def study_family_hash(
    data: Config | None, hpo: Config | None, *, benchmark: Config | None = None, schema: str = "1.0"
) -> str:
    return hash_payload(study_key_v1(data, hpo, None, benchmark=benchmark, schema=schema))


def normalise_value(value: Any) -> Any:
    """One hyperparameter value as the trial key sees it (floats to 12 significant digits)."""
    if isinstance(value, float):
        return 0.0 if value == 0 else float(f"{value:.12e}")
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return value.lower().strip()
    return str(value).lower().strip()


def normalise_hyperparameters(hp: Mapping[str, Any]) -> dict[str, Any]:
    """Drop bookkeeping keys and normalise every value."""
    return {k: normalise_value(v) for k, v in hp.items() if k not in EXCLUDED_HYPERPARAMETERS}


class CanonicalHP(str):
    """Canonical JSON of normalised hyperparameters, computed once per run and reused for every anchor."""


HP = Mapping[str, Any] | CanonicalHP


def canonical_hyperparameters(hp: HP) -> CanonicalHP:
    if isinstance(hp, CanonicalHP):
        return hp
    return CanonicalHP(_flat_json(normalise_hyperparameters(hp)))


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


#: ``canonical_json``'s C encoder, made once, without the check for circular references: normalised
#: hyperparameters are one flat dict of scalars (``normalise_value``), which cannot hold itself.
#: ``JSONEncoder.encode`` makes a new encoder on every call: 5.5 µs a trial's four values, here 2.1 µs.
_FLAT_ENCODER = (
    c_make_encoder(None, _not_json, _json_str, None, ":", ",", True, False, True) if c_make_encoder else None
)


def _flat_json(values: dict[str, Any]) -> str:
    """``canonical_json(values)`` for a dict whose values are scalars (the same bytes)."""
    if _FLAT_ENCODER is None:
        return canonical_json(values)
    return "".join(_FLAT_ENCODER(values, 0))


def trial_key(study_hash: str, hp: Mapping[str, Any], *, schema: str = "2.0") -> dict[str, Any]:
    return {
        "schema_version": schema,
        "study_key_hash": study_hash,
        "hyperparameters": normalise_hyperparameters(hp),
    }


def trial_key_hash(study_hash: str, hp: HP, *, schema: str = "2.0") -> str:
    """Trial key hash anchored on ``study_hash`` (the full v2 study hash for a correct one).

    Byte-for-byte ``H(canon(trial_key(...)))``: with sorted keys the payload is the three fields in
    this order, so the hyperparameters' canonical JSON can be computed once and spliced in.
    """
    return sha256_hex(
        '{"hyperparameters":'
        + canonical_hyperparameters(hp)
        + ',"schema_version":'
        + _json_str(schema)
        + ',"study_key_hash":'
        + _json_str(study_hash)
        + "}"
    )


# --------------------------------------------------------------------------------------------
# Everything about one study's configs, computed once, and the recognisers built on it.


@dataclass(frozen=True)
class StudyHashes:
    """Every hash one set of configs can produce; the recognisers compare stored values with these."""

    model: str
    data_fingerprint: str
    eval_config: Any
    eval_fingerprint: str
    study_key: dict[str, Any]
    study_key_hash: str
    #: v1 study hash per inner schema ("1.0", "2.0").
    study_key_hash_v1: dict[str, str]
    study_family_hash: dict[str, str]
    #: the v2 study hash made with the seed's eval config (``seed-eval`` variant).
    study_key_hash_seed_eval: str
    #: every v1 study hash these configs can produce: both inner schemas, with and without the
    #: benchmark config (the pipeline passed it on some code paths and not on others).
    study_key_hash_v1_all: tuple[str, ...] = ()

    @property
    def v1_hashes(self) -> tuple[str, ...]:
        return self.study_key_hash_v1_all or tuple(self.study_key_hash_v1.values())

    def recognise_study_hash(self, stored: str | None) -> str | None:
        """Which formula made a stored study hash: ``v2``, ``v1``, ``seed-eval`` or ``unknown``."""
        if not stored:
            return None
        if stored == self.study_key_hash:
            return CAUSE_V2
        if stored in self.v1_hashes:
            return CAUSE_V1
        if stored == self.study_key_hash_seed_eval:
            return CAUSE_SEED_EVAL
        return CAUSE_UNKNOWN

    def _anchors(self) -> list[tuple[str, str]]:
        anchors: list[tuple[str, str]] = [(CAUSE_V2, self.study_key_hash)]
        anchors += [(CAUSE_V1, h) for h in self.v1_hashes]
        anchors += [(CAUSE_FOLDER8, h[:8]) for h in self.v1_hashes]
        anchors.append((CAUSE_SEED_EVAL, self.study_key_hash_seed_eval))
        return anchors

    @functools.cached_property
    def trial_formulas(self) -> tuple[tuple[str, str, str], ...]:
        """(cause, anchor, schema) in the order a stored trial hash is explained (v2, v1, folder8,
        seed-eval; each schema), every (anchor, schema) once with the first cause that names it.

        Distinct (anchor, schema) pairs make distinct trial keys, so at most one of them fits a stored
        hash: trying them in any order finds the same one (``match_trial_hash``'s ``first``)."""
        out: dict[tuple[str, str], str] = {}
        for cause, anchor in self._anchors():
            for schema in TRIAL_KEY_SCHEMAS:
                out.setdefault((anchor, schema), cause)
        return tuple((cause, anchor, schema) for (anchor, schema), cause in out.items())

    def recognise_trial_hash(self, stored: str | None, hp: HP) -> tuple[str, str | None] | None:
        """(cause, trial-key schema) of a stored trial hash; ``("unknown", None)`` when no formula fits.

        The formulas are tried in order (``trial_formulas``) and the search stops at the first fit.
        """
        return self.match_trial_hash(stored, hp)[0]

    def match_trial_hash(
        self, stored: str | None, hp: HP, *, first: int = 0
    ) -> tuple[tuple[str, str | None] | None, int]:
        """``recognise_trial_hash`` and the index of the formula that fitted (``first`` if none did);
        ``first``: the index of one to try before the others (the one that fitted the study's last
        trial: a study's trials mostly share one, so most runs cost one hash, not up to twenty)."""
        if not stored:
            return None, first
        hp = canonical_hyperparameters(hp)
        formulas = self.trial_formulas
        order = list(range(len(formulas)))
        if 0 < first < len(formulas):
            order.insert(0, order.pop(first))
        for i in order:
            cause, anchor, schema = formulas[i]
            if trial_key_hash(anchor, hp, schema=schema) == stored:
                return (cause, schema), i
        return (CAUSE_UNKNOWN, None), first


def compute_study_hashes(
    data: Config | None,
    hpo: Config | None,
    train: Config | None,
    model: str,
    *,
    benchmark: Config | None = None,
) -> StudyHashes:
    """Compute every hash of one study's configs once: each fingerprint and each distinct payload is
    hashed once (the seed-eval variant is the v2 key itself when both eval configs are one object, and
    the v1 hashes without the benchmark config are the ones already made when there is none)."""
    ev = eval_config(hpo, train)
    seed_ev = seed_eval_config(hpo, train)
    data_fp, eval_fp = data_fingerprint(data), eval_fingerprint(ev)
    key = _study_key_v2(data, hpo, train, model, data_fp, eval_fp)
    key_hash = hash_payload(key)
    if seed_ev is ev:
        seed_eval_hash = key_hash
    else:
        seed_eval_hash = hash_payload(_study_key_v2(data, hpo, train, model, data_fp, eval_fingerprint(seed_ev)))
    v1: dict[tuple[bool, str], str] = {}  # (with the benchmark config, schema) → v1 study hash
    for with_benchmark in (True, False) if benchmark is not None else (False,):
        for s in TRIAL_KEY_SCHEMAS:
            v1[(with_benchmark, s)] = study_key_hash_v1(
                data, hpo, model, benchmark=benchmark if with_benchmark else None, schema=s
            )
    with_given = benchmark is not None
    return StudyHashes(
        model=model,
        data_fingerprint=data_fp,
        eval_config=ev,
        eval_fingerprint=eval_fp,
        study_key=key,
        study_key_hash=key_hash,
        study_key_hash_v1={s: v1[(with_given, s)] for s in TRIAL_KEY_SCHEMAS},
        study_family_hash={s: study_family_hash(data, hpo, benchmark=benchmark, schema=s) for s in TRIAL_KEY_SCHEMAS},
        study_key_hash_seed_eval=seed_eval_hash,
        study_key_hash_v1_all=tuple(dict.fromkeys(v1.values())),
    )


def recognise_trial_hash_on(stored: str | None, study_hash: str, hp: HP) -> str | None:
    """The trial-key schema (``"1.0"``/``"2.0"``) if ``stored`` is a correct trial hash on ``study_hash``."""
    if not stored:
        return None
    hp = canonical_hyperparameters(hp)
    for schema in TRIAL_KEY_SCHEMAS:
        if trial_key_hash(study_hash, hp, schema=schema) == stored:
            return schema
    return None


def majority_schema(schemas: Iterable[str | None], default: str = "2.0") -> str:
    """The trial-key generation most correct hashes of a study already use (``auto``), else ``default``."""
    counts: dict[str, int] = {}
    for s in schemas:
        if s:
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return default
    best = max(counts.values())
    winners = [s for s in TRIAL_KEY_SCHEMAS if counts.get(s) == best]
    return default if default in winners else winners[0]


def hash_report(
    data: Config | None,
    hpo: Config | None,
    train: Config | None,
    model: str,
    *,
    benchmark: Config | None = None,
    hyperparameters: Iterable[Mapping[str, Any]] = (),
    trial_key_schema: str = "2.0",
) -> dict[str, Any]:
    """Everything ``hpohash hash`` prints, as the ``hpohash.hash/1`` JSON object."""
    sh = compute_study_hashes(data, hpo, train, model, benchmark=benchmark)
    trials = []
    for hp in hyperparameters:
        trials.append(
            {
                "hyperparameters": dict(hp),
                "normalised_hyperparameters": normalise_hyperparameters(hp),
                "trial_key_schema": trial_key_schema,
                "trial_key_hash": trial_key_hash(sh.study_key_hash, hp, schema=trial_key_schema),
                "trial_key_hash_by_schema": {
                    s: trial_key_hash(sh.study_key_hash, hp, schema=s) for s in TRIAL_KEY_SCHEMAS
                },
            }
        )
    return {
        "schema": "hpohash.hash/1",
        "model": normalise_model(model),
        "data_fingerprint": sh.data_fingerprint,
        "eval_fingerprint": sh.eval_fingerprint,
        "eval_config": sh.eval_config,
        "study_key": sh.study_key,
        "study_key_hash": sh.study_key_hash,
        "study_key_hash_v1": dict(sh.study_key_hash_v1),
        "study_family_hash": dict(sh.study_family_hash),
        "trials": trials,
    }
