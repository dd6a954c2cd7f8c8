"""Reading a store into the study model: one paged scan of the HPO runs, config artifacts once per
study (fetched while the scan pages, over HTTP), never a ``get_run`` per run; the run-side reader
``diff`` uses; and ``build_scope``, the same model from run records already in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from hpohash import capabilities as cap
from hpohash import configs as cfg
from hpohash import sources as src
from hpohash.classify import (
    FOLD,
    HPO_STAGES,
    PARENT,
    PARENT_STAGES,
    REFIT,
    STRUCTURAL_STAGES,
    TRIAL,
    _refs,
    _stage,
    classify,
)
from hpohash.context import carried
from hpohash.errors import ArgumentError, UsageError, literal
from hpohash.records import Experiment, Keep, Reducer, RunRecord
from hpohash.study import (
    MAX_CHILD_CONFIG_LOOKUPS,
    ConfigMemo,
    MetricReader,
    Orphan,
    RawConfigs,
    Scope,
    Study,
    _resolve_configs,
    _resolve_model,
    batch_scores,
    study_folder,
)
from hpohash.tags import TagRegistry
from hpohash.tracking import DEFAULT_WORKERS_HTTP, Tracking

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


def hpo_filters(registry: TagRegistry) -> list[cap.Clause]:
    """Server-side filters that together select every run ``classify`` can give a role.

    MLflow's filter language has no OR, so: one scan for the ``hpo*`` stages (nearly every HPO run),
    and small ones for the two stages without that prefix and for ``run_type = refit``. Runs of
    other stages never get a role, so leaving them on the server changes no study. Where ``ILIKE``
    is refused, each is asked with ``=`` for the values the pipeline writes (``exact``).
    """
    stage, run_type = registry.key("stage"), registry.key("run_type")
    others = sorted(st for st in HPO_STAGES if not st.startswith("hpo"))
    prefixed = tuple(sorted(st for st in HPO_STAGES if st.startswith("hpo")))
    return [
        cap.tag(stage, "ILIKE", "hpo%", exact=prefixed),
        *(cap.tag(stage, "ILIKE", st, exact=(st,)) for st in others),
        cap.tag(run_type, "ILIKE", "refit", exact=("refit",)),
    ]


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
    max_history_mib: int = src.DEFAULT_HISTORY_MIB,
) -> Scope:
    """Read the given experiments once and build the study model.

    Only HPO runs are read (``hpo_filters``); with ``since_ms``, only the studies that have a run
    started since then, each read whole. Over HTTP, each parent's config artifacts are fetched on a
    thread pool as soon as the scan meets the parent, so the fetches overlap the remaining pages.
    """
    disk = open_sources(config_dirs, history=config_history, rev=config_rev, max_history_mib=max_history_mib)
    keep = scan_keep(registry)
    metric_reader = None
    if tracking.defers_metrics:  # one metric per study, read when ranked (Study.scores)
        keep, metric_reader = replace(keep, metrics=frozenset()), tracking.latest_metric
    reducer = Reducer(keep)
    prefetch: dict[str, Future[Any]] = {}
    pool = ThreadPoolExecutor(max_workers=DEFAULT_WORKERS_HTTP) if tracking.remote else None
    skipped: int | None = None

    def seen(run: RunRecord) -> None:
        if pool is not None and (include_deleted or not run.deleted) and _maybe_parent(run, registry):
            prefetch[run.run_id] = pool.submit(carried(tracking.fetch_configs), run)

    try:
        if parent_run_id:
            parent = tracking.get_run(parent_run_id)
            if parent.deleted and not include_deleted:
                raise ArgumentError(
                    "{} " + literal(parent_run_id) + ": the run is deleted; pass {} to check it",
                    "parent_run_id",
                    "include_deleted",
                )
            exps = tracking.resolve_experiments(experiment_names, experiment_ids)
            if not exps:
                exps = [Experiment(parent.experiment_id, tracking.experiment_name(parent.experiment_id))]
            all_runs = _scan_one_study(tracking, registry, parent, exps, progress, reducer)
        else:
            if not experiment_names and not experiment_ids:
                raise ArgumentError(
                    "give {}/-e NAME or {} ID (or {} ID)", "experiments", "experiment_ids", "parent_run_id"
                )
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
            progress=progress, skipped=skipped, metric_reader=metric_reader,
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
    metric_reader: MetricReader | None = None,
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
        metric_reader=metric_reader,
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
    metric_reader: MetricReader | None = None,
) -> Scope:
    """The study model from run records already read (no MLflow here: tests build scopes in memory).

    ``fetch`` returns a study's config artifacts (raw bytes per name); ``map_fn`` runs it over the
    studies (concurrently over HTTP); ``metric_reader``: where trials' metrics are read when the
    records were read without them (``Study.metric_reader``).
    """
    # the runs to classify: a copy only when some are left out (at 100,000 runs a copy is 5 MiB, at the
    # command's peak: every record is alive while the runs are classified)
    active = all_runs
    if not include_deleted and any(r.deleted for r in all_runs.values()):
        active = {rid: r for rid, r in all_runs.items() if not r.deleted}
    roles, study_of = classify(active, registry)
    if parent_run_id and roles.get(parent_run_id) != PARENT:
        role = roles.get(parent_run_id) or "not an HPO run"
        raise ArgumentError.on("parent_run_id", f"{parent_run_id}: not the parent run of a study (it is: {role})")
    studies: dict[str, Study] = {}
    for rid, r in roles.items():
        if r == PARENT and (parent_run_id is None or rid == parent_run_id):
            studies[rid] = Study(parent=active[rid], metric_reader=metric_reader)
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
    memo = ConfigMemo()
    for i, (s, raw) in enumerate(zip(ordered, fetched, strict=True)):
        s.folder = study_folder(s.parent, registry)
        _resolve_model(s, registry, model_override)
        _resolve_configs(s, raw, disk, registry, memo)
        if progress:
            progress("configs", i + 1, len(ordered))
    batch_scores(ordered)
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
    where: Sequence[cap.Clause] = (),
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
    filters = [(flt, *where) for flt in hpo_filters(registry)] if on_server else [tuple(where)]
    for clauses in filters:
        for run in tracking.scan(exp_ids, clauses=clauses, on_page=on_page, reducer=reducer):
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
    so there the runs are filtered here instead. ``BackendSettings.server_filter`` (the CLI's
    ``HPOHASH_SERVER_FILTER=always|never``) overrides."""
    choice = tracking.settings.server_filter
    if choice in ("always", "never"):
        return choice == "always"
    return tracking.remote


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
    recent = _scan_hpo_runs(tracking, registry, exp_ids, reducer, progress, where=(cap.started(">=", since_ms),))
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
        where=(cap.tag(registry.key("parent"), "IS NULL"), cap.started("<", since_ms)),
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
    """Runs that refits (and parents' refit records) link to but the HPO filters left on the server (a
    non-HPO run, say), so the audit still tells "not a trial/refit of this study" from "does not exist"."""
    missing = {
        link
        for run in runs.values()
        for name in ("refit_of_trial_run_id", "refit_run_id")
        if (link := registry.read(run.tags, name)) and link not in runs
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
    pid = parent.run_id  # a clause drops quotes from the value
    filters = [
        (exp_ids, cap.tag(registry.key("parent"), "=", pid)),
        (lineage_ids, cap.tag(registry.key("hpo_sweep_run_id"), "=", pid)),
    ]
    for ids, clause in filters:
        for run in tracking.scan(ids, clauses=(clause,), reducer=reducer):
            runs[run.run_id] = run
    # Folds (children of trials) are not fetched here: they are only counted, and MLflow's filter
    # language has no IN for tags. Folds that carry the lineage tag come with the second filter.
    if progress:
        progress("scan", len(runs), len(runs))
    return runs


def open_sources(
    config_dirs: Sequence[str],
    *,
    history: bool = True,
    rev: str | None = None,
    max_history_mib: int = src.DEFAULT_HISTORY_MIB,
) -> src.ConfigSources | None:
    """``--config-dir`` sources, read once for every study; a bad file in a work tree is a usage error."""
    if not config_dirs:
        if rev is not None:
            raise ArgumentError("{} needs {}", "config_rev", "config_dirs")
        return None
    return src.ConfigSources.read(config_dirs, history=history, rev=rev, max_history_mib=max_history_mib)


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
    return RunSide(run, role, study)
