"""The backfill planner: the study model in, planned tag changes and conflicts out (SPEC §5 rules 1–5).

Pure: it reads only the ``Scope`` already loaded, so ``verify`` can ask it what backfill would fix
(the ``fixable`` column) without a second read, and ``backfill --dry-run`` shows exactly what
``--yes`` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpohash.capabilities import Capabilities
from hpohash.hashing import (
    CAUSE_UNKNOWN,
    CAUSE_V1,
    CAUSE_V2,
    majority_schema,
)
from hpohash.perf import frozen_maker
from hpohash.records import RunRecord
from hpohash.rules import fixed_codes
from hpohash.study import PARENT, REFIT, TRIAL, V2_SCHEMA_TAG, Scope, Study
from hpohash.tags import TagRegistry


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """One tag to write: ``old`` is ``None`` when the tag does not exist yet."""

    run_id: str
    stage: str
    key: str
    old: str | None
    new: str
    reason: str
    #: the finding codes this change fixes on its run (HH130: on the trial it links): verify's
    #: ``fixable`` is read from here, so verify and backfill cannot disagree
    fixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conflict:
    """Something backfill will not decide alone (unknown provenance, ambiguous link, no v2 hash)."""

    run_id: str
    stage: str
    key: str | None
    current: str | None
    message: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[PlannedChange, ...]
    conflicts: tuple[Conflict, ...]


#: ``PlannedChange(...)`` without the frozen ``__init__``'s cost (``perf.frozen_maker``)
_new_change = frozen_maker(PlannedChange)


class _RunPlan:
    """Collects one run's changes; saves each replaced value under ``code.legacy.*`` once."""

    def __init__(self, run: RunRecord, stage: str, reg: TagRegistry, force: bool, conflicts: list[Conflict]):
        self.run, self.stage, self.reg, self.force, self.conflicts = run, stage, reg, force, conflicts
        self.changes: list[PlannedChange] = []

    def set(self, name: str, new: str, reason: str, *, cause: str | None = None, links_here: bool = False) -> None:
        """Plan ``name := new``; the codes it fixes come from the rule catalogue (``links_here``: a link
        to the run a ``fixed_through_link`` rule is about, HH130's champion)."""
        key = self.reg.key(name)
        current = self.reg.read(self.run.tags, name)
        if current == new and self.run.tags.get(key) == new:
            return
        if current is not None and cause == CAUSE_UNKNOWN and not self.force:
            self.conflicts.append(
                Conflict(
                    self.run.run_id,
                    self.stage,
                    key,
                    current,
                    f"{name} {current} matches no known formula (cause unknown): left alone; --force replaces it",
                )
            )
            return
        old = self.run.tags.get(key)
        if current is not None:
            legacy = self.reg.legacy_key(name)
            if legacy not in self.run.tags and current != new:
                self.changes.append(
                    _new_change(self.run.run_id, self.stage, legacy, None, current, f"keep replaced {name}")
                )
        fixes = fixed_codes(self.stage, name, links_here=links_here)
        self.changes.append(_new_change(self.run.run_id, self.stage, key, old, new, reason, fixes))


def build_plan(scope: Scope, *, trial_key_schema: str = "auto", force: bool = False) -> Plan:
    changes: list[PlannedChange] = []
    conflicts: list[Conflict] = []
    for study in scope.studies:
        _plan_study(scope, study, trial_key_schema, force, changes, conflicts)
    return Plan(tuple(changes), tuple(conflicts))


def choose_schema(study: Study, reg: TagRegistry, requested: str = "auto") -> str:
    """``auto``: the generation the study's correct trial hashes already use (majority), else 2.0."""
    if requested != "auto":
        return requested
    v2 = study.v2_hash
    if not v2:
        return "2.0"
    return study.remember(
        ("schema", v2),
        lambda: majority_schema(
            study.schema_on(reg.read(r.tags, "trial_key_hash"), v2, study.canonical_hp(r)) for r in study.trials
        ),
    )


def expected_trial_hash(study: Study, run: RunRecord, reg: TagRegistry, schema: str) -> str | None:
    """The trial hash ``run`` should carry: kept if already correct in either generation."""
    v2 = study.v2_hash
    if not v2:
        return None
    hp = study.canonical_hp(run)
    stored = reg.read(run.tags, "trial_key_hash")
    if study.schema_on(stored, v2, hp):
        return stored
    return study.trial_hash(v2, hp, schema)


def _trial_cause(study: Study, run: RunRecord, reg: TagRegistry) -> str | None:
    stored = reg.read(run.tags, "trial_key_hash")
    if not stored:
        return None
    if study.config_hashes is None:
        return CAUSE_UNKNOWN  # no configs: a stored value that is not correct cannot be explained
    return study.trial_cause(stored, study.canonical_hp(run))


def study_cause(study: Study, value: str | None, *, strict: bool = True) -> str | None:
    """Which formula made a stored study hash (``v2``, ``v1``, ``seed-eval``, ``unknown``).

    Without configs, a value that starts with the parent's ``study-<8 hex>`` folder is the early v1
    hash the folder was named after (the store's own evidence); anything else is ``unknown`` (or
    ``None`` when not ``strict``: the audit then names no cause).
    """
    if not value:
        return None
    if value == study.v2_hash or (study.config_hashes is not None and value == study.config_hashes.study_key_hash):
        return CAUSE_V2
    cause = study.config_hashes.recognise_study_hash(value) if study.config_hashes is not None else None
    if cause in (None, CAUSE_UNKNOWN) and _folder_v1(study, value):
        return CAUSE_V1
    if cause is None and strict:
        return CAUSE_UNKNOWN
    return cause


def _folder_v1(study: Study, value: str) -> bool:
    """``value`` is the v1 hash the parent's study folder was named after (and not the v2 prefix)."""
    folder = study.folder
    v2 = study.v2_hash
    if not folder:
        return False
    return value.lower().startswith(folder) and not (v2 and v2.startswith(folder))


def _study_conflict(study: Study, message: str) -> Conflict:
    """A conflict about the whole study, reported on its parent."""
    return Conflict(study.parent.run_id, PARENT, None, study.stored_hash, message)


def _plan_study(
    scope: Scope,
    study: Study,
    requested_schema: str,
    force: bool,
    changes: list[PlannedChange],
    conflicts: list[Conflict],
) -> None:
    """Rules 1–3 for one study, appended to ``changes`` and ``conflicts``."""
    reg = scope.registry
    parent = study.parent
    v2 = study.v2_hash
    if not v2:
        why = "; ".join(p.where + ": " + p.reason for p in study.config_problems) or study.config_missing
        conflicts.append(
            _study_conflict(study, f"study has no v2 hash (parent not tagged 2.0 and configs unusable: {why})")
        )
        return
    schema = choose_schema(study, reg, requested_schema)
    hashes = study.config_hashes

    # Rule 1: the parent.
    pp = _RunPlan(parent, PARENT, reg, force, conflicts)
    fingerprints: dict[str, str | None] = {
        "data_fingerprint": reg.read(parent.tags, "data_fingerprint"),
        "eval_fingerprint": reg.read(parent.tags, "eval_fingerprint"),
    }
    if not study.parent_is_v2:
        assert hashes is not None  # v2 known and parent not v2 → recomputed
        pp.set(
            "study_key_hash",
            v2,
            "parent upgraded to the recomputed v2 study hash",
            cause=study_cause(study, study.stored_hash),
        )
        if any(c.key == reg.key("study_key_hash") for c in pp.changes) or study.stored_hash == v2:
            pp.set("key_schema_version", V2_SCHEMA_TAG, "parent now carries a v2 study hash")
            recomputed = {"data_fingerprint": hashes.data_fingerprint, "eval_fingerprint": hashes.eval_fingerprint}
            for name, value in recomputed.items():
                pp.set(name, value, "fingerprint of the parent's configs")
            fingerprints = dict(recomputed)
            direction = str(study.objective.get("direction", "maximize"))
            if not reg.read(parent.tags, "objective_direction"):
                pp.set("objective_direction", direction, "objective direction from the hpo config")
    elif hashes is not None and hashes.study_key_hash == v2:
        recomputed = {"data_fingerprint": hashes.data_fingerprint, "eval_fingerprint": hashes.eval_fingerprint}
        for name, value in recomputed.items():
            pp.set(name, value, "fingerprint of the parent's configs (its v2 hash matches them)")
        fingerprints = dict(recomputed)
    changes += pp.changes

    # Rules 2 and 3: trials, then refits (only once the parent carries the v2 hash).
    if not study.parent_is_v2 and study.stored_hash != v2 and not pp.changes:
        conflicts.append(
            _study_conflict(
                study, "parent keeps its hash of unknown provenance, so its trials and refits are left alone too"
            )
        )
        return
    new_trial_hash: dict[str, str] = {}
    for run in study.trials:
        expected = expected_trial_hash(study, run, reg, schema)
        if expected:
            new_trial_hash[run.run_id] = expected
        changes += _plan_member(study, run, TRIAL, reg, force, conflicts, v2, expected, fingerprints).changes
    best = champion(study, reg)[0]
    for run in study.refits:
        target, new_link, conflict = resolve_link(study, run, reg, new_trial_hash, schema)
        expected = new_trial_hash.get(target) if target else expected_trial_hash(study, run, reg, schema)
        rp = _plan_member(study, run, REFIT, reg, force, conflicts, v2, expected, fingerprints)
        if new_link and target:
            # a link to the champion also makes the champion resolve to a refit (HH130, on that trial)
            rp.set("refit_of_trial_run_id", target, new_link, links_here=best is not None and target == best.run_id)
        if conflict:
            conflicts.append(conflict)
        changes += rp.changes


def _plan_member(
    study: Study,
    run: RunRecord,
    stage: str,
    reg: TagRegistry,
    force: bool,
    conflicts: list[Conflict],
    v2: str,
    expected_trial: str | None,
    fingerprints: dict[str, str | None],
) -> _RunPlan:
    rp = _RunPlan(run, stage, reg, force, conflicts)
    rp.set(
        "study_key_hash",
        v2,
        "re-anchored on the study's v2 hash",
        cause=study_cause(study, reg.read(run.tags, "study_key_hash")),
    )
    if expected_trial:
        rp.set(
            "trial_key_hash",
            expected_trial,
            "trial key on the study's v2 hash",
            cause=_trial_cause(study, run, reg),
        )
    study_fixed = any(c.key == reg.key("study_key_hash") for c in rp.changes)
    if stage == REFIT and study_fixed:
        # companions the pipeline writes on a refit together with its study hash; trials never carry them
        for name, value in fingerprints.items():
            if value:
                rp.set(name, value, "copied from the parent with the study hash")
        rp.set("key_schema_version", V2_SCHEMA_TAG, "copied from the parent with the study hash")
    return rp


def resolve_link(
    study: Study,
    refit: RunRecord,
    reg: TagRegistry,
    new_trial_hash: dict[str, str],
    schema: str,
) -> tuple[str | None, str | None, Conflict | None]:
    """(linked trial, reason if the link is new, conflict): rule 3, exactly one trial or nothing."""
    link = reg.read(refit.tags, "refit_of_trial_run_id")
    if link and any(t.run_id == link for t in study.trials):
        return link, None, None
    candidates = link_candidates(study, refit, reg, new_trial_hash, schema)
    for label, found in candidates:
        if len(found) == 1:
            return found[0], f"refit link: the one trial with the same {label}", None
    detail = "; ".join(f"{label}: {len(found)} trials" for label, found in candidates)
    state = f"dangling link {link}" if link else "no link"
    return (
        None,
        None,
        Conflict(
            refit.run_id,
            REFIT,
            reg.key("refit_of_trial_run_id"),
            link,
            f"refit has {state} and no single trial matches ({detail})",
        ),
    )


def link_candidates(
    study: Study, refit: RunRecord, reg: TagRegistry, new_trial_hash: dict[str, str], schema: str
) -> list[tuple[str, list[str]]]:
    """The four ways of finding a refit's trial, in SPEC order, each with the trials it yields."""
    refit_new = expected_trial_hash(study, refit, reg, schema)
    refit_old = reg.read(refit.tags, "trial_key_hash")
    refit_number = reg.read(refit.tags, "trial_number")
    refit_hp = study.canonical_hp(refit)
    trials = study.trials

    def match(pred: Any) -> list[str]:
        return [t.run_id for t in trials if pred(t)]

    out: list[tuple[str, list[str]]] = []
    out.append(("new trial hash", match(lambda t: refit_new is not None and new_trial_hash.get(t.run_id) == refit_new)))
    out.append(
        ("old trial hash", match(lambda t: refit_old is not None and reg.read(t.tags, "trial_key_hash") == refit_old))
    )
    out.append(
        ("trial number", match(lambda t: refit_number is not None and reg.read(t.tags, "trial_number") == refit_number))
    )
    out.append(("hyperparameters", match(lambda t: refit_hp != "{}" and study.canonical_hp(t) == refit_hp)))
    return out


def champion(study: Study, reg: TagRegistry) -> tuple[RunRecord | None, str, str]:
    """Best trial by the objective metric and direction: (trial, metric, direction)."""
    metric = study.objective_metric
    direction = reg.read(study.parent.tags, "objective_direction") or study.objective.get("direction") or "maximize"
    direction = str(direction).lower()
    scores = study.scores(metric)
    scored = [t for t in study.trials if t.run_id in scores]
    if not scored:
        return None, metric, direction
    sign = -1.0 if direction.startswith("min") else 1.0
    best = max(scored, key=lambda t: (sign * scores[t.run_id], -t.start_time))
    return best, metric, direction


def within_limits(plan: Plan, caps: Capabilities, tag_counts: Callable[[Sequence[str]], Mapping[str, int]]) -> Plan:
    """The plan with every run whose writes the backend would refuse held back as conflicts.

    A key or value longer than the backend takes, or more tags on a run than it keeps (Azure ML: 50),
    would be a failed write; said in the dry run instead, and never sent. A run is written whole or
    not at all (a replacement without its ``code.legacy.*`` copy would lose the old value).
    ``tag_counts`` (each run's number of tags) is asked only where the backend caps tags per run.
    """
    why: dict[str, list[tuple[PlannedChange, str]]] = {}
    for c in plan.changes:
        if caps.max_key_length is not None and len(c.key) > caps.max_key_length:
            why.setdefault(c.run_id, []).append((c, f"key longer than this backend's {caps.max_key_length} characters"))
        if caps.max_value_length is not None and len(c.new) > caps.max_value_length:
            why.setdefault(c.run_id, []).append(
                (c, f"value of {len(c.new)} characters, more than this backend's {caps.max_value_length}")
            )
    if caps.max_tags_per_run is not None:
        added: dict[str, list[PlannedChange]] = {}
        for c in plan.changes:
            if c.old is None:
                added.setdefault(c.run_id, []).append(c)
        counts = tag_counts(sorted(added)) if added else {}
        for rid, new in added.items():
            total = counts.get(rid, 0) + len(new)
            if total > caps.max_tags_per_run:
                why.setdefault(rid, []).append(
                    (new[0], f"{total} tags on the run, more than this backend keeps ({caps.max_tags_per_run})")
                )
    if not why:
        return plan
    held = {rid: sum(1 for c in plan.changes if c.run_id == rid) for rid in why}
    conflicts = tuple(
        Conflict(
            c.run_id, c.stage, c.key, c.old, f"{reason}: the run's {held[c.run_id]} planned change(s) are not written"
        )
        for reasons in why.values()
        for c, reason in reasons
    )
    return Plan(tuple(c for c in plan.changes if c.run_id not in why), plan.conflicts + conflicts)
