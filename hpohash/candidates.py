"""The candidate config sets of ``--config-dir`` sources: every data × hpo × train (× benchmark)
combination of the work tree and of each commit in its git history, newest first.

Reading (the work tree, :mod:`hpohash.githistory`) happens in :meth:`CandidateSet.read`; the set
itself is a plain object, so a test or a caller can build one from candidates it already has.
Combinations are bounded: a tree of 200 × 200 × 25 files is a million of them per commit, so past
the bound the rest is left out with one warning naming it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpohash import configs as cfg
from hpohash.errors import ArgumentError, literal
from hpohash.githistory import NOT_A_REPOSITORY, GitError, HistoryBounds, Revision, Snapshot, git_blob_id, read_history

ROLES = ("data", "hpo", "train", "benchmark")
#: the keys of ``experiment/*.yaml`` that name one config of each role (paths relative to the tree)
EXPERIMENT_KEYS = {"data_config": "data", "hpo_config": "hpo", "train_config": "train", "benchmark_config": "benchmark"}


class SourceError(ArgumentError):
    """A ``--config-dir`` that cannot be used at all (missing, or a malformed file in the work tree).

    A template like every :class:`ArgumentError`: a library caller reads ``config_dirs``, the CLI ``--config-dir``.
    """


@dataclass(frozen=True)
class ConfigFile:
    """One version of one config file; ``blob`` is its git blob id (computed for work-tree files too)."""

    role: str
    path: str
    rel: str
    blob: str
    value: Mapping[str, Any]


@dataclass
class Candidate:
    """One data × hpo × train (× benchmark) combination and every revision in which it existed."""

    data: ConfigFile
    hpo: ConfigFile
    train: ConfigFile
    benchmark: ConfigFile | None
    root: str
    revisions: list[Revision] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.data.blob, self.hpo.blob, self.train.blob, self.benchmark.blob if self.benchmark else None)

    def files(self) -> dict[str, str]:
        out = {"data": self.data.path, "hpo": self.hpo.path, "train": self.train.path}
        if self.benchmark:
            out["benchmark"] = self.benchmark.path
        return out

    def config_set(self) -> cfg.ConfigSet:
        return cfg.ConfigSet(
            data=dict(self.data.value),
            hpo=dict(self.hpo.value),
            train=dict(self.train.value),
            benchmark=dict(self.benchmark.value) if self.benchmark else None,
            sources=self.files(),
        )

    def revision_for(self, started_ms: int | None) -> Revision:
        """The newest revision holding these files at or before the sweep's start (else the newest)."""
        if started_ms is not None:
            import datetime as dt

            for rev in self.revisions:
                if rev.commit is None or not rev.date:
                    continue
                try:
                    when = dt.datetime.fromisoformat(rev.date).timestamp() * 1000
                except ValueError:
                    continue
                if when <= started_ms:
                    return rev
        return self.revisions[0]

    def describe(self, started_ms: int | None = None) -> str:
        rev = self.revision_for(started_ms)
        names = ", ".join(self.files().values())
        return f"{names} @ {rev.label}"


def _suffix_ok(name: str) -> bool:
    return name.lower().endswith(cfg.SUFFIXES)


def _has_control(text: str) -> bool:
    """A control or format character (an escape sequence, a bidi override): never a config's name."""
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in text)


def role_of(rel: str) -> str | None:
    """The role of a path relative to a config root, in the flat layout or the pipeline's tree."""
    parts = rel.split("/")
    if not _suffix_ok(parts[-1]) or _has_control(rel):
        return None
    stem = parts[-1].rsplit(".", 1)[0]
    if len(parts) == 1:
        return stem if stem in ROLES else None
    if len(parts) == 2 and parts[0] in ROLES:
        return parts[0]
    if len(parts) == 2 and parts[0] == "experiment":
        return "experiment"
    return None


class _Keep:
    """The path filter for history and work tree, remembering names refused for control characters."""

    def __init__(self) -> None:
        self.refused: set[str] = set()

    def __call__(self, rel: str) -> bool:
        if role_of(rel):
            return True
        if _has_control(rel) and _suffix_ok(rel.split("/")[-1]):
            self.refused.add(rel)
        return False

    def warning(self, directory: str) -> str | None:
        if not self.refused:
            return None
        shown = ", ".join(ascii(n) for n in sorted(self.refused)[:3]) + (", …" if len(self.refused) > 3 else "")
        return (
            f"--config-dir {directory}: {len(self.refused)} file name(s) with control characters ignored "
            f"(not config names): {shown}"
        )


@dataclass
class CandidateSet:
    """The candidates of every source (deduplicated, newest first), the experiment files of the
    work tree (or ``--config-rev``) that ``hash`` chooses by, and one warning per thing not read."""

    candidates: list[Candidate] = field(default_factory=list)
    defaults: list[tuple[str, dict[str, str], dict[str, dict[str, str]]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def read(
        cls,
        dirs: Sequence[str],
        *,
        history: bool = True,
        rev: str | None = None,
        bounds: HistoryBounds | None = None,
    ) -> CandidateSet:
        """Read every source: its work tree (unless ``rev``), then its git history (or ``rev`` only)."""
        reader = _Reader(history=history, rev=rev, bounds=bounds or HistoryBounds())
        for d in dirs:
            reader.source(d)
        return cls(reader.candidates, reader.defaults, reader.warnings)


class _Reader:
    """One read of the sources: the parse cache and the candidate bound are shared across them."""

    def __init__(self, *, history: bool, rev: str | None, bounds: HistoryBounds) -> None:
        self.history = history
        self.rev = rev
        self.bounds = bounds
        self.warnings: list[str] = []
        self.defaults: list[tuple[str, dict[str, str], dict[str, dict[str, str]]]] = []
        self.candidates: list[Candidate] = []
        self._by_key: dict[tuple[str, str, str, str | None], Candidate] = {}
        self._parsed: dict[str, Mapping[str, Any] | None] = {}
        self._visited = 0

    def source(self, directory: str) -> None:
        root = Path(directory)
        if not root.is_dir():
            raise SourceError(
                "{}: " + literal(f"{directory}: " + ("not a directory" if root.exists() else "no such directory")),
                "config_dirs",
            )
        keep = _Keep()
        blobs: dict[str, bytes] = {}
        snapshots: list[Snapshot] = []
        if self.rev is None:
            snapshots.append(self._work_tree(root, blobs, keep))
        if self.history or self.rev is not None:
            try:
                hist = read_history(root, keep, rev=self.rev, bounds=self.bounds, have=blobs)
            except GitError as exc:
                if exc.reason == NOT_A_REPOSITORY:
                    raise SourceError(
                        "{} " + literal(f"{self.rev}") + ": {} " + literal(f"{root} is {exc.reason}"),
                        "config_rev",
                        "config_dirs",
                    ) from exc
                raise SourceError.on("config_rev", f"{self.rev}: {exc.reason}") from exc
            self.warnings += hist.warnings
            blobs.update(hist.blobs)
            snapshots += hist.snapshots
        refused = keep.warning(directory)
        if refused:
            self.warnings.append(refused)
        formed = 0
        for i, snap in enumerate(snapshots):
            for cand in self._combinations(
                directory, snap, blobs, work_tree=snap.revision.commit is None, first=i == 0
            ):
                formed += 1
                self._visited += 1
                existing = self._by_key.get(cand.key)
                if existing is not None:
                    if snap.revision not in existing.revisions:
                        existing.revisions.append(snap.revision)
                    if self._visited <= self.bounds.max_combinations:
                        continue
                elif len(self.candidates) < self.bounds.max_candidates:
                    self._by_key[cand.key] = cand
                    self.candidates.append(cand)
                    continue
                where = snap.revision.label if snap.revision.commit else "the work tree"
                what = (
                    f"{self.bounds.max_candidates:,} data × hpo × train combinations"
                    if existing is None
                    else f"{self.bounds.max_combinations:,} data × hpo × train combinations in all its commits"
                )
                self.warnings.append(
                    f"--config-dir {directory}: more than {what}: the rest (from {where} back) are not searched; "
                    f"{self.bounds.hint()}"
                )
                return
        if not formed:
            raise SourceError(
                "{}: "
                + literal(
                    f"{directory}: no data, hpo and train configs (data.yaml, hpo.yaml, train.yaml, "
                    "or the pipeline's tree: data/*.yaml, hpo/*.yaml, train.yaml)"
                ),
                "config_dirs",
            )

    def _work_tree(self, root: Path, blobs: dict[str, bytes], keep: _Keep) -> Snapshot:
        files: dict[str, str] = {}
        # only the places a config can be (the root and its role folders): a --config-dir that is a
        # whole repository is not walked
        places = [root, *(root / d for d in (*ROLES, "experiment"))]
        paths = sorted(p for d in places if d.is_dir() for p in d.iterdir())
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if not keep(rel) or not path.is_file():
                continue
            try:
                size = path.stat().st_size
                if size > cfg.MAX_BYTES:
                    raise SourceError("{}: " + literal(f"{path}: larger than 1 MiB ({size} bytes)"), "config_dirs")
                raw = path.read_bytes()
            except OSError as exc:
                reason = f"{path}: cannot read: {exc.strerror or exc}"
                raise SourceError("{}: " + literal(reason), "config_dirs") from exc
            blob = git_blob_id(raw)
            blobs[blob] = raw
            files[rel] = blob
        return Snapshot(Revision(None, None), files)

    def _value(self, blob: str, path: str, raw: bytes, *, strict: bool) -> Mapping[str, Any] | None:
        if blob not in self._parsed:
            try:
                self._parsed[blob] = cfg.parse_config(path, raw)
            except cfg.ConfigError as exc:
                self._parsed[blob] = None
                if strict:
                    raise SourceError("{}: " + literal(str(exc)), "config_dirs") from exc
        elif self._parsed[blob] is None and strict:
            try:
                cfg.parse_config(path, raw)
            except cfg.ConfigError as exc:
                raise SourceError("{}: " + literal(str(exc)), "config_dirs") from exc
        return self._parsed[blob]

    def _combinations(
        self, directory: str, snap: Snapshot, blobs: Mapping[str, bytes], *, work_tree: bool, first: bool
    ) -> Iterator[Candidate]:
        """The snapshot's combinations, lazily: the caller stops at the bound, so a million are never built."""
        display_root = directory.rstrip("/") or "."
        by_role: dict[str, dict[str, ConfigFile]] = {r: {} for r in ROLES}
        experiments: list[tuple[str, Mapping[str, Any]]] = []

        def load(rel: str, role: str) -> ConfigFile | None:
            blob = snap.files.get(rel)
            if blob is None or blob not in blobs:
                return None
            path = f"{display_root}/{rel}"
            value = self._value(blob, path, blobs[blob], strict=work_tree)
            return None if value is None else ConfigFile(role, path, rel, blob, value)

        for rel in sorted(snap.files):
            role = role_of(rel)
            if role == "experiment":
                f = load(rel, "experiment")
                if f is not None:
                    experiments.append((rel, f.value))
            elif role:
                f = load(rel, role)
                if f is not None:
                    by_role[role][rel] = f
        for _rel, exp in experiments:
            for key, role in EXPERIMENT_KEYS.items():
                named = named_path(exp.get(key))
                if named and named not in by_role[role]:
                    f = load(named, role)
                    if f is not None:
                        by_role[role][named] = f
            stages = exp.get("stages")
            if isinstance(stages, Mapping):
                for stage in stages.values():
                    named = named_path(stage.get("hpo_config")) if isinstance(stage, Mapping) else None
                    if named and named not in by_role["hpo"]:
                        f = load(named, "hpo")
                        if f is not None:
                            by_role["hpo"][named] = f
        if first:  # the experiment files of the work tree (or of --config-rev): what ``hash`` uses
            for rel, exp in experiments:
                chosen = {k: v for k, v in exp.items() if k in EXPERIMENT_KEYS and isinstance(v, str)}
                stages = exp.get("stages")
                per_stage = (
                    {str(k): dict(v) for k, v in stages.items() if isinstance(v, Mapping)}
                    if isinstance(stages, Mapping)
                    else {}
                )
                self.defaults.append((f"{display_root}/{rel}", chosen, per_stage))
        benches: list[ConfigFile | None] = list(by_role["benchmark"].values()) or [None]
        for d in by_role["data"].values():
            for hp in by_role["hpo"].values():
                for tr in by_role["train"].values():
                    for b in benches:
                        yield Candidate(d, hp, tr, b, display_root, [snap.revision])


def named_path(value: Any) -> str | None:
    """A path named by an experiment file, normalised relative to the tree (``./a/b.yaml`` → ``a/b.yaml``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    parts = [p for p in value.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)
