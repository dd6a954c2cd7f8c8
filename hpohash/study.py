"""The study model: runs told apart structurally, grouped into studies, with configs, model and
typed hyperparameters resolved once per study (SPEC §1, §4).

``load_scope`` is the single way every command reads an experiment: one paged scan, then config
artifacts once per study (concurrently over HTTP), never a ``get_run`` per run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hpohash import configs as cfg
from hpohash import sources as src
from hpohash.errors import UsageError
from hpohash.hashing import (
    STUDY_KEY_V2_SCHEMA,
    CanonicalHP,
    StudyHashes,
    canonical_hyperparameters,
    compute_study_hashes,
)
from hpohash.hyperparams import Recovered, recover_hyperparameters
from hpohash.tags import TagRegistry
from hpohash.tracking import (
    DEFAULT_WORKERS_HTTP,
    Experiment,
    Keep,
    Reducer,
    RunRecord,
    Tracking,
    started_filter,
    tag_filter,
)

PARENT = "parent"
TRIAL = "trial"
REFIT = "refit"
FOLD = "fold"

REFIT_STAGES = frozenset({"hpo_refit", "refit"})
PARENT_STAGES = frozenset({"hpo_sweep", "hpo_parent"})
TRIAL_STAGES = frozenset({"hpo_trial"})
FOLD_STAGES = frozenset({"hpo_trial_fold", "hpo_fold", "cv_fold"})
STRUCTURAL_STAGES = frozenset({"hpo"})
HPO_STAGES = REFIT_STAGES | PARENT_STAGES | TRIAL_STAGES | FOLD_STAGES | STRUCTURAL_STAGES
#: the parent schema tag of a v2 study hash (the v2 study key's own schema version)
V2_SCHEMA_TAG = STUDY_KEY_V2_SCHEMA
#: Children whose artifacts are tried when a parent logged no configs (refits first); bounded so a
#: study without configs costs a few artifact listings, not one per trial.
MAX_CHILD_CONFIG_LOOKUPS = 2
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
    config_source: str | None = None
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
    hashes: StudyHashes | None = None
    stored_hash: str | None = None
    schema_tag: str | None = None
    hyperparameters: dict[str, Recovered] = field(default_factory=dict)
    _hp_keys: dict[str, CanonicalHP] = field(default_factory=dict, repr=False)
    _recognised: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict, repr=False)

    @property
    def parent_is_v2(self) -> bool:
        return bool(self.stored_hash) and self.schema_tag == V2_SCHEMA_TAG

    @property
    def recomputed_hash(self) -> str | None:
        return self.hashes.study_key_hash if self.hashes else None

    @property
    def v2_hash(self) -> str | None:
        """The study's v2 hash: the parent's tag when tagged 2.0, else the recomputed one."""
        if self.parent_is_v2:
            return self.stored_hash
        return self.recomputed_hash

    @property
    def reference_hash(self) -> str | None:
        """What trials and refits are compared with (the parent's stored hash as a last resort)."""
        return self.v2_hash or self.stored_hash

    @property
    def search_space(self) -> Any:
        return self.configs.hpo.get("search_space", {}) if self.configs else {}

    @property
    def objective(self) -> Mapping[str, Any]:
        obj = self.configs.hpo.get("objective", {}) if self.configs else {}
        return obj if isinstance(obj, Mapping) else {}

    def members(self) -> list[RunRecord]:
        return [self.parent, *self.trials, *self.refits]

    def hp(self, run: RunRecord) -> dict[str, Any]:
        rec = self.hyperparameters.get(run.run_id)
        return rec.values if rec else {}

    def recognise_trial(self, stored: str | None, hp: CanonicalHP) -> tuple[str, str | None] | None:
        """(cause, schema) of a stored trial hash, memoised: plan and audit both ask for each run."""
        if not stored or self.hashes is None:
            return None
        key = (stored, hp)
        if key not in self._recognised:
            found = self.hashes.recognise_trial_hash(stored, hp)
            if found is None:
                return None
            self._recognised[key] = found
        return self._recognised[key]

    def trial_cause(self, stored: str | None, hp: CanonicalHP) -> str | None:
        """Why a stored trial hash is what it is (``v2``, ``v1``, ``folder8``, ``seed-eval``, ``unknown``)."""
        found = self.recognise_trial(stored, hp)
        return found[0] if found else None

    def hp_key(self, run: RunRecord) -> CanonicalHP:
        """The run's normalised hyperparameters as canonical JSON, computed once (hashing reuses it)."""
        key = self._hp_keys.get(run.run_id)
        if key is None:
            key = self._hp_keys[run.run_id] = canonical_hyperparameters(self.hp(run))
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


# ------------------------------------------------------------------------------ classification


def _stage(run: RunRecord, reg: TagRegistry) -> str | None:
    stage = reg.read(run.tags, "stage")
    return stage.strip().lower() if stage else None


def _refs(run: RunRecord, reg: TagRegistry) -> list[str]:
    """The runs named as this run's parent, in SPEC order: ``mlflow.parentRunId``, then lineage."""
    out = []
    for name in ("parent", "hpo_sweep_run_id"):
        value = reg.read(run.tags, name)
        if value and value not in out:
            out.append(value)
    return out


def _looks_like_trial(run: RunRecord, reg: TagRegistry) -> bool:
    return bool(
        reg.read(run.tags, "hpo_sweep_run_id")
        or reg.read(run.tags, "trial_number")
        or reg.read(run.tags, "trial_key_hash")
    )


def classify(runs: Mapping[str, RunRecord], reg: TagRegistry) -> tuple[dict[str, str], dict[str, str | None]]:
    """Role of every HPO run (parent/trial/refit/fold) and the study parent each trial/refit names."""
    roles: dict[str, str] = {}
    study: dict[str, str | None] = {}
    visiting: set[str] = set()

    def role(run_id: str) -> str | None:
        if run_id in roles:
            return roles[run_id]
        run = runs.get(run_id)
        if run is None or run_id in visiting:
            return None
        visiting.add(run_id)
        try:
            r = _role(run)
        finally:
            visiting.discard(run_id)
        if r is not None:
            roles[run_id] = r
        return r

    def _role(run: RunRecord) -> str | None:
        stage = _stage(run, reg)
        run_type = (reg.read(run.tags, "run_type") or "").strip().lower()
        if stage in REFIT_STAGES or run_type == "refit":
            return REFIT
        if stage in PARENT_STAGES:
            return PARENT
        if stage in TRIAL_STAGES:
            return TRIAL
        if stage in FOLD_STAGES:
            return FOLD
        if stage not in STRUCTURAL_STAGES:
            return None
        refs = _refs(run, reg)
        if not refs:
            return PARENT
        known = [r for r in refs if r in runs]
        for ref in known:
            ref_role = role(ref)
            if ref_role == PARENT:
                return TRIAL
            if ref_role in (TRIAL, FOLD):
                return FOLD
        if known and not _looks_like_trial(run, reg):
            return PARENT  # nested under a non-HPO run (a pipeline's root run, say)
        if not known and not _looks_like_trial(run, reg):
            return PARENT
        return TRIAL  # names a parent that is not in scope: an orphan trial

    for run_id in runs:
        # resolve the runs this one names first, deepest first: a long chain of nested HPO runs then
        # costs one memo lookup per level instead of one Python frame per level (no RecursionError)
        chain: dict[str, None] = {}
        current: str | None = run_id
        while current is not None and current in runs and current not in roles and current not in chain:
            chain[current] = None
            current = next((r for r in _refs(runs[current], reg) if r in runs), None)
        closing = current if current in chain else None  # the run where a ring of links closes
        if closing is not None:
            visiting.add(closing)  # as if the walk had started there: the ring ends at it
        try:
            for rid in reversed(chain):
                if rid != closing:
                    role(rid)
        finally:
            visiting.discard(closing or "")
        if closing is not None:
            role(closing)

    found: dict[str, str | None] = {}

    def study_parent(run: RunRecord) -> str | None:
        """Follow parent links up to a parent run; a link loop (a run naming itself) ends in None.

        Depth first, refs in SPEC order, without recursion; a run already answered is not walked
        again, so a ring of 10,000 refits naming each other costs linear time, not quadratic.
        """
        seen = {run.run_id}
        stack = [(run.run_id, iter(_refs(run, reg)))]
        answer: str | None = None
        while stack:
            ref = next(stack[-1][1], None)
            if ref is None:
                stack.pop()
                continue
            r = roles.get(ref)
            if r == PARENT or found.get(ref):
                answer = ref if r == PARENT else found[ref]
                break
            if ref in found:
                continue  # answered before: no parent that way
            if r in (TRIAL, REFIT) and ref in runs and ref not in seen:
                seen.add(ref)
                stack.append((ref, iter(_refs(runs[ref], reg))))
        if answer is None:
            found.update(dict.fromkeys(seen))  # nothing reachable from any of them either
        else:
            found.update((rid, answer) for rid, _ in stack)  # every run on the path leads there first
        return answer

    for run_id, r in roles.items():
        if r in (TRIAL, REFIT, FOLD):
            study[run_id] = study_parent(runs[run_id])
    return roles, study


# ------------------------------------------------------------------------------ loading


ProgressFn = Callable[[str, int, int | None], None]

#: Tags read outside the registry: the parent's refit link (issue 8's lineage reads it).
EXTRA_TAGS = frozenset({"code.refit_run_id"})
#: Whole tag families kept: fingerprints, and the values backfill kept when it replaced a tag.
EXTRA_TAG_PREFIXES = ("code.fingerprint.", "code.legacy.")


def scan_keep(registry: TagRegistry) -> Keep:
    """What a scan keeps of each run: the registry's keys (and their legacy keys), nothing else of
    the ~25 tags a pipeline run carries; params and metrics are kept whole (a few floats and short
    strings, stored compactly) because the search space and objective metric that say which of them
    matter come from the study's configs, which are read after the scan."""
    keys = set(registry.keys.values()) | EXTRA_TAGS
    for name in registry.keys:
        keys.add(registry.legacy_key(name))
    for legacy in registry.legacy.values():
        keys.update(legacy)
    return Keep(tags=frozenset(keys), tag_prefixes=EXTRA_TAG_PREFIXES)


def hpo_filters(registry: TagRegistry) -> list[str]:
    """Server-side filters that together select every run ``classify`` can give a role.

    MLflow's filter language has no OR, so: one scan for the ``hpo*`` stages (nearly every HPO run),
    and small ones for the two stages without that prefix and for ``run_type = refit``. Runs of
    other stages never get a role, so leaving them on the server changes no study.
    """
    stage, run_type = registry.key("stage"), registry.key("run_type")
    others = sorted(st for st in HPO_STAGES if not st.startswith("hpo"))
    return [
        tag_filter(stage, "ILIKE", "hpo%"),
        *(tag_filter(stage, "ILIKE", st) for st in others),
        tag_filter(run_type, "ILIKE", "refit"),
    ]


def _and(*clauses: str) -> str:
    return " AND ".join(c for c in clauses if c)


def _maybe_parent(run: RunRecord, reg: TagRegistry) -> bool:
    """A run that will be a study parent unless lineage says otherwise (used to start config fetches early)."""
    stage = _stage(run, reg)
    return stage in PARENT_STAGES or (stage in STRUCTURAL_STAGES and not _refs(run, reg))


def load_scope(
    tracking: Tracking,
    registry: TagRegistry,
    *,
    experiment_names: Sequence[str] = (),
    experiment_ids: Sequence[str] = (),
    parent_run_id: str | None = None,
    include_deleted: bool = False,
    config_dirs: Sequence[str] = (),
    config_history: bool = True,
    config_rev: str | None = None,
    model_override: str | None = None,
    progress: ProgressFn | None = None,
    since_ms: int | None = None,
) -> Scope:
    """Read the given experiments once and build the study model.

    Only HPO runs are read (``hpo_filters``); with ``since_ms``, only the studies that have a run
    started since then, each read whole. Over HTTP, each parent's config artifacts are fetched on a
    thread pool as soon as the scan meets the parent, so the fetches overlap the remaining pages.
    """
    disk = open_sources(config_dirs, history=config_history, rev=config_rev)
    reducer = Reducer(scan_keep(registry))
    prefetch: dict[str, Future[Any]] = {}
    pool = ThreadPoolExecutor(max_workers=DEFAULT_WORKERS_HTTP) if tracking.http else None
    skipped: int | None = None

    def seen(run: RunRecord) -> None:
        if pool is not None and (include_deleted or not run.deleted) and _maybe_parent(run, registry):
            prefetch[run.run_id] = pool.submit(tracking.fetch_configs, run)

    try:
        if parent_run_id:
            parent = tracking.get_run(parent_run_id)
            if parent.deleted and not include_deleted:
                raise UsageError(
                    f"--parent-run-id {parent_run_id}: the run is deleted; pass --include-deleted to check it"
                )
            exps = tracking.resolve_experiments(experiment_names, experiment_ids)
            if not exps:
                exps = [Experiment(parent.experiment_id, tracking.experiment_name(parent.experiment_id))]
            all_runs = _scan_one_study(tracking, registry, parent, exps, progress, reducer)
        else:
            if not experiment_names and not experiment_ids:
                raise UsageError("give --experiment-name/-e NAME or --experiment-id ID (or --parent-run-id ID)")
            exps = tracking.resolve_experiments(experiment_names, experiment_ids)
            exp_ids = [e.experiment_id for e in exps]
            if since_ms is None:
                all_runs = _scan_hpo_runs(tracking, registry, exp_ids, reducer, progress, seen)
            else:
                all_runs, skipped = _scan_recent_studies(tracking, registry, exp_ids, since_ms, reducer, progress)
            _add_link_targets(tracking, registry, all_runs, exp_ids, reducer)
        return _build_scope(
            tracking, registry, exps, all_runs, prefetch, disk,
            parent_run_id=parent_run_id, include_deleted=include_deleted, model_override=model_override,
            progress=progress, skipped=skipped,
        )  # fmt: skip
    finally:
        if pool is not None:
            for future in prefetch.values():
                future.cancel()
            pool.shutdown(wait=True)


def _build_scope(
    tracking: Tracking,
    registry: TagRegistry,
    exps: list[Experiment],
    all_runs: dict[str, RunRecord],
    prefetch: Mapping[str, Future[Any]],
    disk: src.ConfigSources | None,
    *,
    parent_run_id: str | None,
    include_deleted: bool,
    model_override: str | None,
    progress: ProgressFn | None,
    skipped: int | None,
) -> Scope:
    return build_scope(
        registry,
        exps,
        all_runs,
        tracking_uri=tracking.display_uri,
        fetch=lambda s: _fetch_study_configs(tracking, s, prefetch),
        map_fn=tracking.map_concurrent,
        disk=disk,
        parent_run_id=parent_run_id,
        include_deleted=include_deleted,
        model_override=model_override,
        progress=progress,
        skipped=skipped,
    )


def build_scope(
    registry: TagRegistry,
    exps: list[Experiment],
    all_runs: dict[str, RunRecord],
    *,
    tracking_uri: str,
    fetch: Callable[[Study], RawConfigs],
    map_fn: Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]] | None = None,
    disk: src.ConfigSources | None = None,
    parent_run_id: str | None = None,
    include_deleted: bool = False,
    model_override: str | None = None,
    progress: ProgressFn | None = None,
    skipped: int | None = None,
) -> Scope:
    """The study model from run records already read (no MLflow here: tests build scopes in memory).

    ``fetch`` returns a study's config artifacts (raw bytes per name); ``map_fn`` runs it over the
    studies (concurrently over HTTP).
    """
    active = {rid: r for rid, r in all_runs.items() if include_deleted or not r.deleted}
    roles, study_of = classify(active, registry)
    if parent_run_id and roles.get(parent_run_id) != PARENT:
        role = roles.get(parent_run_id) or "not an HPO run"
        raise UsageError(f"--parent-run-id {parent_run_id}: not the parent run of a study (it is: {role})")
    studies: dict[str, Study] = {}
    for rid, r in roles.items():
        if r == PARENT and (parent_run_id is None or rid == parent_run_id):
            studies[rid] = Study(parent=active[rid])
    orphans: list[Orphan] = []
    for rid, r in roles.items():
        if r not in (TRIAL, REFIT, FOLD):
            continue
        pid = study_of.get(rid)
        if pid in studies:
            s = studies[pid]
            if r == TRIAL:
                s.trials.append(active[rid])
            elif r == REFIT:
                s.refits.append(active[rid])
            else:
                s.folds += 1
        elif r != FOLD and (parent_run_id is None or pid == parent_run_id):
            refs = _refs(active[rid], registry)
            orphans.append(Orphan(active[rid], r, refs[0] if refs else None))
    del active, roles, study_of
    ordered = sorted(studies.values(), key=lambda s: (s.parent.start_time, s.parent.run_id))
    for s in ordered:
        s.trials.sort(key=lambda r: (r.start_time, r.run_id))
        s.refits.sort(key=lambda r: (r.start_time, r.run_id))
        s.stored_hash = registry.read(s.parent.tags, "study_key_hash")
        s.schema_tag = registry.read(s.parent.tags, "key_schema_version")

    fetched = (map_fn or (lambda fn, items: [fn(x) for x in items]))(fetch, ordered)
    for i, (s, raw) in enumerate(zip(ordered, fetched, strict=True)):
        s.folder = study_folder(s.parent, registry)
        _resolve_model(s, registry, model_override)
        _resolve_configs(s, raw, disk, registry)
        space = s.search_space
        for run in (*s.trials, *s.refits):
            s.hyperparameters[run.run_id] = recover_hyperparameters(run.params, space)
        if progress:
            progress("configs", i + 1, len(ordered))
    return Scope(
        tracking_uri=tracking_uri,
        experiments=exps,
        registry=registry,
        studies=ordered,
        orphans=orphans,
        index=all_runs,
        warnings=list(disk.warnings) if disk else [],
        skipped_studies=skipped,
    )


def _scan_hpo_runs(
    tracking: Tracking,
    registry: TagRegistry,
    exp_ids: Sequence[str],
    reducer: Reducer,
    progress: ProgressFn | None,
    seen: Callable[[RunRecord], None] | None = None,
    *,
    where: str = "",
) -> dict[str, RunRecord]:
    """Every HPO run of the experiments (and matching ``where``), server-side filtered."""
    runs: dict[str, RunRecord] = {}
    done = 0

    def on_page(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("scan", done, None)

    on_server = _filter_on_server(tracking)
    filters = [_and(flt, where) for flt in hpo_filters(registry)] if on_server else [where]
    for flt in filters:
        for run in tracking.scan(exp_ids, filter_string=flt, on_page=on_page, reducer=reducer):
            if run.run_id not in runs and _is_hpo(run, registry):
                runs[run.run_id] = run
                if seen is not None:
                    seen(run)
    return runs


def _is_hpo(run: RunRecord, reg: TagRegistry) -> bool:
    """What ``hpo_filters`` selects on the server, decided here when the scan was not filtered."""
    stage = _stage(run, reg) or ""
    return stage.startswith("hpo") or stage in HPO_STAGES or (reg.read(run.tags, "run_type") or "").lower() == "refit"


def _filter_on_server(tracking: Tracking) -> bool:
    """Over HTTP, a run the server filters out is never serialised, sent and parsed, which is most of
    its cost. On a local SQLite file the tag filter is a join that every page (LIMIT/OFFSET) repeats:
    measured at 50,000 runs, all of them HPO runs, a filtered scan took 42 s against 26 s unfiltered,
    so there the runs are filtered here instead. ``HPOHASH_SERVER_FILTER=always|never`` overrides."""
    choice = os.environ.get("HPOHASH_SERVER_FILTER", "").strip().lower()
    if choice in ("always", "never"):
        return choice == "always"
    return tracking.http


def _scan_recent_studies(
    tracking: Tracking,
    registry: TagRegistry,
    exp_ids: Sequence[str],
    since_ms: int,
    reducer: Reducer,
    progress: ProgressFn | None,
) -> tuple[dict[str, RunRecord], int]:
    """``--since``: the studies with a run started since then, each read whole; and how many were skipped.

    Recent runs name their study parent (a fold names its trial, which names the parent); each such
    parent's study is then read with the same server-side filters as ``--parent-run-id``. Old studies
    are only counted, from their parents alone (runs with no parent link, started before then).
    """
    since = started_filter(">=", since_ms)
    recent = _scan_hpo_runs(tracking, registry, exp_ids, reducer, progress, where=since)
    known = dict(recent)
    wanted = {ref for run in recent.values() for ref in _refs(run, registry)}
    for _ in range(2):  # parent links: trial → parent, fold → trial → parent
        missing = [rid for rid in wanted if rid not in known]
        if not missing:
            break
        fetched = tracking.runs_by_id(missing, experiment_ids=exp_ids, reducer=reducer)
        known.update(fetched)
        wanted = {ref for run in fetched.values() for ref in _refs(run, registry)}
    roles, study_of = classify(known, registry)
    parents = {rid for rid, r in roles.items() if r == PARENT}
    parents |= {pid for pid in study_of.values() if pid}
    all_runs: dict[str, RunRecord] = dict(recent)
    exps = [Experiment(e, e) for e in exp_ids]
    for pid in sorted(parents):
        all_runs.update(_scan_one_study(tracking, registry, known[pid], exps, None, reducer))
    old_parents = _scan_hpo_runs(
        tracking,
        registry,
        exp_ids,
        reducer,
        None,
        where=f"{tag_filter(registry.key('parent'), 'IS NULL')} AND {started_filter('<', since_ms)}",
    )
    old_roles, _ = classify(old_parents, registry)
    skipped = sum(1 for rid, r in old_roles.items() if r == PARENT and rid not in parents)
    return all_runs, skipped


def _add_link_targets(
    tracking: Tracking,
    registry: TagRegistry,
    runs: dict[str, RunRecord],
    exp_ids: Sequence[str],
    reducer: Reducer,
) -> None:
    """Runs that refits link to but the HPO filters left on the server (a non-HPO run, say), so the
    audit still tells "not a trial of this study" from "does not exist"."""
    missing = {
        link for run in runs.values() if (link := registry.read(run.tags, "refit_of_trial_run_id")) and link not in runs
    }
    if missing:
        runs.update(tracking.runs_by_id(sorted(missing), experiment_ids=exp_ids, reducer=reducer))


def _scan_one_study(
    tracking: Tracking,
    registry: TagRegistry,
    parent: RunRecord,
    exps: list[Experiment],
    progress: ProgressFn | None,
    reducer: Reducer | None = None,
) -> dict[str, RunRecord]:
    """``--parent-run-id``: server-side filters on the parent links instead of whole experiments."""
    runs = {parent.run_id: parent}
    exp_ids = sorted({e.experiment_id for e in exps} | {parent.experiment_id})
    lineage_ids = tracking.all_experiment_ids() or exp_ids
    pid = parent.run_id.replace("'", "")
    filters = [
        (exp_ids, tag_filter(registry.key("parent"), "=", pid)),
        (lineage_ids, tag_filter(registry.key("hpo_sweep_run_id"), "=", pid)),
    ]
    for ids, flt in filters:
        for run in tracking.scan(ids, filter_string=flt, reducer=reducer):
            runs[run.run_id] = run
    # Folds (children of trials) are not fetched here: they are only counted, and MLflow's filter
    # language has no IN for tags. Folds that carry the lineage tag come with the second filter.
    if progress:
        progress("scan", len(runs), len(runs))
    return runs


def open_sources(
    config_dirs: Sequence[str], *, history: bool = True, rev: str | None = None
) -> src.ConfigSources | None:
    """``--config-dir`` sources, read once for every study; a bad file in a work tree is a usage error."""
    if not config_dirs:
        if rev is not None:
            raise UsageError("--config-rev needs --config-dir")
        return None
    try:
        return src.ConfigSources(config_dirs, history=history, rev=rev)
    except src.SourceError as exc:
        raise UsageError(str(exc)) from exc


RawConfigs = list[tuple[str, dict[str, tuple[str, bytes] | cfg.ConfigError]]]


def _fetch_study_configs(
    tracking: Tracking, study: Study, prefetch: Mapping[str, Future[Any]] | None = None
) -> RawConfigs:
    """Config artifacts of the parent, then (only if it lacks some) of up to two children."""
    children = [*study.refits, *study.trials][:MAX_CHILD_CONFIG_LOOKUPS]
    return fetch_configs_from(tracking, [study.parent, *children], prefetch)


def fetch_configs_from(
    tracking: Tracking, runs: Sequence[RunRecord], prefetch: Mapping[str, Future[Any]] | None = None
) -> RawConfigs:
    """Artifacts of each run in turn until every required config has been found (a fetch the scan
    already started is awaited instead of repeated)."""
    got: RawConfigs = []
    for run in runs:
        early = prefetch.get(run.run_id) if prefetch else None
        found = early.result() if early is not None else tracking.fetch_configs(run)
        if found:
            got.append((run.run_id, found))
        if all(any(name in g for _, g in got) for name in cfg.REQUIRED):
            break
    return got


def _resolve_configs(study: Study, raw: RawConfigs, disk: src.ConfigSources | None, reg: TagRegistry) -> None:
    """Configs from the runs' artifacts; else the ``--config-dir`` candidate that reproduces the parent."""
    chosen: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
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
                    chosen[name] = cfg.parse_config(where, data)
                    sources[name] = where
                except cfg.ConfigError as exc:
                    study.config_problems.append(ConfigProblem(run_id, exc.where, exc.reason))
            break
    if study.config_problems:
        return
    missing = [n for n in cfg.REQUIRED if n not in chosen]
    if not missing:
        _use_configs(study, _config_set(chosen, sources), src.Origin(sources))
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
            study, _config_set(merged, origins), src.Origin(origins, origin.commit, origin.date, origin.revision)
        )
        return
    study.configs = cand.config_set()
    study.hashes = found.hashes
    study.config_origin = origin
    study.config_source = origin.describe()


def _config_set(found: Mapping[str, dict[str, Any]], sources: dict[str, str]) -> cfg.ConfigSet:
    return cfg.ConfigSet(
        data=found.get("data") or {},
        hpo=found.get("hpo") or {},
        train=found.get("train") or {},
        benchmark=found.get("benchmark"),
        sources=sources,
    )


def _use_configs(study: Study, configs: cfg.ConfigSet, origin: src.Origin) -> None:
    study.configs = configs
    study.config_origin = origin
    study.config_source = configs.sources.get("hpo")
    if study.model:
        study.hashes = compute_study_hashes(
            configs.data, configs.hpo, configs.train, study.model, benchmark=configs.benchmark
        )


def _resolve_model(study: Study, reg: TagRegistry, override: str | None) -> None:
    """SPEC §4 order: backbone tag (run, parent), backbone param (any trial), ``code.model``, ``--model``."""
    children = [*study.trials, *study.refits]
    backbone, model = reg.key("backbone"), reg.key("model")
    candidates: list[tuple[str | None, str]] = [(reg.read(study.parent.tags, "backbone"), f"tag:{backbone} (parent)")]
    candidates += [(reg.read(r.tags, "backbone"), f"tag:{backbone} (run {r.run_id})") for r in children]
    candidates.append((study.parent.params.get("backbone"), "param:backbone (parent)"))
    candidates += [(r.params.get("backbone"), f"param:backbone (run {r.run_id})") for r in children]
    candidates.append((reg.read(study.parent.tags, "model"), f"tag:{model} (parent; shortened name)"))
    candidates += [(reg.read(r.tags, "model"), f"tag:{model} (run {r.run_id}; shortened name)") for r in children]
    candidates.append((override, "--model"))
    for value, source in candidates:
        if value and value.strip():
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


@dataclass
class RunSide:
    """One run as ``diff`` sees it: its role, and a one-run study with its configs and model."""

    run: RunRecord
    role: str
    study: Study


def load_run_side(
    tracking: Tracking,
    registry: TagRegistry,
    run_id: str,
    *,
    sources: src.ConfigSources | None = None,
    model_override: str | None = None,
) -> RunSide:
    """A named run and its study parent (two ``get_run`` at most), configs from the run, then the parent."""
    run = tracking.get_run(run_id)
    index = {run.run_id: run}
    for ref in _refs(run, registry):
        if ref not in index:
            try:
                index[ref] = tracking.get_run(ref)
            except UsageError:
                continue
    roles, study_of = classify(index, registry)
    role = roles.get(run.run_id)
    if role is None:
        stage = _stage(run, registry)
        raise UsageError(f"run '{run_id}' is not an HPO run ({registry.key('stage')} = {stage!r})")
    if role == FOLD:
        raise UsageError(f"run '{run_id}' is a cross-validation fold: folds carry no study or trial hash")
    parent = run if role == PARENT else index.get(study_of.get(run.run_id) or "")
    study = Study(parent=parent or run)
    if role == TRIAL:
        study.trials.append(run)
    elif role == REFIT:
        study.refits.append(run)
    study.stored_hash = registry.read(study.parent.tags, "study_key_hash")
    study.schema_tag = registry.read(study.parent.tags, "key_schema_version")
    order = [run] if parent is None or parent is run else [run, parent]
    study.folder = study_folder(study.parent, registry)
    _resolve_model(study, registry, model_override)
    _resolve_configs(study, fetch_configs_from(tracking, order), sources, registry)
    if study.config_problems:
        p = study.config_problems[0]
        raise UsageError(f"config {p.where}: {p.reason}")
    if role in (TRIAL, REFIT):
        study.hyperparameters[run.run_id] = recover_hyperparameters(run.params, study.search_space)
    return RunSide(run, role, study)
