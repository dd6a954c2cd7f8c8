"""Config sources on disk: which candidate config set reproduces a parent's stored hash (SPEC §4).

The pipeline logs no configs as run artifacts (``pipeline/README.md``): a study's configs are the
data × hpo × train (× benchmark) combination of its repository's config tree, *as it was when the
sweep ran*, so older studies only reproduce from the tree's git history. Three parts, each with one
job: :mod:`hpohash.githistory` reads a tree's history without trusting the repository,
:mod:`hpohash.candidates` turns the work tree and that history into candidate config sets, newest
first, and this module discovers the candidate that reproduces a parent (and names where it came
from). Nothing is checked out and the user's work tree is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpohash import configs as cfg
from hpohash.candidates import (
    EXPERIMENT_KEYS,
    ROLES,
    Candidate,
    CandidateSet,
    ConfigFile,
    SourceError,
    named_path,
    role_of,
)
from hpohash.errors import literal
from hpohash.githistory import (
    DEFAULT_HISTORY_MIB,
    HistoryBounds,
    Revision,
    Snapshot,
    commit_label,
    git_blob_id,
)
from hpohash.hashing import (
    CAUSE_SEED_EVAL,
    CAUSE_UNKNOWN,
    CAUSE_V1,
    CAUSE_V2,
    STUDY_KEY_V2_SCHEMA,
    StudyHashes,
    compute_study_hashes,
    data_fingerprint,
    eval_config,
    eval_fingerprint,
)

__all__ = [
    "DEFAULT_HISTORY_MIB",
    "EXPERIMENT_KEYS",
    "ROLES",
    "Candidate",
    "CandidateSet",
    "ConfigFile",
    "ConfigSources",
    "Discovery",
    "Evidence",
    "HistoryBounds",
    "Origin",
    "Revision",
    "Snapshot",
    "SourceError",
    "commit_label",
    "git_blob_id",
    "role_of",
]

#: the name this module used before the split (tests and callers)
_named_path = named_path


@dataclass(frozen=True)
class Origin:
    """Where a study's configs came from, as verify's JSON ``config_source`` shows it."""

    files: Mapping[str, str]
    commit: str | None = None
    date: str | None = None
    revision: str = "artifacts"

    def as_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "commit": self.commit, "date": self.date, "files": dict(self.files)}

    def revision_label(self) -> str:
        """``work tree (as in commit …)``, ``commit … (date)`` or ``artifacts``."""
        commit = commit_label(self.commit, self.date) if self.commit else ""
        if self.revision == "work tree":
            return "work tree" + (f" (as in {commit})" if commit else "")
        return commit or self.revision

    def describe(self) -> str:
        return f"{', '.join(self.files.values())} @ {self.revision_label()}"

    @classmethod
    def of(cls, cand: Candidate, started_ms: int | None) -> Origin:
        """The work tree when it holds these files (it is searched first), with the commit that matches
        the sweep's start: the newest commit holding the same files at or before it."""
        rev = cand.revision_for(started_ms)
        in_work_tree = any(r.commit is None for r in cand.revisions)
        label = "work tree" if in_work_tree else (rev.commit or "work tree")
        return cls(cand.files(), rev.commit, rev.date, label)


@dataclass(frozen=True)
class Evidence:
    """What a parent run's own tags and params say about its configs (used to prune and to explain)."""

    stored: str | None
    schema_tag: str | None
    model: str
    data_fp: str | None = None
    eval_fp: str | None = None
    started_ms: int | None = None


@dataclass(frozen=True)
class Discovery:
    """The outcome of searching the candidates for one study."""

    candidate: Candidate | None
    hashes: StudyHashes | None
    nearest: Candidate | None = None
    explanation: str | None = None
    examined: int = 0


class ConfigSources:
    """Discovery over a :class:`CandidateSet`: fingerprints and hashes memoised per candidate, so
    each is computed once however many studies ask. :meth:`read` reads; the constructor does not."""

    def __init__(self, candidate_set: CandidateSet) -> None:
        self.set = candidate_set
        self._data_fp: dict[str, str] = {}
        self._eval_fp: dict[tuple[str, str], str] = {}
        self._hashes: dict[tuple[tuple[str, str, str, str | None], str], StudyHashes] = {}

    @classmethod
    def read(
        cls,
        dirs: Sequence[str],
        *,
        history: bool = True,
        rev: str | None = None,
        max_history_mib: int = DEFAULT_HISTORY_MIB,
    ) -> ConfigSources:
        """Every candidate config set of ``dirs`` (work trees, then git history newest first, or only
        ``rev``), reading at most ``max_history_mib`` MiB of history (see :class:`HistoryBounds`)."""
        if max_history_mib < 1:
            raise SourceError.on("max_history_mib", f"must be at least 1 (got {max_history_mib})")
        bounds = HistoryBounds.of_mib(max_history_mib)
        return cls(CandidateSet.read(dirs, history=history, rev=rev, bounds=bounds))

    @property
    def candidates(self) -> list[Candidate]:
        return self.set.candidates

    @property
    def warnings(self) -> list[str]:
        return self.set.warnings

    def _fp_data(self, f: ConfigFile) -> str:
        if f.blob not in self._data_fp:
            self._data_fp[f.blob] = data_fingerprint(f.value)
        return self._data_fp[f.blob]

    def _fp_eval(self, hpo: ConfigFile, train: ConfigFile) -> str:
        key = (hpo.blob, train.blob)
        if key not in self._eval_fp:
            self._eval_fp[key] = eval_fingerprint(eval_config(hpo.value, train.value))
        return self._eval_fp[key]

    def hashes(self, cand: Candidate, model: str) -> StudyHashes:
        key = (cand.key, model)
        if key not in self._hashes:
            self._hashes[key] = compute_study_hashes(
                cand.data.value,
                cand.hpo.value,
                cand.train.value,
                model,
                benchmark=cand.benchmark.value if cand.benchmark else None,
            )
        return self._hashes[key]

    def discover(self, ev: Evidence) -> Discovery:
        """The candidate whose hash equals the parent's stored one (v2 for a ``2.0`` parent, else any known form)."""
        if not ev.stored:
            if len({c.key[:3] for c in self.candidates}) == 1:
                cand = self.candidates[0]
                return Discovery(cand, self.hashes(cand, ev.model), examined=1)
            return Discovery(
                None,
                None,
                explanation=f"the parent has no stored study hash to pick one of {len(self.candidates)} "
                "candidate config sets",
            )
        v2_parent = ev.schema_tag == STUDY_KEY_V2_SCHEMA
        examined = 0
        pruned: list[Candidate] = []
        for cand in self.candidates:
            if ev.data_fp and self._fp_data(cand.data) != ev.data_fp:
                continue
            if ev.eval_fp and self._fp_eval(cand.hpo, cand.train) != ev.eval_fp:
                continue
            pruned.append(cand)
            examined += 1
            sh = self.hashes(cand, ev.model)
            if v2_parent:
                if sh.study_key_hash == ev.stored:
                    return Discovery(cand, sh, examined=examined)
            elif sh.recognise_study_hash(ev.stored) in (CAUSE_V2, CAUSE_V1, CAUSE_SEED_EVAL):
                return Discovery(cand, sh, examined=examined)
        return self._nearest(ev, pruned, examined)

    def _nearest(self, ev: Evidence, pruned: list[Candidate], examined: int) -> Discovery:
        """No candidate reproduces the stored hash: name the one that agrees with most of the evidence."""
        if not self.candidates:
            return Discovery(None, None, explanation="no candidate config sets", examined=examined)

        def score(c: Candidate) -> tuple[int, int]:
            s = 0
            if ev.data_fp and self._fp_data(c.data) == ev.data_fp:
                s += 1
            if ev.eval_fp and self._fp_eval(c.hpo, c.train) == ev.eval_fp:
                s += 1
            return (s, 0)

        nearest = max(self.candidates, key=score)  # max keeps the first (newest) of equal scores
        parts = []
        if ev.data_fp:
            same = self._fp_data(nearest.data) == ev.data_fp
            parts.append(f"data fingerprint {'matches' if same else 'differs'}")
        if ev.eval_fp:
            same = self._fp_eval(nearest.hpo, nearest.train) == ev.eval_fp
            parts.append(f"eval fingerprint {'matches' if same else 'differs'}")
        sh = self.hashes(nearest, ev.model)
        variant = sh.recognise_study_hash(ev.stored)
        if variant not in (None, CAUSE_UNKNOWN):
            parts.append(f"it reproduces the stored hash as {variant}, not as v2")
        else:
            parts.append(
                "so the difference is in fields the tags do not record "
                "(hpo search_space/objective/k_fold/sampling/early_termination, training, model)"
                if all("matches" in p for p in parts)
                else "the stored hash is none of its v2/v1/seed-eval hashes"
            )
        where = "candidates" if not pruned else "candidates left after pruning by the parent's fingerprint tags"
        return Discovery(
            None,
            None,
            nearest=nearest,
            explanation=f"none of {len(self.candidates)} {where} reproduces it; nearest: "
            f"{nearest.describe(ev.started_ms)} ({'; '.join(parts)})",
            examined=examined,
        )

    def default_choice(self, stage: str | None = None) -> cfg.ConfigSet:
        """What the experiment file names (``hash``): its configs, with ``stages.<stage>.hpo_config`` applied."""
        newest = self.candidates[0].revisions[0] if self.candidates else None
        work = [c for c in self.candidates if newest in c.revisions]
        if not self.set.defaults:
            keys = {c.key[:3] for c in work}
            if len(keys) == 1:
                return work[0].config_set()
            if stage:
                raise SourceError("{} needs an experiment/*.yaml in {}", "stage", "config_dirs")
            raise SourceError(
                f"{{}} holds {len(keys)} data × hpo × train combinations and no experiment/*.yaml naming one: "
                "give {}/{}/{}",
                "config_dirs",
                "data",
                "hpo",
                "train",
            )
        if len(self.set.defaults) > 1:
            names = ", ".join(p for p, _, _ in self.set.defaults)
            raise SourceError(
                "{} holds several experiment files (" + literal(names) + "): give {}/{}/{}",
                "config_dirs",
                "data",
                "hpo",
                "train",
            )
        path, chosen, stages = self.set.defaults[0]
        chosen = dict(chosen)
        if stage:
            if stage not in stages:
                raise SourceError.on("stage", f"{stage}: not a stage of {path} (stages: {', '.join(stages) or 'none'})")
            if isinstance(stages[stage].get("hpo_config"), str):
                chosen["hpo_config"] = stages[stage]["hpo_config"]
        want = {EXPERIMENT_KEYS[k]: named_path(v) for k, v in chosen.items()}
        for c in work:
            rels = {role: f.rel for role, f in (("data", c.data), ("hpo", c.hpo), ("train", c.train)) if f}
            if c.benchmark:
                rels["benchmark"] = c.benchmark.rel
            if all(rels.get(role) == want.get(role) for role in ("data", "hpo", "train")) and (
                "benchmark" not in want or rels.get("benchmark") == want["benchmark"]
            ):
                return c.config_set()
        named = ", ".join(v for v in want.values() if v)
        raise SourceError(literal(f"{path}: the configs it names ({named}) are not all in the tree"))
