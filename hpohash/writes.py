"""Applying a plan, the journal, and undo (SPEC §5 ``backfill``/``undo``, §7).

A run's journal lines are appended and fsynced before that run is written, so an interrupted
backfill leaves a journal that names every tag it may have changed; undo restores only tags whose
current value is still the one written, so it is safe to run twice or after a partial write.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpohash.context import current
from hpohash.errors import ArgumentError, BackendError, HpohashError, JournalWriteError, UsageError
from hpohash.network import ThrottledError
from hpohash.plan import PlannedChange
from hpohash.tracking import Tracking, classify_error
from hpohash.version import __version__

#: consecutive backend failures after which the remaining runs are not attempted (throttling is
#: not one: a store that answers 429 is up, and asks for patience, not for the rest to be dropped)
MAX_CONSECUTIVE_BACKEND_FAILURES = 5


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    error: str
    backend: bool
    #: the store throttled (429/503) past what hpohash waits out
    throttled: bool = False


@dataclass(frozen=True)
class ApplyResult:
    runs_written: int
    failures: tuple[RunFailure, ...]
    #: tags undo should have deleted on a backend that cannot delete tags (each also a failure)
    not_removed: tuple[TagWrite, ...] = ()

    @property
    def backend_failed(self) -> bool:
        return any(f.backend for f in self.failures)


@dataclass(frozen=True)
class TagWrite:
    """One tag to set (``new``) or delete (``new is None``) on a run; ``old`` is what it replaces."""

    run_id: str
    key: str
    old: str | None
    new: str | None


def default_journal_path(now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return Path(".hpohash") / f"journal-{stamp}.jsonl"


def check_journal_path(path: str | Path) -> None:
    """Before anything is read: a journal is never overwritten, and its directory must be creatable."""
    p = Path(path)

    def bad(detail: str) -> ArgumentError:
        return ArgumentError.on("journal", f"{p}: {detail}")

    if len(p.name.encode("utf-8", "surrogateescape")) > 255:
        raise bad("cannot create: file name too long")
    try:
        exists = p.exists() or p.is_symlink()
    except OSError as exc:  # a path too long as a whole, a loop of symlinks…
        raise bad(f"cannot create: {exc.strerror or exc}") from exc
    if exists:
        raise bad("already exists; journals are never overwritten")
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise bad(f"cannot create: {ancestor} is not a directory")
    if ancestor.is_dir() and not os.access(ancestor, os.W_OK | os.X_OK):
        raise bad(f"cannot create: permission denied in {ancestor}")


class Journal:
    """Append-only JSON-lines file; every append is flushed and fsynced before the write it covers."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path

        def bad(detail: str) -> ArgumentError:
            return ArgumentError.on("journal", f"{path}: {detail}")

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # an ancestor is a file (``/dev/null/j.jsonl``)
            raise bad(f"cannot create: {path.parent} is not a directory") from exc
        except OSError as exc:
            raise bad(f"cannot create {path.parent}: {exc.strerror or exc}") from exc
        try:
            self._fh = path.open("x", encoding="utf-8")
        except FileExistsError as exc:
            raise bad("already exists; journals are never overwritten") from exc
        except OSError as exc:
            raise bad(f"cannot create: {exc.strerror or exc}") from exc
        self._lock = threading.Lock()
        try:
            self._append([dict(header)])
        except JournalWriteError as exc:
            self._fh.close()
            raise UsageError(str(exc)) from exc
        ledger = current().ledger  # the call's: what a Ctrl-C during this call reports
        with ledger.lock:
            ledger.journal = str(path)
            ledger.command = str(header.get("command") or "command")

    def _append(self, lines: Iterable[Mapping[str, Any]]) -> None:
        try:
            with self._lock:
                for line in lines:
                    self._fh.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")
                self._fh.flush()
                os.fsync(self._fh.fileno())
        except OSError as exc:
            raise JournalWriteError(f"journal {self.path}: cannot write: {exc.strerror or exc}") from exc

    def record(self, writes: Sequence[TagWrite]) -> None:
        self._append({"run_id": w.run_id, "key": w.key, "old": w.old, "new": w.new} for w in writes)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # every line that mattered was fsynced when it was appended
            self._fh.close()


def journal_header(command: str, tracking: Tracking, experiments: Sequence[str]) -> dict[str, Any]:
    return {
        "hpohash_journal": 1,
        "command": command,
        "tool_version": __version__,
        "tracking_uri": tracking.display_uri,
        "experiments": list(experiments),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def write_runs(
    tracking: Tracking,
    runs: Mapping[str, Sequence[TagWrite]],
    journal: Journal,
    *,
    workers: int | None = None,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> ApplyResult:
    """Journal, then write each run's tags in one ``log_batch`` (plus deletes); failures are per run."""
    ledger = current().ledger  # taken here: the worker threads do not run in the caller's context
    lock = threading.Lock()
    state = {"done": 0, "written": 0, "consecutive": 0}
    journal_error: list[str] = []
    failures: list[RunFailure] = []
    not_removed: list[TagWrite] = []
    total = len(runs)

    def one(item: tuple[str, Sequence[TagWrite]]) -> None:
        if ledger.interrupted:  # a Ctrl-C Python dropped still stops the writes not yet started
            raise KeyboardInterrupt
        run_id, writes = item
        with lock:
            abandon = state["consecutive"] >= MAX_CONSECUTIVE_BACKEND_FAILURES
            no_journal = bool(journal_error)
        if no_journal:
            failure = RunFailure(run_id, "not attempted: the journal cannot be written", False)
        elif abandon:
            failure = RunFailure(run_id, "not attempted: the tracking backend kept failing", True)
        else:
            try:
                journal.record(writes)
            except JournalWriteError as exc:  # a disk problem, not the backend: stop writing altogether
                with lock:
                    journal_error.append(str(exc))
                failure = RunFailure(run_id, f"{exc}; not written", False)
            else:
                with ledger.lock:
                    ledger.in_flight.add(run_id)
                kept: list[TagWrite] = []
                try:
                    sets: dict[str, str] = {}
                    for w in writes:
                        if w.new is not None:
                            sets[w.key] = w.new
                    if sets:
                        tracking.set_tags(run_id, sets)
                    for w in writes:
                        if w.new is None and not tracking.delete_tag(run_id, w.key):
                            kept.append(w)  # the backend cannot delete tags: named, not hidden
                    failure = None
                except Exception as exc:  # noqa: BLE001 - reported per run, the rest continue
                    err = exc if isinstance(exc, HpohashError) else classify_error(exc, f"run {run_id}")
                    failure = RunFailure(
                        run_id, str(err), isinstance(err, BackendError), isinstance(err, ThrottledError)
                    )
                if kept:
                    with lock:
                        not_removed.extend(kept)
                        failures.extend(
                            RunFailure(run_id, f"tag {w.key} could not be removed: this store cannot delete tags "
                                       f"(it keeps the value {w.old!r})", False)
                            for w in kept
                        )  # fmt: skip
                with ledger.lock:
                    ledger.in_flight.discard(run_id)
                    if failure is None:
                        ledger.runs_written += 1
                        ledger.tags_written += len(writes)
        with lock:
            state["done"] += 1
            if failure is None:
                state["written"] += 1
                state["consecutive"] = 0
            else:
                failures.append(failure)
                if failure.backend and not failure.throttled:
                    state["consecutive"] += 1
            done = state["done"]
        if progress:
            progress("write", done, total)

    tracking.map_concurrent(one, list(runs.items()), workers)
    order = {rid: i for i, rid in enumerate(runs)}
    failures.sort(key=lambda f: order[f.run_id])
    not_removed.sort(key=lambda w: order[w.run_id])
    return ApplyResult(state["written"], tuple(failures), tuple(not_removed))


def changes_to_writes(changes: Iterable[PlannedChange]) -> dict[str, list[TagWrite]]:
    out: dict[str, list[TagWrite]] = {}
    for c in changes:
        out.setdefault(c.run_id, []).append(TagWrite(c.run_id, c.key, c.old, c.new))
    return out


# ------------------------------------------------------------------------------------------ undo


@dataclass(frozen=True)
class CutLine:
    """A journal's last line cut short (the process died while journaling it): reported, never guessed.

    ``old`` is known only when the cut came after it (``known_old``); the tag's current value then
    tells whether the write reached the store.
    """

    line: int
    text: str
    run_id: str | None
    key: str | None
    old: str | None = None
    known_old: bool = False


@dataclass(frozen=True)
class JournalFile:
    path: Path
    header: dict[str, Any]
    entries: tuple[TagWrite, ...]
    cut: CutLine | None = None


RUN_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,256}$")
_CUT_RUN_ID = re.compile(r'"run_id"\s*:\s*"([A-Za-z0-9_\-]{1,256})"')
_CUT_KEY = re.compile(r'"key"\s*:\s*"([\w\-./: ]{1,250})"')
_CUT_OLD = re.compile(r'"old"\s*:\s*(null|"(?:[^"\\]|\\.)*")\s*,')


def _cut_line(n: int, line: str) -> CutLine:
    run_id, key, old = _CUT_RUN_ID.search(line), _CUT_KEY.search(line), _CUT_OLD.search(line)
    old_value: str | None = None
    known = False
    if old:
        try:
            decoded = json.loads(old.group(1))
        except ValueError:
            decoded = 0
        if decoded is None or isinstance(decoded, str):
            old_value, known = decoded, True
    return CutLine(n, line[:200], run_id.group(1) if run_id else None, key.group(1) if key else None, old_value, known)


def read_journal(path: str | Path) -> JournalFile:
    """Parse a journal; a cut last line is kept as :class:`CutLine`, any other bad line is a usage error."""
    from hpohash.limits import LimitError, load_json
    from hpohash.tags import TAG_KEY_RE

    p = Path(path)
    where = f"journal {p}"
    try:
        if p.is_dir():
            raise UsageError(f"{where}: is a directory, not a journal")
        raw = p.read_bytes()
    except OSError as exc:
        raise UsageError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UsageError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}): not an hpohash journal") from exc
    if not any(line.strip() for line in lines):
        raise UsageError(f"{where}: empty")
    last = max(n for n, line in enumerate(lines, 1) if line.strip())
    entries: list[TagWrite] = []
    header: dict[str, Any] | None = None
    cut: CutLine | None = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = load_json(line)
        except json.JSONDecodeError as exc:
            if n == last and header is not None:
                cut = _cut_line(n, line)
                break  # the line the process was writing when it died
            if header is None:
                raise UsageError(f"{where}:{n}: not an hpohash journal (no header line)") from exc
            raise UsageError(f"{where}:{n}: not JSON: {exc.msg}") from exc
        except LimitError as exc:
            raise UsageError(f"{where}:{n}: {exc}") from exc
        if header is None:
            if not isinstance(obj, dict) or "hpohash_journal" not in obj:
                raise UsageError(f"{where}:{n}: not an hpohash journal (no header line)")
            uri, experiments = obj.get("tracking_uri"), obj.get("experiments", [])
            if not (uri is None or isinstance(uri, str)) or not (
                isinstance(experiments, list) and all(isinstance(e, str) for e in experiments)
            ):
                raise UsageError(f"{where}:{n}: header's tracking_uri must be a string, experiments a list of names")
            header = obj
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("run_id"), str) or not isinstance(obj.get("key"), str):
            raise UsageError(f"{where}:{n}: expected an object with run_id, key, old, new")
        if not RUN_ID_RE.match(obj["run_id"]) or not TAG_KEY_RE.match(obj["key"]):
            raise UsageError(f"{where}:{n}: run_id or key is not an MLflow run id / tag key")
        old, new = obj.get("old"), obj.get("new")
        if not (old is None or isinstance(old, str)) or not (new is None or isinstance(new, str)):
            raise UsageError(f"{where}:{n}: old and new must be strings or null")
        entries.append(TagWrite(obj["run_id"], obj["key"], old, new))
    if header is None:
        raise UsageError(f"{where}: not an hpohash journal (no header line)")
    return JournalFile(p, header, tuple(entries), cut)


@dataclass(frozen=True)
class UndoPlan:
    writes: dict[str, list[TagWrite]]
    skipped: tuple[tuple[TagWrite, str | None], ...]  # changed since the journal: (entry, current value)
    missing_runs: tuple[str, ...]
    cut: tuple[dict[str, Any], ...] = ()  # cut last lines: where, what they name, the tag's value now


def _cut_report(jf: JournalFile, current: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """What a cut last line means, judged by the tag's current value (the journal cannot say)."""
    cut = jf.cut
    assert cut is not None
    head = f"journal {jf.path}:{cut.line}: last line is cut (the process died while journaling it)"
    tags = current.get(cut.run_id or "")
    now = tags.get(cut.key) if tags is not None and cut.key else None
    if not (cut.run_id and cut.key):
        what = "it names no run and tag that can be checked"
    elif tags is None:
        what = f"run {cut.run_id} cannot be read back"
    elif cut.known_old and now == cut.old:
        what = f"run {cut.run_id} {cut.key} still holds its old value {now!r}: that write never reached the store"
    elif cut.known_old:
        what = f"run {cut.run_id} {cut.key} now holds {now!r}, not its old value {cut.old!r}: check it by hand"
    else:
        what = f"run {cut.run_id} {cut.key} now holds {now!r}; the line ends before its old value: check it by hand"
    return {
        "journal": str(jf.path),
        "line": cut.line,
        "run_id": cut.run_id,
        "key": cut.key,
        "old": cut.old if cut.known_old else None,
        "current": now,
        "message": f"{head}; {what}",
    }


def plan_undo(journals: Sequence[JournalFile], current: Mapping[str, Mapping[str, str]]) -> UndoPlan:
    """Newest entry first: restore ``old`` where the tag still holds ``new``; skip what changed since."""
    writes: dict[str, list[TagWrite]] = {}
    skipped: list[tuple[TagWrite, str | None]] = []
    missing: dict[str, None] = {}
    state = {rid: dict(tags) for rid, tags in current.items()}
    ordered = sorted(journals, key=lambda j: str(j.header.get("time", "")), reverse=True)
    for jf in ordered:
        for entry in reversed(jf.entries):
            tags = state.get(entry.run_id)
            if tags is None:
                missing.setdefault(entry.run_id, None)
                continue
            value = tags.get(entry.key)
            if value == entry.old:
                continue  # already as before (never written, or undone already)
            if value != entry.new:
                skipped.append((entry, value))
                continue
            writes.setdefault(entry.run_id, []).append(TagWrite(entry.run_id, entry.key, value, entry.old))
            if entry.old is None:
                tags.pop(entry.key, None)
            else:
                tags[entry.key] = entry.old
    # several journal lines may touch one key of one run: keep one write per key, the last state
    merged: dict[str, list[TagWrite]] = {}
    for rid, ws in writes.items():
        final: dict[str, TagWrite] = {}
        for w in ws:
            first_old = final[w.key].old if w.key in final else w.old
            final[w.key] = TagWrite(rid, w.key, first_old, w.new)
        merged[rid] = [w for w in final.values() if w.old != w.new]
    cut = tuple(_cut_report(jf, current) for jf in journals if jf.cut is not None)
    return UndoPlan({k: v for k, v in merged.items() if v}, tuple(skipped), tuple(missing), cut)
