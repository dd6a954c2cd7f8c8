"""The study model: a parent, its trials and refits, and the configs, model and typed
hyperparameters resolved once per study (SPEC §1, §4). Reading a store into it is ``loading.py``;
telling runs apart is ``classify.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from hpohash import configs as cfg
from hpohash import sources as src
from hpohash.classify import FOLD, HPO_STAGES, PARENT, REFIT, TRIAL  # noqa: F401 - the roles, named here too
from hpohash.hashing import (
    STUDY_KEY_V2_SCHEMA,
    TRIAL_KEY_SCHEMAS,
    CanonicalHP,
    StudyHashes,
    canonical_hyperparameters,
    compute_study_hashes,
    trial_key_hash,
)
from hpohash.hyperparams import Recovered, SearchSpace
from hpohash.records import Experiment, RunRecord, new_stub
from hpohash.tags import TagRegistry

#: the parent schema tag of a v2 study hash (the v2 study key's own schema version)
V2_SCHEMA_TAG = STUDY_KEY_V2_SCHEMA
#: Children whose artifacts are tried when a parent logged no configs (refits first); bounded so a
#: study without configs costs a few artifact listings, not one per trial.
MAX_CHILD_CONFIG_LOOKUPS = 2
#: reads one metric of the given runs: run id → its latest value, runs without it left out
MetricReader = Callable[[Sequence[str], str], Mapping[str, float]]
FOLDER_RE = re.compile(r"study-([0-9a-fA-F]{8})(?![0-9a-fA-F])")


@dataclass(frozen=True)
class ConfigProblem:
    """A config artifact (or file) that exists but cannot be used: HH141."""

    run_id: str
    where: str
    reason: str


@dataclass
class Study:
    """One sweep: its parent, trials, refits, and everything recomputed from its configs."""

    parent: RunRecord
    trials: list[RunRecord] = field(default_factory=list)
    refits: list[RunRecord] = field(default_factory=list)
    folds: int = 0
    configs: cfg.ConfigSet | None = None
    config_missing: str | None = None
    config_problems: list[ConfigProblem] = field(default_factory=list)
    #: where the configs came from (artifacts, a work tree, a commit): verify's ``config_source``
    config_origin: src.Origin | None = None
    #: configs were found on disk but none reproduces the parent's stored hash (HH142)
    config_unmatched: str | None = None
    #: the 8 hex of the parent's ``study-<8 hex>`` folder: the early v1 prefix, the store's own evidence
    folder: str | None = None
    model: str | None = None
    model_source: str | None = None
    #: the four study hashes: ``stored_hash`` is the parent's ``study_key_hash`` tag as stored;
    #: ``config_hashes`` everything recomputed from the study's configs (``recomputed_study_hash`` is
    #: its v2 hash); ``v2_hash`` the study's v2 hash (the parent's tag when tagged 2.0, else the
    #: recomputed one); ``expected_member_hash`` what each trial's and refit's study hash should be
    config_hashes: StudyHashes | None = None
    stored_hash: str | None = None
    schema_tag: str | None = None
    #: typed hyperparameters per run, recovered from its params when first asked for (``recovered``)
    hyperparameters: dict[str, Recovered] = field(default_factory=dict)
    _canonical_hps: dict[str, CanonicalHP] = field(default_factory=dict, repr=False)
    _recognised: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict, repr=False)
    #: trial keys hashed on this study's anchors, and the formula that explained the last trial hash
    _trial_hashes: dict[tuple[str, str, str], str] = field(default_factory=dict, repr=False)
    _last_formula: int = field(default=0, repr=False)
    #: where the objective metric of the trials is read when the scan kept no metrics (the SQL read:
    #: one metric of a study is read when it is ranked, not every metric of every run); None: the
    #: records carry their metrics
    metric_reader: MetricReader | None = field(default=None, repr=False)
    _scores: dict[str, Mapping[str, float]] = field(default_factory=dict, repr=False)
    _remembered: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def parent_is_v2(self) -> bool:
        return bool(self.stored_hash) and self.schema_tag == V2_SCHEMA_TAG

    @property
    def recomputed_study_hash(self) -> str | None:
        """The v2 study hash of the study's configs (``None`` without configs or a model)."""
        return self.config_hashes.study_key_hash if self.config_hashes else None

    @property
    def v2_hash(self) -> str | None:
        """The study's v2 hash: the parent's tag when tagged 2.0, else the recomputed one."""
        if self.parent_is_v2:
            return self.stored_hash
        return self.recomputed_study_hash

    @property
    def expected_member_hash(self) -> str | None:
        """What a trial's or refit's study hash should be: the v2 hash, else (no configs, parent not on
        2.0) the parent's stored hash as a last resort."""
        return self.v2_hash or self.stored_hash

    @property
    def search_space(self) -> Any:
        return self.configs.hpo.get("search_space", {}) if self.configs else {}

    @property
    def objective(self) -> Mapping[str, Any]:
        obj = self.configs.hpo.get("objective", {}) if self.configs else {}
        return obj if isinstance(obj, Mapping) else {}

    @property
    def objective_metric(self) -> str:
        """The metric the champion is chosen by (the hpo config's objective, else ``macro-f1``)."""
        return str(self.objective.get("metric", "macro-f1"))

    def members(self) -> list[RunRecord]:
        return [self.parent, *self.trials, *self.refits]

    def recovered(self, run: RunRecord) -> Recovered:
        """The typed hyperparameters of a trial or refit under this study's search space, recovered
        once (the parent has none)."""
        rec = self.hyperparameters.get(run.run_id)
        if rec is None:
            if run.run_id == self.parent.run_id:
                return Recovered({})
            space = self.remember(SearchSpace, lambda: SearchSpace(self.search_space))
            rec = self.hyperparameters[run.run_id] = space.recover(run.params)
        return rec

    def hp(self, run: RunRecord) -> dict[str, Any]:
        return self.recovered(run).values

    def forget(self) -> None:
        """Drop what is kept per run only to save recomputing it (typed hyperparameters, canonical
        forms, recognised trial hashes): at 100,000 runs that is ~0.6 KiB a run, and a study audited is
        not asked again. Anything asked later is recomputed, the same."""
        self.hyperparameters.clear()
        self._canonical_hps.clear()
        self._recognised.clear()
        self._trial_hashes.clear()
        self._scores.clear()
        self._remembered.clear()

    def release(self, index: dict[str, Any]) -> None:
        """Once verify has audited this study: its records become ``RunStub`` s, here and in the
        scope's ``index`` (nothing reads their tags or params again; at 100,000 runs the records are
        ~85 MiB, and the findings take their place)."""

        def stub(run: RunRecord) -> RunRecord:
            kept = new_stub(run.run_id, run.experiment_id, run.lifecycle_stage)
            if index.get(run.run_id) is run:
                index[run.run_id] = kept
            return cast(RunRecord, kept)

        self.parent = stub(self.parent)
        self.trials = [stub(r) for r in self.trials]
        self.refits = [stub(r) for r in self.refits]

    def remember(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per study and ``key`` until ``forget`` (the planner and the audit both
        ask for the study's trial-key schema, which looks at every trial)."""
        if key not in self._remembered:
            self._remembered[key] = compute()
        return self._remembered[key]

    def scores(self, metric: str) -> Mapping[str, float]:
        """Each trial's latest value of ``metric``, by run id (trials without it are absent)."""
        found = self._scores.get(metric)
        if found is None:
            if self.metric_reader is not None:
                found = self.metric_reader([t.run_id for t in self.trials], metric)
            else:
                found = {t.run_id: t.metrics[metric] for t in self.trials if metric in t.metrics}
            self._scores[metric] = found
        return found

    def trial_hash(self, anchor: str, hp: CanonicalHP, schema: str) -> str:
        """``trial_key_hash(anchor, hp, schema)``, memoised: choosing the schema, planning and auditing
        each ask for a trial's hash on the study's v2 hash (~3 SHA-256 a run saved)."""
        key = (anchor, hp, schema)
        found = self._trial_hashes.get(key)
        if found is None:
            found = self._trial_hashes[key] = trial_key_hash(anchor, hp, schema=schema)
        return found

    def schema_on(self, stored: str | None, anchor: str, hp: CanonicalHP) -> str | None:
        """``recognise_trial_hash_on`` through ``trial_hash``: the trial-key schema if ``stored`` is
        a correct trial hash on ``anchor``."""
        if not stored:
            return None
        for schema in TRIAL_KEY_SCHEMAS:
            if self.trial_hash(anchor, hp, schema) == stored:
                return schema
        return None

    def recognise_trial(self, stored: str | None, hp: CanonicalHP) -> tuple[str, str | None] | None:
        """(cause, schema) of a stored trial hash, memoised: plan and audit both ask for each run. The
        formula that explained the last one is tried first (same answer: ``match_trial_hash``)."""
        if not stored or self.config_hashes is None:
            return None
        key = (stored, hp)
        if key not in self._recognised:
            found, self._last_formula = self.config_hashes.match_trial_hash(stored, hp, first=self._last_formula)
            if found is None:
                return None
            self._recognised[key] = found
        return self._recognised[key]

    def trial_cause(self, stored: str | None, hp: CanonicalHP) -> str | None:
        """Why a stored trial hash is what it is (``v2``, ``v1``, ``folder8``, ``seed-eval``, ``unknown``)."""
        found = self.recognise_trial(stored, hp)
        return found[0] if found else None

    def canonical_hp(self, run: RunRecord) -> CanonicalHP:
        """The run's normalised hyperparameters as canonical JSON, computed once (hashing reuses it)."""
        key = self._canonical_hps.get(run.run_id)
        if key is None:
            key = self._canonical_hps[run.run_id] = canonical_hyperparameters(self.hp(run))
        return key


@dataclass(frozen=True)
class Orphan:
    """A trial or refit whose study parent is not in the scanned scope: HH150."""

    run: RunRecord
    role: str
    parent_ref: str | None


@dataclass
class Scope:
    """Everything one command read: studies, orphans, and an index of every scanned run."""

    tracking_uri: str
    experiments: list[Experiment]
    registry: TagRegistry
    studies: list[Study]
    orphans: list[Orphan]
    index: dict[str, RunRecord]
    #: one-line warnings for the user (unreadable git history, say); never a reason to stop
    warnings: list[str] = field(default_factory=list)
    #: with ``--since``: studies of the experiments not selected (None when every study was read)
    skipped_studies: int | None = None


RawConfigs = list[tuple[str, dict[str, tuple[str, bytes] | cfg.ConfigError]]]


class ConfigMemo:
    """Configs parsed, and study hashes computed, once per distinct content in one read: the studies of
    a sweep mostly log the same files. The parsed configs are shared, as ``candidates`` shares a git
    blob's, and never changed after parsing."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[bool, bytes], dict[str, Any]] = {}
        self._hashes: dict[Any, Any] = {}

    def parse(self, where: str, data: bytes) -> dict[str, Any]:
        """``parse_config(where, data)``; a malformed file raises every time, naming its own place."""
        key = (where.lower().endswith(".json"), data)
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = cfg.parse_config(where, data)
        return found

    def hashes(self, key: Any, configs: cfg.ConfigSet, model: str) -> Any:
        """``compute_study_hashes`` of ``configs`` and ``model``; ``key``: the files' contents."""
        key = (key, model)
        found = self._hashes.get(key)
        if found is None:
            found = self._hashes[key] = compute_study_hashes(
                configs.data, configs.hpo, configs.train, model, benchmark=configs.benchmark
            )
        return found


def _resolve_configs(
    study: Study, raw: RawConfigs, disk: src.ConfigSources | None, reg: TagRegistry, memo: ConfigMemo | None = None
) -> None:
    """Configs from the runs' artifacts; else the ``--config-dir`` candidate that reproduces the parent."""
    chosen: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    contents: list[tuple[str, bool, bytes]] = []
    parse = memo.parse if memo is not None else cfg.parse_config
    for name in cfg.NAMES:
        for run_id, files in raw:
            item = files.get(name)
            if item is None:
                continue
            if isinstance(item, cfg.ConfigError):
                study.config_problems.append(ConfigProblem(run_id, item.where, item.reason))
            else:
                path, data = item
                where = f"run {run_id} artifact {path}"
                try:
                    chosen[name] = parse(where, data)
                    sources[name] = where
                    contents.append((name, where.lower().endswith(".json"), data))
                except cfg.ConfigError as exc:
                    study.config_problems.append(ConfigProblem(run_id, exc.where, exc.reason))
            break
    if study.config_problems:
        return
    missing = [n for n in cfg.REQUIRED if n not in chosen]
    if not missing:
        _use_configs(study, cfg.config_set(chosen, sources), src.Origin(sources), memo, tuple(contents))
        return
    if disk is None:
        study.config_missing = (
            f"no {', '.join(missing)} config in the artifacts of run {study.parent.run_id} "
            "(or its refits/trials) and no --config-dir"
        )
        return
    if not study.model:
        study.config_missing = "no model to recompute with: no code.backbone tag, backbone param or code.model tag"
        return
    found = disk.discover(
        src.Evidence(
            stored=study.stored_hash,
            schema_tag=study.schema_tag,
            model=study.model,
            data_fp=reg.read(study.parent.tags, "data_fingerprint"),
            eval_fp=reg.read(study.parent.tags, "eval_fingerprint"),
            started_ms=study.parent.start_time or None,
        )
    )
    if found.candidate is None:
        study.config_unmatched = found.explanation
        return
    cand = found.candidate
    cand_files = cand.files()
    origin = src.Origin.of(cand, study.parent.start_time or None)
    if chosen:  # some configs were logged as artifacts: they win over the disk's
        disk_set = cand.config_set()
        merged: dict[str, Any] = {"data": disk_set.data, "hpo": disk_set.hpo, "train": disk_set.train}
        if disk_set.benchmark is not None:
            merged["benchmark"] = disk_set.benchmark
        merged.update(chosen)
        origins = {**cand_files, **sources}
        _use_configs(
            study, cfg.config_set(merged, origins), src.Origin(origins, origin.commit, origin.date, origin.revision)
        )
        return
    study.configs = cand.config_set()
    study.config_hashes = found.hashes
    study.config_origin = origin


def _use_configs(
    study: Study, configs: cfg.ConfigSet, origin: src.Origin, memo: ConfigMemo | None = None, contents: Any = None
) -> None:
    """The study's configs, and its hashes (with ``memo``: once per ``contents``, the files' bytes)."""
    study.configs = configs
    study.config_origin = origin
    if study.model:
        study.config_hashes = (
            memo.hashes(contents, configs, study.model)
            if memo is not None
            else compute_study_hashes(
                configs.data, configs.hpo, configs.train, study.model, benchmark=configs.benchmark
            )
        )


def _resolve_model(study: Study, reg: TagRegistry, override: str | None) -> None:
    """SPEC §4 order: backbone tag (run, parent), backbone param (any trial), ``code.model``, ``--model``."""
    children = [*study.trials, *study.refits]
    backbone, model = reg.key("backbone"), reg.key("model")

    def candidates() -> Iterator[tuple[str | None, Callable[[], str]]]:
        # in order, each source named only when its value is taken (one string a study, not 3 a run)
        yield reg.read(study.parent.tags, "backbone"), lambda: f"tag:{backbone} (parent)"
        for r in children:
            yield reg.read(r.tags, "backbone"), partial("tag:{} (run {})".format, backbone, r.run_id)
        yield study.parent.params.get("backbone"), lambda: "param:backbone (parent)"
        for r in children:
            yield r.params.get("backbone"), partial("param:backbone (run {})".format, r.run_id)
        yield reg.read(study.parent.tags, "model"), lambda: f"tag:{model} (parent; shortened name)"
        for r in children:
            yield reg.read(r.tags, "model"), partial("tag:{} (run {}; shortened name)".format, model, r.run_id)
        yield override, lambda: "--model"

    for value, named in candidates():
        if value and value.strip():
            source = named()
            study.model, study.model_source = value, source
            return


def study_folder(parent: RunRecord, reg: TagRegistry) -> str | None:
    """The parent's ``study-<8 hex>`` folder: ``code.output_dir``, the ``checkpoint_path`` param, the run name."""
    for value in (reg.read(parent.tags, "output_dir"), parent.params.get("checkpoint_path"), parent.name):
        folder = output_dir_folder(value)
        if folder:
            return folder
    return None


def output_dir_folder(value: str | None) -> str | None:
    """The 8 hex characters of a ``study-<8 hex>`` folder in ``code.output_dir``, lowercased."""
    if not value:
        return None
    m = FOLDER_RE.search(value)
    return m.group(1).lower() if m else None


#: trials whose objective metric one read asks for (``batch_scores``)
SCORE_BATCH = 2000


class _ScoreBatch:
    """One read of a metric for the trials of several consecutive studies, made when the first of
    them is ranked; each study keeps its own trials' values until it is forgotten, so only a batch
    or two of values is alive while the studies are audited one after another."""

    def __init__(self, reader: MetricReader, metric: str) -> None:
        self.reader, self.metric = reader, metric
        self.studies: list[Study] | None = []

    def __call__(self, run_ids: Sequence[str], metric: str) -> Mapping[str, float]:
        studies, self.studies = self.studies, None  # read once: asked again (after ``forget``), alone
        if metric != self.metric or not studies:
            return self.reader(run_ids, metric)
        found = self.reader([t.run_id for s in studies for t in s.trials], metric)
        for study in studies:
            study._scores[metric] = {t.run_id: found[t.run_id] for t in study.trials if t.run_id in found}
        return {rid: found[rid] for rid in run_ids if rid in found}


def batch_scores(studies: Sequence[Study]) -> None:
    """Studies that rank trials by a metric their records left out (``Study.metric_reader``) read it
    for up to ``SCORE_BATCH`` trials of consecutive studies at once: a read per ~20 studies, not one
    each, and never the values of every trial in the store at once."""
    batch: _ScoreBatch | None = None
    size = 0
    for study in studies:
        reader = study.metric_reader
        if reader is None or not study.trials:
            continue
        metric = study.objective_metric
        if batch is None or batch.reader is not reader or batch.metric != metric or size >= SCORE_BATCH:
            batch, size = _ScoreBatch(reader, metric), 0
        assert batch.studies is not None
        batch.studies.append(study)
        size += len(study.trials)
        study.metric_reader = batch
