"""Applying a plan, the journal, and undo (SPEC §5 ``backfill``/``undo``, §7).

A run's journal lines are appended and fsynced before that run is written, so an interrupted
backfill leaves a journal that names every tag it may have changed; undo restores only tags whose
current value is still the one written, so it is safe to run twice or after a partial write.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpohash import __version__
from hpohash.errors import BackendError, UsageError
from hpohash.plan import PlannedChange
from hpohash.tracking import Tracking, _classify

#: consecutive backend failures after which the remaining runs are not attempted
MAX_CONSECUTIVE_BACKEND_FAILURES = 5


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    error: str
    backend: bool


@dataclass(frozen=True)
class ApplyResult:
    runs_written: int
    failures: tuple[RunFailure, ...]

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


class Journal:
    """Append-only JSON-lines file; every append is flushed and fsynced before the write it covers."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("x", encoding="utf-8")
        except FileExistsError as exc:
            raise UsageError(f"--journal {path}: already exists; journals are never overwritten") from exc
        except OSError as exc:
            raise UsageError(f"--journal {path}: cannot create: {exc.strerror or exc}") from exc
        self._lock = threading.Lock()
        self._append([dict(header)])

    def _append(self, lines: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            for line in lines:
                self._fh.write(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def record(self, writes: Sequence[TagWrite]) -> None:
        self._append({"run_id": w.run_id, "key": w.key, "old": w.old, "new": w.new} for w in writes)

    def close(self) -> None:
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
    lock = threading.Lock()
    state = {"done": 0, "written": 0, "consecutive": 0}
    failures: list[RunFailure] = []
    total = len(runs)

    def one(item: tuple[str, Sequence[TagWrite]]) -> None:
        run_id, writes = item
        with lock:
            abandon = state["consecutive"] >= MAX_CONSECUTIVE_BACKEND_FAILURES
        if abandon:
            failure = RunFailure(run_id, "not attempted: the tracking backend kept failing", True)
        else:
            try:
                journal.record(writes)
                sets = {w.key: w.new for w in writes if w.new is not None}
                if sets:
                    tracking.set_tags(run_id, sets)  # type: ignore[arg-type]
                for w in writes:
                    if w.new is None:
                        tracking.delete_tag(run_id, w.key)
                failure = None
            except Exception as exc:  # noqa: BLE001 - reported per run, the rest continue
                err = _classify(exc, f"run {run_id}")
                failure = RunFailure(run_id, str(err), isinstance(err, BackendError))
        with lock:
            state["done"] += 1
            if failure is None:
                state["written"] += 1
                state["consecutive"] = 0
            else:
                failures.append(failure)
                if failure.backend:
                    state["consecutive"] += 1
            done = state["done"]
        if progress:
            progress("write", done, total)

    tracking.map_concurrent(one, list(runs.items()), workers)
    order = {rid: i for i, rid in enumerate(runs)}
    failures.sort(key=lambda f: order[f.run_id])
    return ApplyResult(state["written"], tuple(failures))


def changes_to_writes(changes: Iterable[PlannedChange]) -> dict[str, list[TagWrite]]:
    out: dict[str, list[TagWrite]] = {}
    for c in changes:
        out.setdefault(c.run_id, []).append(TagWrite(c.run_id, c.key, c.old, c.new))
    return out


# ------------------------------------------------------------------------------------------ undo


@dataclass(frozen=True)
class JournalFile:
    path: Path
    header: dict[str, Any]
    entries: tuple[TagWrite, ...]


def read_journal(path: str | Path) -> JournalFile:
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"journal {p}: cannot read: {exc.strerror or exc}") from exc
    if not lines:
        raise UsageError(f"journal {p}: empty")
    entries: list[TagWrite] = []
    header: dict[str, Any] | None = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines):
                break  # a line cut short by an interruption: nothing after it was written
            raise UsageError(f"journal {p}:{n}: not JSON: {exc.msg}") from exc
        if header is None:
            if not isinstance(obj, dict) or "hpohash_journal" not in obj:
                raise UsageError(f"journal {p}:1: not an hpohash journal (no header line)")
            header = obj
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("run_id"), str) or not isinstance(obj.get("key"), str):
            raise UsageError(f"journal {p}:{n}: expected an object with run_id, key, old, new")
        old, new = obj.get("old"), obj.get("new")
        if not (old is None or isinstance(old, str)) or not (new is None or isinstance(new, str)):
            raise UsageError(f"journal {p}:{n}: old and new must be strings or null")
        entries.append(TagWrite(obj["run_id"], obj["key"], old, new))
    assert header is not None
    return JournalFile(p, header, tuple(entries))


@dataclass(frozen=True)
class UndoPlan:
    writes: dict[str, list[TagWrite]]
    skipped: tuple[tuple[TagWrite, str | None], ...]  # changed since the journal: (entry, current value)
    missing_runs: tuple[str, ...]


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
    return UndoPlan({k: v for k, v in merged.items() if v}, tuple(skipped), tuple(missing))


def backfill_report(plan: Any, *, dry_run: bool, journal: str | None, result: ApplyResult | None) -> dict[str, Any]:
    """The ``hpohash.backfill/1`` object every renderer draws from."""
    runs = {c.run_id for c in plan.changes}
    return {
        "schema": "hpohash.backfill/1",
        "dry_run": dry_run,
        "journal": journal,
        "summary": {
            "runs_planned": len(runs),
            "tags_planned": len(plan.changes),
            "runs_written": result.runs_written if result else 0,
            "runs_failed": len(result.failures) if result else 0,
            "conflicts": len(plan.conflicts),
        },
        "changes": [
            {"run_id": c.run_id, "stage": c.stage, "key": c.key, "old": c.old, "new": c.new, "reason": c.reason}
            for c in plan.changes
        ],
        "conflicts": [
            {"run_id": c.run_id, "stage": c.stage, "key": c.key, "current": c.current, "message": c.message}
            for c in plan.conflicts
        ],
        "failures": [{"run_id": f.run_id, "error": f.error} for f in (result.failures if result else ())],
    }


def undo_report(plan: UndoPlan, *, dry_run: bool, journal: str | None, result: ApplyResult | None) -> dict[str, Any]:
    """The ``hpohash.undo/1`` object: what was (or would be) restored and what was left alone."""
    return {
        "schema": "hpohash.undo/1",
        "dry_run": dry_run,
        "journal": journal,
        "summary": {
            "runs_planned": len(plan.writes),
            "tags_planned": sum(len(w) for w in plan.writes.values()),
            "runs_written": result.runs_written if result else 0,
            "runs_failed": len(result.failures) if result else 0,
            "skipped": len(plan.skipped),
            "missing_runs": len(plan.missing_runs),
        },
        "changes": [
            {"run_id": w.run_id, "key": w.key, "old": w.old, "new": w.new} for ws in plan.writes.values() for w in ws
        ],
        "skipped": [
            {"run_id": e.run_id, "key": e.key, "journal_new": e.new, "current": cur} for e, cur in plan.skipped
        ],
        "missing_runs": list(plan.missing_runs),
        "failures": [{"run_id": f.run_id, "error": f.error} for f in (result.failures if result else ())],
    }
