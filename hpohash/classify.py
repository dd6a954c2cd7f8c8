"""Telling runs apart: which run is a parent, a trial, a refit or a fold, and which study each belongs to.

Structural (SPEC §1): a refit by its stage; an explicit parent/trial/fold stage is believed; otherwise,
among runs with an HPO stage, a run whose parent is not an HPO run is a parent, a run whose parent is
a parent is a trial, and a run whose parent is a trial is a fold.
"""

from __future__ import annotations

from collections.abc import Mapping

from hpohash.records import RunRecord
from hpohash.tags import TagRegistry

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


def _first_in(refs: list[str], runs: Mapping[str, RunRecord]) -> str | None:
    """The first of ``refs`` that is a run of ``runs`` (a plain loop: a generator per run costs more)."""
    for ref in refs:
        if ref in runs:
            return ref
    return None


def _looks_like_trial(run: RunRecord, reg: TagRegistry) -> bool:
    return bool(
        reg.read(run.tags, "hpo_sweep_run_id")
        or reg.read(run.tags, "trial_number")
        or reg.read(run.tags, "trial_key_hash")
    )


class _Roles:
    """Each run's role, memoised, for ``classify``. An object rather than two nested functions calling
    each other: those would be a reference cycle holding ``runs`` (every record) until a full
    collection, and the console script freezes what a read made instead (``perf.freeze_after_pauses``)."""

    def __init__(self, runs: Mapping[str, RunRecord], reg: TagRegistry) -> None:
        self.runs, self.reg = runs, reg
        self.roles: dict[str, str] = {}
        self.visiting: set[str] = set()

    def role(self, run_id: str, refs: list[str] | None = None) -> str | None:
        """``refs``: the run's parent links when the caller has read them already."""
        roles = self.roles
        if run_id in roles:
            return roles[run_id]
        run = self.runs.get(run_id)
        if run is None or run_id in self.visiting:
            return None
        self.visiting.add(run_id)
        try:
            r = self._role(run, refs)
        finally:
            self.visiting.discard(run_id)
        if r is not None:
            roles[run_id] = r
        return r

    def _role(self, run: RunRecord, refs: list[str] | None) -> str | None:
        reg, runs = self.reg, self.runs
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
        if refs is None:
            refs = _refs(run, reg)
        if not refs:
            return PARENT
        known = [r for r in refs if r in runs]
        for ref in known:
            ref_role = self.role(ref)
            if ref_role == PARENT:
                return TRIAL
            if ref_role in (TRIAL, FOLD):
                return FOLD
        if known and not _looks_like_trial(run, reg):
            return PARENT  # nested under a non-HPO run (a pipeline's root run, say)
        if not known and not _looks_like_trial(run, reg):
            return PARENT
        return TRIAL  # names a parent that is not in scope: an orphan trial


def classify(runs: Mapping[str, RunRecord], reg: TagRegistry) -> tuple[dict[str, str], dict[str, str | None]]:
    """Role of every HPO run (parent/trial/refit/fold) and the study parent each trial/refit names."""
    memo = _Roles(runs, reg)
    roles, visiting, role = memo.roles, memo.visiting, memo.role
    study: dict[str, str | None] = {}

    for run_id in runs:
        if run_id in roles:  # met on an earlier run's chain
            continue
        # resolve the runs this one names first, deepest first: a long chain of nested HPO runs then
        # costs one memo lookup per level instead of one Python frame per level (no RecursionError)
        chain: dict[str, list[str]] = {}  # each run of the chain, with its parent links
        current: str | None = run_id
        while current is not None and current in runs and current not in roles and current not in chain:
            links = chain[current] = _refs(runs[current], reg)
            current = _first_in(links, runs)
        closing = current if current in chain else None  # the run where a ring of links closes
        if closing is not None:
            visiting.add(closing)  # as if the walk had started there: the ring ends at it
        try:
            for rid in reversed(chain):
                if rid != closing:
                    role(rid, chain[rid])
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
        refs = _refs(run, reg)
        if refs and roles.get(refs[0]) == PARENT:  # the usual case, a trial naming its parent first
            return refs[0]  # not kept in ``found``: a walk reaching this run answers the same way at once
        seen = {run.run_id}
        stack = [(run.run_id, iter(refs))]
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
