"""Config sources on disk: a flat folder, the pipeline's config tree, and that tree's git history.

The pipeline logs no configs as run artifacts (``pipeline/README.md``): a study's configs are the
data × hpo × train (× benchmark) combination of its repository's config tree, *as it was when the
sweep ran*, so older studies only reproduce from the tree's git history. This module turns each
``--config-dir`` into candidate config sets, newest first, and finds the one that reproduces a
parent's stored hash (SPEC §4). Git is read with one ``git log`` and one ``git cat-file --batch``
process per source; nothing is checked out and the user's work tree is never touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpohash import configs as cfg
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

ROLES = ("data", "hpo", "train", "benchmark")
#: the keys of ``experiment/*.yaml`` that name one config of each role (paths relative to the tree)
EXPERIMENT_KEYS = {"data_config": "data", "hpo_config": "hpo", "train_config": "train", "benchmark_config": "benchmark"}
GIT_TIMEOUT_S = 60


class SourceError(Exception):
    """A ``--config-dir`` that cannot be used at all (missing, or a malformed file in the work tree)."""


@dataclass(frozen=True)
class ConfigFile:
    """One version of one config file; ``blob`` is its git blob id (computed for work-tree files too)."""

    role: str
    path: str
    rel: str
    blob: str
    value: Mapping[str, Any]


@dataclass(frozen=True)
class Revision:
    """Where a snapshot of the tree comes from: the work tree (``commit is None``) or one commit."""

    commit: str | None
    date: str | None

    @property
    def label(self) -> str:
        return commit_label(self.commit, self.date) if self.commit else "work tree"


def commit_label(commit: str, date: str | None) -> str:
    """``commit 67be745dfb0a (2026-01-10)``: how every output names a commit."""
    return f"commit {commit[:12]}" + (f" ({date[:10]})" if date else "")


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
    def from_dict(cls, d: Mapping[str, Any]) -> Origin:
        """The ``config_source`` JSON object back (renderers get the report, not the study)."""
        return cls(d.get("files") or {}, d.get("commit"), d.get("date"), d.get("revision") or "artifacts")

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


def describe_source(d: Mapping[str, Any] | None) -> str:
    """One line for a ``config_source`` JSON object (renderers get the report, not the study)."""
    return Origin.from_dict(d).describe() if d else "no configs"


def git_blob_id(raw: bytes) -> str:
    """Git's blob id of some bytes, so work-tree files and committed versions dedupe by one key."""
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()  # noqa: S324 - git's own id, not security


def _suffix_ok(name: str) -> bool:
    return name.lower().endswith(cfg.SUFFIXES)


def role_of(rel: str) -> str | None:
    """The role of a path relative to a config root, in the flat layout or the pipeline's tree."""
    parts = rel.split("/")
    if not _suffix_ok(parts[-1]):
        return None
    stem = parts[-1].rsplit(".", 1)[0]
    if len(parts) == 1:
        return stem if stem in ROLES else None
    if len(parts) == 2 and parts[0] in ROLES:
        return parts[0]
    if len(parts) == 2 and parts[0] == "experiment":
        return "experiment"
    return None


@dataclass
class Snapshot:
    """The config files of one revision: relative path → blob id."""

    revision: Revision
    files: dict[str, str]


class ConfigSources:
    """Every candidate config set of the given ``--config-dir`` sources, read once per command."""

    def __init__(
        self,
        dirs: Sequence[str],
        *,
        history: bool = True,
        rev: str | None = None,
    ) -> None:
        self.dirs = list(dirs)
        self.history = history
        self.rev = rev
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self._parsed: dict[str, Mapping[str, Any] | None] = {}
        self._data_fp: dict[str, str] = {}
        self._eval_fp: dict[tuple[str, str], str] = {}
        self._hashes: dict[tuple[tuple[str, str, str, str | None], str], StudyHashes] = {}
        self.candidates: list[Candidate] = []
        self.defaults: list[tuple[str, dict[str, str], dict[str, dict[str, str]]]] = []
        by_key: dict[tuple[str, str, str, str | None], Candidate] = {}
        for d in self.dirs:
            for cand in self._read_source(d):
                existing = by_key.get(cand.key)
                if existing is None:
                    by_key[cand.key] = cand
                    self.candidates.append(cand)
                else:
                    existing.revisions.extend(r for r in cand.revisions if r not in existing.revisions)

    # ------------------------------------------------------------------ reading

    def _read_source(self, directory: str) -> list[Candidate]:
        root = Path(directory)
        if not root.is_dir():
            raise SourceError(
                f"--config-dir: {directory}: " + ("not a directory" if root.exists() else "no such directory")
            )
        blobs: dict[str, bytes] = {}
        snapshots: list[Snapshot] = []
        if self.rev is None:
            snapshots.append(self._work_tree(root, blobs))
        if self.history or self.rev is not None:
            snapshots += self._git_snapshots(root, blobs)
        out: list[Candidate] = []
        for i, snap in enumerate(snapshots):
            out += self._combinations(directory, snap, blobs, work_tree=snap.revision.commit is None, first=i == 0)
        if not out:
            raise SourceError(
                f"--config-dir: {directory}: no data, hpo and train configs (data.yaml, hpo.yaml, train.yaml, "
                "or the pipeline's tree: data/*.yaml, hpo/*.yaml, train.yaml)"
            )
        return out

    def _work_tree(self, root: Path, blobs: dict[str, bytes]) -> Snapshot:
        files: dict[str, str] = {}
        # only the places a config can be (the root and its role folders): a --config-dir that is a
        # whole repository is not walked
        places = [root, *(root / d for d in (*ROLES, "experiment"))]
        paths = sorted(p for d in places if d.is_dir() for p in d.iterdir())
        for path in paths:
            rel = path.relative_to(root).as_posix()
            if not role_of(rel) or not path.is_file():
                continue
            try:
                size = path.stat().st_size
                if size > cfg.MAX_BYTES:
                    raise SourceError(f"--config-dir: {path}: larger than 1 MiB ({size} bytes)")
                raw = path.read_bytes()
            except OSError as exc:
                raise SourceError(f"--config-dir: {path}: cannot read: {exc.strerror or exc}") from exc
            blob = git_blob_id(raw)
            blobs[blob] = raw
            files[rel] = blob
        return Snapshot(Revision(None, None), files)

    def _git(self, cwd: Path, *args: str, input_: bytes | None = None) -> bytes:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env["GIT_OPTIONAL_LOCKS"] = "0"  # a read must not touch the user's index
        proc = subprocess.run(
            ["git", "-C", str(cwd), *args],
            input=input_,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            msg = " ".join(proc.stderr.decode("utf-8", "replace").split()) or f"exit {proc.returncode}"
            raise RuntimeError(msg)
        return proc.stdout

    def _git_snapshots(self, root: Path, blobs: dict[str, bytes]) -> list[Snapshot]:
        """Every first-parent commit that touched the tree, newest first, replayed from one ``git log``."""
        if shutil.which("git") is None:
            self.warnings.append(f"--config-dir {root}: git is not installed: config history not read")
            return []
        try:
            inside = self._git(root, "rev-parse", "--is-inside-work-tree").strip() == b"true"
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            inside = False
        if not inside:
            if self.rev is not None:
                raise SourceError(f"--config-rev {self.rev}: --config-dir {root} is not inside a git repository")
            return []
        try:
            prefix = self._git(root, "rev-parse", "--show-prefix").decode().strip()
            if self.rev is not None:
                commit = self._git(root, "rev-parse", "--verify", "--quiet", f"{self.rev}^{{commit}}").decode().strip()
                date = self._git(root, "show", "-s", "--format=%cI", commit).decode().strip()
                listing = self._git(root, "ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix or ".")
                state = self._parse_ls_tree(listing, prefix)
                snaps = [Snapshot(Revision(commit, date), state)]
            else:
                snaps = self._replay(root, prefix)
        except RuntimeError as exc:
            if self.rev is not None:
                raise SourceError(f"--config-rev {self.rev}: {exc}") from exc
            self.warnings.append(f"--config-dir {root}: git history not read ({exc}); using the work tree only")
            return []
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.warnings.append(f"--config-dir {root}: git history not read ({exc}); using the work tree only")
            return []
        wanted = {b for s in snaps for b in s.files.values() if b not in blobs}
        if wanted:
            try:
                blobs.update(self._cat_blobs(root, wanted))
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                self.warnings.append(f"--config-dir {root}: git history not read ({exc}); using the work tree only")
                return []
        return snaps

    @staticmethod
    def _parse_ls_tree(listing: bytes, prefix: str) -> dict[str, str]:
        state: dict[str, str] = {}
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.decode("utf-8", "replace").partition("\t")
            parts = meta.split()
            if len(parts) != 3 or parts[1] != "blob" or not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            if role_of(rel):
                state[rel] = parts[2]
        return state

    def _replay(self, root: Path, prefix: str) -> list[Snapshot]:
        """Tree state after each commit, walking back from HEAD by undoing each commit's raw diff."""
        try:
            head = self._git(root, "rev-parse", "--verify", "--quiet", "HEAD").decode().strip()
        except RuntimeError:
            return []  # a repository with no commits yet: the work tree is all there is
        listing = self._git(root, "ls-tree", "-r", "-z", "--full-tree", head, "--", prefix or ".")
        state = self._parse_ls_tree(listing, prefix)
        log = self._git(
            root,
            "log",
            "--first-parent",
            "-m",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            "--format=%x01%H %cI",
            head,
            "--",
            f":(top){prefix}",
        )
        snaps: list[Snapshot] = []
        for chunk in log.split(b"\x01")[1:]:
            header, _, rest = chunk.partition(b"\0")
            commit, _, date = header.decode("utf-8", "replace").strip().partition(" ")
            snaps.append(Snapshot(Revision(commit, date.strip()), dict(state)))
            fields = rest.split(b"\0")
            i = 0
            while i < len(fields):
                meta = fields[i].decode("utf-8", "replace").strip()
                if not meta.startswith(":"):
                    i += 1
                    continue
                path = fields[i + 1].decode("utf-8", "replace") if i + 1 < len(fields) else ""
                i += 2
                parts = meta[1:].split()
                if len(parts) < 5 or not path.startswith(prefix):
                    continue
                rel = path[len(prefix) :]
                if not role_of(rel):
                    continue
                old_blob, status = parts[2], parts[4][0]
                if status == "A":
                    state.pop(rel, None)
                else:
                    state[rel] = old_blob
        return snaps

    def _cat_blobs(self, root: Path, wanted: Iterable[str]) -> dict[str, bytes]:
        """Every wanted blob through one ``git cat-file --batch`` process (sizes checked first, so a
        huge file in the history is skipped, not read into memory)."""
        check = self._git(root, "cat-file", "--batch-check", input_=("\n".join(sorted(wanted)) + "\n").encode())
        ids = []
        for line in check.decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "blob" and int(parts[2]) <= cfg.MAX_BYTES:
                ids.append(parts[0])
            elif len(parts) == 3:
                self.skipped.append(f"blob {parts[0]}: larger than 1 MiB ({parts[2]} bytes)")
        if not ids:
            return {}
        out = self._git(root, "cat-file", "--batch", input_=("\n".join(ids) + "\n").encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        for blob in ids:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].split()
            pos = nl + 1
            if len(header) < 3 or header[1] != b"blob":
                continue
            size = int(header[2])
            blobs[blob] = out[pos : pos + size]
            pos += size + 1
        return blobs

    # ------------------------------------------------------------------ candidates

    def _value(self, blob: str, path: str, raw: bytes, *, strict: bool) -> Mapping[str, Any] | None:
        if blob not in self._parsed:
            try:
                self._parsed[blob] = cfg.parse_config(path, raw)
            except cfg.ConfigError as exc:
                self._parsed[blob] = None
                if strict:
                    raise SourceError(f"--config-dir: {exc}") from exc
                self.skipped.append(f"{path}: {exc.reason}")
        elif self._parsed[blob] is None and strict:
            try:
                cfg.parse_config(path, raw)
            except cfg.ConfigError as exc:
                raise SourceError(f"--config-dir: {exc}") from exc
        return self._parsed[blob]

    def _combinations(
        self, directory: str, snap: Snapshot, blobs: Mapping[str, bytes], *, work_tree: bool, first: bool
    ) -> list[Candidate]:
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
                named = _named_path(exp.get(key))
                if named and named not in by_role[role]:
                    f = load(named, role)
                    if f is not None:
                        by_role[role][named] = f
            stages = exp.get("stages")
            if isinstance(stages, Mapping):
                for stage in stages.values():
                    named = _named_path(stage.get("hpo_config")) if isinstance(stage, Mapping) else None
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
        out = []
        for d in by_role["data"].values():
            for hp in by_role["hpo"].values():
                for tr in by_role["train"].values():
                    for b in benches:
                        out.append(Candidate(d, hp, tr, b, display_root, [snap.revision]))
        return out

    # ------------------------------------------------------------------ discovery

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
        if not self.defaults:
            keys = {c.key[:3] for c in work}
            if len(keys) == 1:
                return work[0].config_set()
            if stage:
                raise SourceError("--stage needs an experiment/*.yaml in --config-dir")
            raise SourceError(
                f"--config-dir holds {len(keys)} data × hpo × train combinations and no experiment/*.yaml naming one: "
                "give --data/--hpo/--train"
            )
        if len(self.defaults) > 1:
            names = ", ".join(p for p, _, _ in self.defaults)
            raise SourceError(f"--config-dir holds several experiment files ({names}): give --data/--hpo/--train")
        path, chosen, stages = self.defaults[0]
        chosen = dict(chosen)
        if stage:
            if stage not in stages:
                raise SourceError(f"--stage {stage}: not a stage of {path} (stages: {', '.join(stages) or 'none'})")
            if isinstance(stages[stage].get("hpo_config"), str):
                chosen["hpo_config"] = stages[stage]["hpo_config"]
        want = {EXPERIMENT_KEYS[k]: _named_path(v) for k, v in chosen.items()}
        for c in work:
            rels = {role: f.rel for role, f in (("data", c.data), ("hpo", c.hpo), ("train", c.train)) if f}
            if c.benchmark:
                rels["benchmark"] = c.benchmark.rel
            if all(rels.get(role) == want.get(role) for role in ("data", "hpo", "train")) and (
                "benchmark" not in want or rels.get("benchmark") == want["benchmark"]
            ):
                return c.config_set()
        raise SourceError(
            f"{path}: the configs it names ({', '.join(v for v in want.values() if v)}) are not all in the tree"
        )


def _named_path(value: Any) -> str | None:
    """A path named by an experiment file, normalised relative to the tree (``./a/b.yaml`` → ``a/b.yaml``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    parts = [p for p in value.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)
