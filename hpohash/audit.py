"""The audit rules: every finding HH100–HH160 of SPEC §5, with cause, expected/actual and fixable.

``fixable`` is not guessed per rule: it says whether the backfill plan for the same scope changes the
tag the finding is about, so verify and backfill can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from hpohash.hashing import CAUSE_V1, CAUSE_V2
from hpohash.perf import frozen_maker
from hpohash.plan import Conflict, Plan, champion, choose_schema, expected_trial_hash, study_cause
from hpohash.records import RunRecord
from hpohash.rules import ERROR, RULES
from hpohash.study import PARENT, REFIT, TRIAL, V2_SCHEMA_TAG, Scope, Study, output_dir_folder
from hpohash.tags import TagRegistry
from hpohash.text import shorten

if TYPE_CHECKING:
    from hpohash.forked import Ends

SEVERITY = {code: rule.severity for code, rule in RULES.items()}


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: str
    run_id: str
    stage: str
    parent_run_id: str | None
    message: str
    expected: str | None = None
    actual: str | None = None
    cause: str | None = None
    fixable: bool = False

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # pickled as its fields (``forked`` sends a second process's findings): a frozen slotted
        # dataclass's own state restore asks ``fields()`` per object, twice as slow to unpickle
        return _finding, _finding_fields(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "run_id": self.run_id,
            "stage": self.stage,
            "parent_run_id": self.parent_run_id,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "cause": self.cause,
            "fixable": self.fixable,
        }


#: a finding's fields in order, as one tuple (``Finding.__reduce__``)
_finding_fields = attrgetter(*(f.name for f in fields(Finding)))
#: ``Finding(...)`` without the frozen ``__init__``'s cost (``perf.frozen_maker``): 200,000 at 100,000 runs
_new_finding = frozen_maker(Finding)


def _finding(*fields: Any) -> Finding:
    """A finding from its fields in order: what an unpickled one is made by (pickle names a function)."""
    return _new_finding(*fields)


class FindingDicts(Sequence[dict[str, Any]]):
    """The findings as SPEC §5 dicts, each made when read: at 100,000 runs a store can have 200,000
    findings, and their dicts never need to exist all at once (the JSON renderer streams them)."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Finding]) -> None:
        self._items = items

    def findings(self) -> Sequence[Finding]:
        """The findings themselves (the JSON renderer encodes them without making the dicts)."""
        return self._items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [f.as_dict() for f in self._items[i]]
        return self._items[i].as_dict()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (f.as_dict() for f in self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


class _Collector:
    def __init__(self, plan: Plan, reg: TagRegistry) -> None:
        self.items: list[Finding] = []
        fixes: dict[str, set[str]] = {}
        for c in plan.changes:
            for code in c.fixes:
                # a finding fixed through a link (HH130, on the champion trial) is on the run linked to
                fixes.setdefault(c.new if RULES[code].fixed_through_link else c.run_id, set()).add(code)
        # one frozenset per distinct set of codes (all legacy trials share one): small at 100,000 runs
        shared: dict[frozenset[str], frozenset[str]] = {}
        self.fixes = {rid: shared.setdefault(frozenset(k), frozenset(k)) for rid, k in fixes.items()}
        self.reg = reg
        # one string per distinct message: the trials of a legacy study share theirs word for word
        self._messages: dict[str, str] = {}

    def add(
        self,
        code: str,
        run: RunRecord,
        stage: str,
        parent_id: str | None,
        message: str,
        *,
        expected: str | None = None,
        actual: str | None = None,
        cause: str | None = None,
    ) -> None:
        fixable = code in self.fixes.get(run.run_id, ())
        message = self._messages.setdefault(message, message)
        self.items.append(
            _new_finding(code, SEVERITY[code], run.run_id, stage, parent_id, message, expected, actual, cause, fixable)
        )


def audit(scope: Scope, plan: Plan) -> list[Finding]:
    out = _Collector(plan, scope.registry)
    for study in scope.studies:
        _audit_study(scope, study, out)
    for orphan in scope.orphans:
        _check_orphan(scope, orphan, out)
    return out.items


def audit_per_study(scope: Scope, tracking: Any = None, *, release: bool = False) -> list[Finding]:
    """``audit(scope, build_plan(scope))`` one study at a time: the same findings in the same order (the
    plan of a study depends on that study alone), but only one study's plan is alive at once; at
    100,000 legacy runs the whole plan is ~700,000 changes, more memory than the runs themselves.
    Each study's per-run memos are dropped once it is audited (``Study.forget``).

    With ``tracking`` (the store the scope was read from), a second process forked here audits studies
    from the first on while this one audits from the last back (``forked.Ends``), until they meet:
    the same findings in the same order, on two cores. If it fails, this process audits its studies too.

    ``release`` (verify, whose scope is read once): each study's records become stubs once it is
    audited (``Study.release``), so its findings take their memory; the scope is then not audited again.
    """
    from hpohash import forked

    studies = scope.studies
    runs = sum(map(_runs_of, studies))
    why = forked.why_not(runs) if tracking is not None else "no store"
    if why is None and len(studies) < 2:
        why = "one study"
    ends = None
    if why is None:
        try:
            ends = forked.Ends(len(studies))
        except OSError as exc:  # no shared memory to split the studies with
            why = f"cannot share the studies out: {exc.strerror or exc}"
    if why is not None and tracking is not None and runs >= forked.MIN_RUNS:
        tracking.say(f"audited in one process: {why}")
    if ends is None:
        return _audit_studies(scope, studies, release) + _audit_orphans(scope)
    theirs: list[Finding] = []
    done = 0

    def arrived(batches: Iterable[tuple[int, list[Finding]]]) -> None:
        nonlocal done
        for count, found in batches:
            theirs.extend(found)
            if release:  # audited there, let go here as their findings arrive
                for study in studies[done : done + count]:
                    study.release(scope.index)
            done += count

    try:
        work = lambda: _audit_from_front(scope, ends, release)  # noqa: E731 - run in the child
        # the child sends each batch as it is made, and this process takes what has arrived after each
        # of its own studies: it decodes their findings while the child still audits (the ends keep
        # the shares even), not all of them once its own are done
        with forked.forked(work, prepare=tracking.forked, stream=True) as child:
            mine: list[list[Finding]] = []  # from the last study back
            while (i := ends.take(front=False)) is not None:
                mine.append(_audit_studies(scope, [studies[i]], release))
                if child is not None:
                    arrived(child.ready())
            own = [f for found in reversed(mine) for f in found] + _audit_orphans(scope)
            del mine
            if child is not None:
                arrived(child.received())
        taken = ends.taken_from_front
    finally:
        ends.close()
    if child is not None and not child.ok:
        if taken:
            tracking.say(f"the second process auditing {_studies(taken)} failed after {done}: audited the rest here")
        else:
            tracking.say("the second process failed before it audited a study: audited them all here")
        theirs += _audit_studies(scope, studies[done:taken], release)
    elif child is not None:
        tracking.say(f"audited {taken} of {_studies(len(studies))} in a second process")
    return theirs + own


def _studies(n: int) -> str:
    return f"{n} study" if n == 1 else f"{n} studies"


def _audit_from_front(scope: Scope, ends: Ends, release: bool) -> Iterator[tuple[int, list[Finding]]]:
    """(number of studies, their findings) per ~``BATCH_RUNS`` runs, for the studies this (second)
    process takes from the front: what it sends."""
    count, runs, found = 0, 0, []
    while (i := ends.take(front=True)) is not None:
        study = scope.studies[i]
        found += _audit_studies(scope, [study], release)
        count += 1
        runs += _runs_of(study)
        if runs >= BATCH_RUNS:
            yield count, found
            count, runs, found = 0, 0, []
    if count:
        yield count, found


#: runs whose findings a second process sends at once (the parent frees their records as they arrive)
BATCH_RUNS = 2000


def _runs_of(study: Study) -> int:
    """The runs a study holds: its parent, trials and refits (what a batch of findings counts)."""
    return 1 + len(study.trials) + len(study.refits)


def _audit_studies(scope: Scope, studies: Sequence[Study], release: bool = False) -> list[Finding]:
    from dataclasses import replace

    from hpohash.plan import build_plan

    found: list[Finding] = []
    for study in studies:
        one = replace(scope, studies=[study], orphans=[])
        found += audit(one, build_plan(one))
        study.forget()
        if release:
            study.release(scope.index)
    return found


def _audit_orphans(scope: Scope) -> list[Finding]:
    from dataclasses import replace

    return audit(replace(scope, studies=[]), Plan((), ()))


def _audit_study(scope: Scope, study: Study, out: _Collector) -> None:
    """One study's findings, run by run in the order people read them: configs, parent, each trial,
    each refit, then the champion. Each code is detected in the one function its rule names
    (``Rule.detected_in``)."""
    _check_configs(scope, study, out)
    _check_parent(study, out)
    _check_output_dir(study, study.parent, PARENT, out)
    schema = choose_schema(study, scope.registry)
    for run in study.trials:
        _check_study_hash(study, run, TRIAL, out)
        _check_trial_hash(study, run, schema, out)
        _check_output_dir(study, run, TRIAL, out)
    trial_ids = {t.run_id for t in study.trials}
    for run in study.refits:
        _check_study_hash(study, run, REFIT, out)
        linked = _check_refit_link(scope, study, run, trial_ids, out)
        _check_refit_trial_hash(study, run, linked, schema, out)
        _check_artifact(study, run, out)
        _check_output_dir(study, run, REFIT, out)
    _check_champion(scope, study, out)


def _check_configs(scope: Scope, study: Study, out: _Collector) -> None:
    """HH140–HH143: the study's configs and model, reported on its parent (HH141 on the run that logged them)."""
    reg = scope.registry
    parent = study.parent
    pid = parent.run_id
    stored = study.stored_hash
    refit_ids = {r.run_id for r in study.refits}
    for problem in study.config_problems:
        out.add(
            "HH141",
            scope.index.get(problem.run_id, parent),
            PARENT if problem.run_id == pid else (REFIT if problem.run_id in refit_ids else TRIAL),
            pid,
            f"config {problem.where} is malformed: {problem.reason}",
        )
    if study.config_unmatched and not study.config_problems:
        out.add(
            "HH142",
            parent,
            PARENT,
            pid,
            (
                f"configs were found but none reproduces the parent's stored study hash {shorten(stored)}: "
                f"{study.config_unmatched}; trials and refits are compared with the parent's stored hash"
                if stored
                else f"configs were found but {study.config_unmatched}"
            ),
            actual=stored,
        )
    elif study.config_missing and not study.config_problems:
        out.add(
            "HH140",
            parent,
            PARENT,
            pid,
            f"configs not found: {study.config_missing}; hashes could not be recomputed"
            + ("" if study.parent_is_v2 else ", trials compared with the parent's stored hash"),
        )
    elif study.configs is not None and not study.model:
        out.add(
            "HH140",
            parent,
            PARENT,
            pid,
            f"no model: no {reg.key('backbone')} tag, backbone param or {reg.key('model')} tag; pass --model",
        )
    if study.model and (study.model_source or "").startswith(f"tag:{reg.key('model')} "):
        out.add(
            "HH143",
            parent,
            PARENT,
            pid,
            f"model '{study.model}' comes from {study.model_source}: the pipeline writes a shortened name "
            f"there, so the study key may use a longer one; set the {reg.key('backbone')} tag on the parent if it does",
        )


def _check_parent(study: Study, out: _Collector) -> None:
    """HH100–HH103: the parent's study hash, schema tag and fingerprints."""
    reg = out.reg
    parent = study.parent
    pid = parent.run_id
    hashes = study.config_hashes
    stored = study.stored_hash
    recomputed = study.recomputed_study_hash
    if not stored:
        out.add("HH100", parent, PARENT, pid, "parent has no study_key_hash", expected=recomputed)
    elif study.schema_tag != V2_SCHEMA_TAG:
        cause = hashes.recognise_study_hash(stored) if hashes else None
        tag = f"schema tag is {study.schema_tag!r}" if study.schema_tag else "schema tag is missing"
        what = {CAUSE_V2: "its hash is already v2", None: "configs unavailable to tell what its hash is"}.get(
            cause, f"its hash is {cause}"
        )
        out.add("HH101", parent, PARENT, pid, f"parent {tag}; {what}", expected=recomputed, actual=stored, cause=cause)
    elif hashes and stored != recomputed:
        cause = hashes.recognise_study_hash(stored)
        out.add(
            "HH102",
            parent,
            PARENT,
            pid,
            f"parent is tagged 2.0 but its hash differs from the v2 hash of its configs (cause {cause}); "
            "the tag stays the source of truth",
            expected=recomputed,
            actual=stored,
            cause=cause,
        )
    if hashes:
        for name, value in (
            ("data_fingerprint", hashes.data_fingerprint),
            ("eval_fingerprint", hashes.eval_fingerprint),
        ):
            current = reg.read(parent.tags, name)
            if current != value:
                state = "missing" if current is None else "differs from recomputation"
                out.add("HH103", parent, PARENT, pid, f"parent {reg.key(name)} {state}", expected=value, actual=current)


def _check_trial_hash(study: Study, run: RunRecord, schema: str, out: _Collector) -> None:
    """HH111, HH112: a trial's own trial hash."""
    reg = out.reg
    pid = study.parent.run_id
    stored_trial = reg.read(run.tags, "trial_key_hash")
    if not stored_trial:
        out.add(
            "HH111",
            run,
            TRIAL,
            pid,
            "trial has no trial_key_hash",
            expected=expected_trial_hash(study, run, reg, schema),
        )
    elif study.v2_hash and not study.schema_on(stored_trial, study.v2_hash, study.canonical_hp(run)):
        cause = _trial_cause(study, run, stored_trial)
        out.add(
            "HH112",
            run,
            TRIAL,
            pid,
            f"trial_key_hash is not the trial key of (study v2 hash, its hyperparameters) (cause {cause})"
            + _mismatch_note(study, run),
            expected=expected_trial_hash(study, run, reg, schema),
            actual=stored_trial,
            cause=cause,
        )


def _check_refit_link(
    scope: Scope, study: Study, run: RunRecord, trial_ids: set[str], out: _Collector
) -> RunRecord | None:
    """HH121, HH122: a refit's link to its trial; returns the linked trial when the link is good."""
    reg = out.reg
    pid = study.parent.run_id
    link = reg.read(run.tags, "refit_of_trial_run_id")
    linked: RunRecord | None = None
    if not link:
        out.add("HH121", run, REFIT, pid, f"refit has no {reg.key('refit_of_trial_run_id')}")
    elif link in trial_ids:
        linked = scope.index[link]
    else:
        why = _why_not(scope, link, "a trial of this study")
        out.add("HH122", run, REFIT, pid, f"refit link names run {link}, which {why}", actual=link)
    return linked


def _check_artifact(study: Study, run: RunRecord, out: _Collector) -> None:
    """HH124: a refit's checkpoint is there."""
    reg = out.reg
    pid = study.parent.run_id
    available = reg.read(run.tags, "artifact_available")
    if (available or "").strip().lower() != "true":
        out.add(
            "HH124",
            run,
            REFIT,
            pid,
            f"refit {reg.key('artifact_available')} is {available!r}, not 'true': no checkpoint to acquire",
            expected="true",
            actual=available,
        )


def _check_orphan(scope: Scope, orphan: Any, out: _Collector) -> None:
    """HH150: a trial or refit whose parent is not a study's parent in scope."""
    ref = orphan.parent_ref
    if not ref:
        where = "names no parent run"
    elif ref == orphan.run.run_id:
        where = "names itself as its parent: a lineage loop"
    elif ref in scope.index:
        where = f"names parent {ref}, which is not a study's parent run (a lineage loop or a wrong link)"
    else:
        where = f"names parent {ref}, which is not in the scanned experiments"
    out.add("HH150", orphan.run, orphan.role, ref, f"{orphan.role} {where}")


def _trial_cause(study: Study, run: RunRecord, stored: str) -> str | None:
    if study.config_hashes is None:
        return None
    return study.trial_cause(stored, study.canonical_hp(run))


def _mismatch_note(study: Study, run: RunRecord) -> str:
    rec = study.recovered(run)
    if rec.mismatches:
        return f"; params not of their search-space type: {', '.join(rec.mismatches)}"
    return ""


def _check_study_hash(study: Study, run: RunRecord, stage: str, out: _Collector) -> None:
    """HH110 (trial), HH120 (refit): the run's study hash is the one its study's members should carry."""
    code = "HH110" if stage == TRIAL else "HH120"
    ref = study.expected_member_hash
    value = out.reg.read(run.tags, "study_key_hash")
    if ref is None or value == ref:
        return
    cause = study_cause(study, value, strict=False)
    by_folder = cause == CAUSE_V1 and (study.config_hashes is None or value not in study.config_hashes.v1_hashes)
    basis = (
        "the parent's v2 tag"
        if study.parent_is_v2
        else ("the v2 hash recomputed from configs" if study.v2_hash else "the parent's stored hash")
    )
    state = "missing" if not value else f"{shorten(value)} differs from {basis}"
    why = f" (cause {cause}, by the study folder study-{study.folder})" if by_folder else f" (cause {cause})"
    out.add(
        code,
        run,
        stage,
        study.parent.run_id,
        f"{stage} study_key_hash {state}" + (why if cause else ""),
        expected=ref,
        actual=value,
        cause=cause,
    )


def _check_refit_trial_hash(
    study: Study, run: RunRecord, linked: RunRecord | None, schema: str, out: _Collector
) -> None:
    reg = out.reg
    stored = reg.read(run.tags, "trial_key_hash")
    pid = study.parent.run_id
    if linked is not None:
        expected = expected_trial_hash(study, linked, reg, schema) or reg.read(linked.tags, "trial_key_hash")
        linked_stored = reg.read(linked.tags, "trial_key_hash")
        if stored == expected and stored == linked_stored:
            return
        if stored == expected:
            return  # the trial itself is wrong: HH112/HH111 on the trial says so
        basis = f"its linked trial {linked.run_id}"
        hp = study.canonical_hp(linked)
    else:
        if not study.v2_hash:
            return
        if stored and study.schema_on(stored, study.v2_hash, study.canonical_hp(run)):
            return
        expected = expected_trial_hash(study, run, reg, schema)
        basis = "the trial key of its own hyperparameters"
        hp = study.canonical_hp(run)
    cause = None
    if stored and study.config_hashes:
        cause = study.trial_cause(stored, hp)
    state = "missing" if not stored else "differs from"
    out.add(
        "HH123",
        run,
        REFIT,
        pid,
        f"refit trial_key_hash {state} {basis}" + (f" (cause {cause})" if cause else ""),
        expected=expected,
        actual=stored,
        cause=cause,
    )


def _check_output_dir(study: Study, run: RunRecord, stage: str, out: _Collector) -> None:
    folder = output_dir_folder(out.reg.read(run.tags, "output_dir"))
    v2 = study.v2_hash
    if folder and v2 and not v2.startswith(folder):
        out.add(
            "HH160",
            run,
            stage,
            study.parent.run_id,
            f"{out.reg.key('output_dir')} names folder study-{folder}, not the v2 prefix study-{v2[:8]}",
            expected=f"study-{v2[:8]}",
            actual=f"study-{folder}",
        )


def _why_not(scope: Scope, run_id: str, what: str) -> str:
    """Why a run a link names is not the run it should be (HH122, HH125)."""
    target = scope.index.get(run_id)
    if target is None:
        return "does not exist in the scanned experiments"
    return "is deleted" if target.deleted else f"is not {what}"


def _check_champion(scope: Scope, study: Study, out: _Collector) -> None:
    reg = scope.registry
    refit_ids = {r.run_id for r in study.refits}
    named = reg.read(study.parent.tags, "refit_run_id")
    if named and named not in refit_ids:
        why = _why_not(scope, named, "a refit of this study")
        out.add(
            "HH125",
            study.parent,
            PARENT,
            study.parent.run_id,
            f"parent {reg.key('refit_run_id')} names run {named}, which {why}: the champion checkpoint cannot be found",
            actual=named,
        )
    best, metric, direction = champion(study, reg)
    if best is None:
        return
    if named and named in refit_ids:
        return  # the pipeline's own record of the study's refit (it may pick by more than the metric)
    for refit in study.refits:
        if reg.read(refit.tags, "refit_of_trial_run_id") == best.run_id:
            return
    best_hash = reg.read(best.tags, "trial_key_hash")
    if best_hash and any(reg.read(r.tags, "trial_key_hash") == best_hash for r in study.refits):
        return
    out.add(
        "HH130",
        best,
        TRIAL,
        study.parent.run_id,
        f"champion trial ({metric} {direction}: {study.scores(metric)[best.run_id]:g}) resolves to no refit run "
        "(no refit links it or shares its trial hash)",
    )


def remaining_conflicts(findings: list[Finding], plan: Plan) -> tuple[Conflict, ...]:
    """Errors the plan does not fix, as conflicts: backfill says what is left, and its exit code agrees
    with verify's (``verify`` exits 0 ⇔ ``backfill --dry-run --exit-code`` exits 0)."""
    covered = {c.run_id for c in plan.conflicts}
    out = []
    for f in findings:
        if f.severity != ERROR or f.fixable or f.run_id in covered:
            continue
        out.append(Conflict(f.run_id, f.stage, None, f.actual, f"{f.code} not fixable by backfill: {f.message}"))
    return tuple(out)
