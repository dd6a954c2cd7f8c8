"""A config tree's git history, read without trusting the repository or the user's git settings.

``--config-dir`` may sit in a repository someone else prepared, and ``hpohash verify`` runs in CI on
whatever was checked out. So every git call goes through :func:`run_git`, which gives git a fixed
environment (no user or system config, no lazy fetch, no transport, no pager, no prompts) and
overrides each repository setting that could run a command (signature programs, ``core.sshCommand``
via a transport, fsmonitor, hooks) or change what ``log``/``cat-file`` print (``diff.relative``,
``log.follow``, ``log.showRoot``, the log encoding, colour). Output is read only in NUL-separated
machine formats and parsed by position, so a file name cannot pass for a commit header.

Reading is bounded: the bytes of blobs read and the file versions replayed stop at a
:class:`HistoryBounds`; past it, older history is left out with one warning that says so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hpohash.text import one_line

GIT_TIMEOUT_S = 60
#: the default of ``--max-history-mib``: memory a config tree's history may take (blob bytes read;
#: the same number × 1,024 bounds file versions replayed, × 64 candidate config sets formed, since
#: discovery hashes each candidate once, about a millisecond each)
DEFAULT_HISTORY_MIB = 64
#: a single config file larger than this is never read (the work tree refuses it too)
MAX_BLOB_BYTES = 1024 * 1024
BOUND_OPTION = "--max-history-mib"

#: repository (and any leftover) settings overridden on every call: ``-c`` beats the repository's config
_OVERRIDES = (
    # nothing that runs a command
    "core.fsmonitor=false",
    f"core.hooksPath={os.devnull}",
    "core.pager=cat",
    "core.askPass=",
    "credential.helper=",
    "diff.external=",
    "log.showSignature=false",
    "protocol.allow=never",
    *(f"protocol.{p}.allow=never" for p in ("ext", "file", "git", "ssh", "http", "https", "ftp", "ftps")),
    "safe.bareRepository=explicit",
    # nothing that changes what log / ls-tree / cat-file print
    "diff.relative=false",
    "diff.renames=false",
    "diff.noprefix=false",
    "log.follow=false",
    "log.showRoot=true",
    "log.decorate=false",
    "log.mailmap=false",
    "i18n.logOutputEncoding=UTF-8",
    "color.ui=false",
    "core.quotePath=true",
)


class GitError(Exception):
    """A git call failed; ``reason`` is git's own message on one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


NOT_A_REPOSITORY = "not inside a git repository"


class OutputBound(Exception):
    """Git printed more than the caller's bound; the process was stopped. ``partial`` is what it had
    printed by then."""

    def __init__(self, bound: int, partial: bytes) -> None:
        super().__init__(f"git printed more than {bound:,} bytes")
        self.partial = partial


def _protected_settings() -> list[str]:
    """The user's ``safe.directory`` entries: the one setting of theirs a read must keep, passed as
    ``-c`` because their config files are otherwise not read (and git takes it only from there).
    Looked up for every call, from the filesystem root so that no repository's config is read."""
    try:
        found = run_git(Path(os.path.abspath(os.sep)), "config", "--get-all", "safe.directory", _user=True)
    except GitError:
        return []
    return [f"safe.directory={v}" for v in found.decode("utf-8", "surrogateescape").splitlines() if v]


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "LC_", "LANG")) and k != "PAGER"}
    env.update(LC_ALL="C", LANG="C")
    return env


def git_env(*, user_config: bool = False) -> dict[str, str]:
    """The environment of every git call: the user's and system config unread (unless
    ``user_config``, to read their ``safe.directory``), no lazy fetch, no transport, no prompts, no
    pager, no replace refs, no index lock."""
    env = _base_env()
    if user_config:
        env.update({k: v for k, v in os.environ.items() if k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")})
    else:
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    env.update(
        GIT_ATTR_NOSYSTEM="1",
        GIT_NO_LAZY_FETCH="1",
        GIT_ALLOW_PROTOCOL="none",  # set: every protocol not listed is refused, whatever the config says
        GIT_TERMINAL_PROMPT="0",
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_OPTIONAL_LOCKS="0",
        GIT_PAGER="cat",
        PAGER="cat",
    )
    return env


def run_git(
    cwd: Path,
    *args: str,
    input_: bytes | None = None,
    max_output: int | None = None,
    ok: Callable[[int], bool] = lambda rc: rc == 0,
    _user: bool = False,
) -> bytes:
    """The one way hpohash runs git: fixed environment and overrides, bounded output, a timeout.

    Raises :class:`GitError` with git's message when it fails, :class:`OutputBound` when stdout
    exceeds ``max_output`` bytes (the process is killed). ``_user`` is for reading the user's own
    ``safe.directory`` only.
    """
    cmd = ["git", "--no-pager", "--no-replace-objects"]
    for setting in (*_OVERRIDES, *([] if _user else _protected_settings())):
        cmd += ["-c", setting]
    cmd += ["-C", str(cwd), *args]
    try:
        proc = subprocess.Popen(  # noqa: S603 - a fixed git command line, no shell
            cmd,
            stdin=subprocess.PIPE if input_ is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=git_env(user_config=_user),
        )
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    err = bytearray()

    def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(input_ or b"")
            proc.stdin.close()
        except OSError:
            pass

    def drain() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(65536), b""):  # type: ignore[union-attr]
            if len(err) < 65536:
                err.extend(chunk)

    helpers = [threading.Thread(target=drain, daemon=True)]
    if input_ is not None:
        helpers.append(threading.Thread(target=feed, daemon=True))
    for t in helpers:
        t.start()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(GIT_TIMEOUT_S, expire)
    timer.start()
    out = bytearray()
    try:
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
            out += chunk
            if max_output is not None and len(out) > max_output:
                proc.kill()
                raise OutputBound(max_output, bytes(out))
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in helpers:
            t.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    if timed_out.is_set():
        raise GitError(f"git did not finish within {GIT_TIMEOUT_S} s")
    if not ok(rc):
        raise GitError(printable(one_line(err.decode("utf-8", "replace"))) or f"exit {rc}")
    return bytes(out)


def printable(text: str) -> str:
    """``text`` with control and format characters escaped (``\\x1b``): git's messages quote paths and
    ``.git`` file contents the repository chose, and they go to the user's terminal."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def git_blob_id(raw: bytes) -> str:
    """Git's blob id of some bytes, so work-tree files and committed versions dedupe by one key."""
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()  # noqa: S324 - git's own id, not security


def commit_label(commit: str, date: str | None) -> str:
    """``commit 67be745dfb0a (2026-01-10)``: how every output names a commit."""
    return f"commit {commit[:12]}" + (f" ({date[:10]})" if date else "")


@dataclass(frozen=True)
class Revision:
    """Where a snapshot of the tree comes from: the work tree (``commit is None``) or one commit."""

    commit: str | None
    date: str | None

    @property
    def label(self) -> str:
        return commit_label(self.commit, self.date) if self.commit else "work tree"


@dataclass
class Snapshot:
    """The config files of one revision: relative path → blob id."""

    revision: Revision
    files: dict[str, str]


@dataclass(frozen=True)
class HistoryBounds:
    """How much of a history is read: blob bytes, file versions (path × commit) replayed, candidate
    config sets formed from them, and combinations looked at."""

    max_bytes: int = DEFAULT_HISTORY_MIB * 1024 * 1024
    max_versions: int = DEFAULT_HISTORY_MIB * 1024
    max_candidates: int = DEFAULT_HISTORY_MIB * 64
    #: combinations looked at, counting one repeated in many commits each time
    max_combinations: int = DEFAULT_HISTORY_MIB * 16 * 1024

    @classmethod
    def of_mib(cls, mib: int) -> HistoryBounds:
        return cls(mib * 1024 * 1024, mib * 1024, mib * 64, mib * 16 * 1024)

    @property
    def mib(self) -> int:
        return max(1, self.max_bytes // (1024 * 1024))

    def hint(self) -> str:
        return f"raise {BOUND_OPTION} (now {self.mib}) to read more"


@dataclass
class History:
    """What was read of one tree's history: snapshots newest first, their blobs, and why it is short."""

    snapshots: list[Snapshot] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


_HEX = r"[0-9a-f]{40}(?:[0-9a-f]{24})?"
_HEADER = re.compile(rf"commit ({_HEX}) (\S+)")
_META = re.compile(rf":(\d{{6}}) (\d{{6}}) ({_HEX}) ({_HEX}) ([A-Z])\d*")
_LS_TREE = re.compile(rf"(\d{{6}}) (\w+) ({_HEX})\t(.*)", re.S)


def _unreadable(root: Path, reason: str) -> str | None:
    """One warning naming why a repository's history cannot be read and how to fix it (None: no repo)."""
    low = reason.lower()
    if "dubious ownership" in low:
        return (
            f"--config-dir {root}: git history not read: the repository is owned by someone else "
            f"(git's 'dubious ownership'); if you trust it: git config --global --add safe.directory "
            f"{_repo_root_hint(reason, root)}"
        )
    dotgit = next((d / ".git" for d in (root.resolve(), *root.resolve().parents) if (d / ".git").exists()), None)
    if dotgit is None:
        return None  # not in a repository at all: nothing to say
    if dotgit.is_file():
        return (
            f"--config-dir {root}: git history not read: {dotgit} is a .git file that points to no "
            f"repository ({reason}); fix or remove that file"
        )
    return (
        f"--config-dir {root}: git history not read: {dotgit} is not a readable repository, its HEAD "
        f"or config is broken ({reason}); repair it (git fsck) or check out the tree again"
    )


def _repo_root_hint(reason: str, root: Path) -> str:
    m = re.search(r"repository at '(.*?)'", reason)
    return m.group(1) if m else str(root)


def read_history(
    root: Path,
    keep: Callable[[str], bool],
    *,
    rev: str | None = None,
    bounds: HistoryBounds | None = None,
    have: Iterable[str] = (),
) -> History:
    """Snapshots of the files under ``root`` that ``keep`` accepts (paths relative to ``root``): one
    per first-parent commit that touched them, newest first, or only ``rev``'s when it is given.

    Raises :class:`GitError` only for ``rev`` (it was asked for); otherwise a history that cannot be
    read is one warning and what could be read. ``have`` are blob ids the caller already holds.
    """
    bounds = bounds or HistoryBounds()
    hist = History()
    if shutil.which("git") is None:
        if rev is not None:
            raise GitError("git is not installed")
        hist.warnings.append(f"--config-dir {root}: git is not installed: config history not read")
        return hist
    try:
        top = run_git(root, "rev-parse", "--is-inside-work-tree", "--show-prefix")
    except GitError as exc:
        warning = _unreadable(root, exc.reason)
        if rev is not None:
            raise GitError(warning or NOT_A_REPOSITORY) from exc
        if warning:
            hist.warnings.append(warning)
        return hist
    lines = top.decode("utf-8", "surrogateescape").split("\n")
    if lines[0] != "true":
        if rev is not None:
            raise GitError(NOT_A_REPOSITORY)
        return hist
    prefix = lines[1] if len(lines) > 1 else ""
    try:
        if rev is not None:
            if rev.startswith("-"):
                raise GitError("not a revision")
            commit = run_git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
            commit_id = commit.decode().strip()
            shown = run_git(root, "show", "-s", "--no-show-signature", "--format=%cI", commit_id, "--")
            state = _parse_ls_tree(_ls_tree(root, commit_id, prefix), prefix, keep)
            hist.snapshots = [Snapshot(Revision(commit_id, shown.decode().strip()), state)]
        else:
            hist.snapshots = _replay(root, prefix, keep, bounds, hist)
        _check_shallow(root, hist)
        _read_blobs(root, hist, bounds, set(have), prefix=prefix, walk=rev is None)
    except (GitError, OutputBound) as exc:
        if rev is not None:
            raise GitError(str(exc)) from exc
        hist.warnings.append(_history_warning(root, str(exc)))
        hist.snapshots = []
        hist.blobs = {}
    return hist


_BROKEN = ("bad object", "unknown revision", "bad revision", "invalid object", "not a tree object", "unable to read")


def _history_warning(root: Path, reason: str) -> str:
    if any(p in reason.lower() for p in _BROKEN):
        return (
            f"--config-dir {root}: git history not read: HEAD or an object it needs is missing or broken "
            f"({reason}); run git fsck in the repository to find and repair it"
        )
    return f"--config-dir {root}: git history not read ({reason}); using the work tree only"


def _ls_tree(root: Path, commit: str, prefix: str) -> bytes:
    return run_git(root, "ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix or ".")


def _parse_ls_tree(listing: bytes, prefix: str, keep: Callable[[str], bool]) -> dict[str, str]:
    state: dict[str, str] = {}
    for entry in listing.split(b"\0"):
        m = _LS_TREE.fullmatch(entry.decode("utf-8", "surrogateescape"))
        if not m or m.group(2) != "blob" or not m.group(4).startswith(prefix):
            continue
        rel = m.group(4)[len(prefix) :]
        if keep(rel):
            state[rel] = m.group(3)
    return state


def _replay(
    root: Path, prefix: str, keep: Callable[[str], bool], bounds: HistoryBounds, hist: History
) -> list[Snapshot]:
    """Tree state after each commit, walking back from HEAD by undoing each commit's raw diff.

    The log is parsed by position (header, then ``:meta`` / path pairs), so a path is never read as
    a header; the replay stops at the bound on file versions, with a warning.
    """
    try:
        head = run_git(root, "rev-parse", "--verify", "HEAD").decode().strip()
    except GitError as exc:
        if "ambiguous argument 'head'" in exc.reason.lower() or "needed a single revision" in exc.reason.lower():
            # a repository without commits: nothing to read, unless HEAD itself is broken
            try:
                run_git(root, "symbolic-ref", "-q", "HEAD")
                return []
            except GitError:
                pass
        raise
    state = _parse_ls_tree(_ls_tree(root, head, prefix), prefix, keep)
    try:
        log = run_git(
            root,
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            "--no-relative",
            "--no-follow",
            "--no-textconv",
            "--no-ext-diff",
            "--no-show-signature",
            "--no-color",
            "--encoding=UTF-8",
            "--format=commit %H %cI",
            head,
            "--",
            f":(top,literal){prefix}" if prefix else ":(top)",
            max_output=bounds.max_versions * 400,
        )
        truncated = False
    except OutputBound as exc:  # replay what came: the bound on versions stops it before the cut
        log, truncated = exc.partial.rpartition(b"\0")[0], True
    snaps: list[Snapshot] = []
    versions = 0
    tokens = log.split(b"\0")
    i = 0
    while i < len(tokens):
        token = tokens[i].lstrip(b"\n").decode("utf-8", "surrogateescape")
        i += 1
        if not token:
            continue
        header = _HEADER.fullmatch(token)
        if header:
            versions += len(state)
            if versions > bounds.max_versions:
                truncated = True
                break
            snaps.append(Snapshot(Revision(header.group(1), header.group(2)), dict(state)))
            continue
        meta = _META.fullmatch(token)
        if truncated and i >= len(tokens):
            break  # the cut fell between a change and its path
        if not meta or i >= len(tokens):
            raise GitError("unexpected git log output")
        path = tokens[i].decode("utf-8", "surrogateescape")
        i += 1
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix) :]
        if not keep(rel):
            continue
        if meta.group(5) == "A":
            state.pop(rel, None)
        else:
            state[rel] = meta.group(3)
    if truncated:
        hist.warnings.append(
            f"--config-dir {root}: config history read back to {len(snaps)} commits only: more file "
            f"versions than the bound of {bounds.max_versions:,}; {bounds.hint()}"
        )
    return snaps


def _check_shallow(root: Path, hist: History) -> None:
    try:
        shallow = run_git(root, "rev-parse", "--is-shallow-repository").strip() == b"true"
    except GitError:
        return
    if shallow:
        hist.warnings.append(
            f"--config-dir {root}: git history is partial (a shallow clone): older configs cannot be "
            "searched; run git fetch --unshallow in the repository"
        )


def _is_partial_clone(root: Path) -> bool:
    """A clone made with ``--filter``: it names a promisor remote (objects it lacks are "promised")."""
    try:
        found = run_git(
            root,
            "config",
            "--get-regexp",
            r"^(extensions\.partialclone|remote\..*\.promisor)$",
            ok=lambda rc: rc in (0, 1),
        )
    except GitError:
        return False
    return any(not line.endswith(b" false") for line in found.splitlines())


def _absent(root: Path, tip: str, prefix: str, *, walk: bool, bounds: HistoryBounds) -> set[str]:
    """The blobs under ``prefix`` a partial clone lacks, found without fetching (``cat-file`` would
    die on them once lazy fetching is off, and run the remote's transport while it is on)."""
    out = run_git(
        root,
        "rev-list",
        "--objects",
        "--missing=print",
        "--filter=object:type=blob",
        *(["--first-parent"] if walk else ["--no-walk"]),
        tip,
        "--",
        f":(top,literal){prefix}" if prefix else ":(top)",
        max_output=bounds.max_versions * 400,
    )
    return {line[1:].decode() for line in out.split(b"\n") if line.startswith(b"?")}


def _read_blobs(root: Path, hist: History, bounds: HistoryBounds, have: set[str], *, prefix: str, walk: bool) -> None:
    """The snapshots' blobs, newest snapshot first, through one ``cat-file --batch-check`` and one
    ``--batch``; objects not present are never fetched (a partial clone) but named in one warning,
    and history stops at the snapshot whose blobs would pass the byte bound."""
    order: list[str] = []
    seen = set(have)
    for snap in hist.snapshots:
        for blob in snap.files.values():
            if blob not in seen:
                seen.add(blob)
                order.append(blob)
    if not order:
        return
    missing: list[str] = []
    tip = hist.snapshots[0].revision.commit
    if tip and _is_partial_clone(root):
        absent = _absent(root, tip, prefix, walk=walk, bounds=bounds)
        missing = [b for b in order if b in absent]
        order = [b for b in order if b not in absent]
    check = run_git(root, "cat-file", "--batch-check", input_=("\n".join(order) + "\n").encode()) if order else b""
    sizes: dict[str, int] = {}
    for line in check.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob" and parts[2].isdigit():
            sizes[parts[0]] = int(parts[2])
        elif len(parts) == 2 and parts[1] == "missing":
            missing.append(parts[0])
    if missing:
        partial = _is_partial_clone(root)
        hist.warnings.append(
            f"--config-dir {root}: {len(missing)} file version(s) in the git history are not in the repository "
            + (
                "(a partial clone: hpohash never fetches); those configs are not searched; to search them, "
                "clone the repository without --filter"
                if partial
                else "(a damaged repository); those configs are not searched; run git fsck in the repository"
            )
        )
    total = 0
    wanted: list[str] = []
    keep_snaps = len(hist.snapshots)
    for n, snap in enumerate(hist.snapshots):
        new = [b for b in dict.fromkeys(snap.files.values()) if b in sizes and b not in have and b not in wanted]
        new = [b for b in new if sizes[b] <= MAX_BLOB_BYTES]  # a larger one is no config: skipped
        grow = sum(sizes[b] for b in new)
        if total + grow > bounds.max_bytes:
            keep_snaps = n
            hist.warnings.append(
                f"--config-dir {root}: config history read back to {n} commits only: older file versions "
                f"would pass the bound of {bounds.mib} MiB read; {bounds.hint()}"
            )
            break
        total += grow
        wanted += new
    del hist.snapshots[keep_snaps:]
    if not wanted:
        return
    out = run_git(
        root, "cat-file", "--batch", input_=("\n".join(wanted) + "\n").encode(), max_output=total + 200 * len(wanted)
    )
    pos = 0
    for blob in wanted:
        nl = out.find(b"\n", pos)
        if nl < 0:
            break
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) < 3 or header[1] != b"blob" or not header[2].isdigit():
            continue
        size = int(header[2])
        hist.blobs[blob] = out[pos : pos + size]
        pos += size + 1
