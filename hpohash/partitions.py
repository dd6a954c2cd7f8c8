"""Partitioned scans over HTTP: one search split into start-time ranges a server answers at once.

Over HTTP a scan is one busy server worker answering pages one after another while the others sit
idle. Split by start time into K ranges, the K parts are K request series the server answers on K
workers. MLflow orders a search by ``start_time DESC`` (then run id), so a run's place in one scan is
fixed by its start time first: the parts, newest range first, concatenated, are the one scan's runs
in its order, and a part is ``low <= start_time < high``, so a run on a boundary is in exactly one.

Parts are balanced by run counts, not time: where the server pages by offset (MLflow's own token,
proved before it is used), a few one-run requests at predicted offsets find how many runs there are
(doubling, then a couple of halvings) and the start time at each ``i/K`` of them. Where tokens are
opaque there is no offset to ask for: the observed time range is cut evenly, and only when K was
asked for (``BackendSettings.scan_parts``), since the run count that would justify it is unknown.

Where the server refuses ``start_time`` filters (Azure ML's dialect), a search of several experiments
is split by experiment instead: up to K groups, balanced by run counts where offsets can be asked for
(``count_runs`` per experiment), else by count of experiments. A group's scan is the one scan's runs
of those experiments in the one scan's order, so ``read_parts`` with ``key=scan_order`` merges the
groups back into the one scan's order (a k-way merge), and every report is byte-identical.
No MLflow import here: requests are made by the caller's functions.
"""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from hpohash.context import carried
from hpohash.perf import gc_paused

#: ``scan_parts`` 0 (auto): at most this many parts. ``mlflow server`` serves one request a worker;
#: the server the issue targets runs 4, and more parts than workers only queue there
AUTO_MAX_PARTS = 4
#: runs a part should have before auto splits (a full page of MLflow's 1,000): below two parts' worth
#: the page loop's reads ahead already keep the server busy, and a split costs ~10 small requests;
#: auto also stays off where pages are smaller than this (nothing was measured there)
AUTO_RUNS_PER_PART = 1000
#: halvings of the bracket on the run count (doubling found ``last < n <= first_miss``); the count
#: only places the boundaries, so a quarter of the bracket is close enough and costs two requests
COUNT_HALVINGS = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Split:
    """How one search is read: ``bounds`` are start times, newest first; no bounds: one scan."""

    bounds: tuple[int, ...] = ()
    #: the requests spent deciding (each ``max_results=1``), for the tests that count them
    requests: int = 0
    runs_estimate: int | None = None

    @property
    def parts(self) -> int:
        return len(self.bounds) + 1 if self.bounds else 1

    def filters(self) -> list[str]:
        """One filter clause per part, newest first: ``>= b0``; ``>= b1 AND < b0``; ...; ``< b_last``."""
        highs: list[int | None] = [None, *self.bounds]
        lows: list[int | None] = [*self.bounds, None]
        out = []
        for low, high in zip(lows, highs, strict=True):
            clauses = []
            if low is not None:
                clauses.append(f"attributes.start_time >= {low}")
            if high is not None:
                clauses.append(f"attributes.start_time < {high}")
            out.append(" AND ".join(clauses))
        return out


def auto_parts(runs: int) -> int:
    """Parts for ``runs`` runs when none were asked for: one per ``AUTO_RUNS_PER_PART``, at most
    ``AUTO_MAX_PARTS`` (a part costs a thread, its own first request and its last, partial page)."""
    return max(1, min(AUTO_MAX_PARTS, runs // max(1, AUTO_RUNS_PER_PART)))


def _descending(times: Sequence[int]) -> tuple[int, ...]:
    """Distinct boundaries, newest first (runs sharing a start time cannot be split)."""
    return tuple(sorted(set(times), reverse=True))


def split_by_offsets(probe: Callable[[int], int | None], page_size: int, parts: int) -> Split:
    """Boundaries at equal run counts. ``probe(offset)``: the start time of the run at that offset of
    the one scan (newest first), ``None`` past its end. ``parts`` 0: ``auto_parts``."""
    requests = 0
    seen: dict[int, int] = {}

    def at(offset: int) -> int | None:
        nonlocal requests
        if offset in seen:
            return seen[offset]
        requests += 1
        started = probe(offset)
        if started is not None:
            seen[offset] = started
        return started

    last, miss = _bracket(at, page_size)
    if last == 0:  # at most one page: nothing to read at once
        return Split(requests=requests, runs_estimate=None)
    runs = (last + 1 + miss) // 2
    k = parts if parts > 0 else auto_parts(runs)
    if k < 2:
        return Split(requests=requests, runs_estimate=runs)
    times: list[int] = []
    for i in range(1, k):
        started = at(min(last, runs * i // k))
        if started is not None:
            times.append(started)
    return Split(_descending(times), requests, runs)


def _bracket(at: Callable[[int], int | None], page_size: int) -> tuple[int, int]:
    """``(last, miss)`` with ``last < n <= miss`` runs (``last`` 0: at most one page): doubling from
    one page, then ``COUNT_HALVINGS`` halvings. ``at(offset)``: ``None`` past the end."""
    last, miss = 0, page_size
    while at(miss) is not None:
        last, miss = miss, miss * 2
    if last == 0:
        return last, miss
    for _ in range(COUNT_HALVINGS):
        if miss - last <= page_size:
            break
        mid = (last + miss) // 2
        if at(mid) is None:
            miss = mid
        else:
            last = mid
    return last, miss


def count_runs(probe: Callable[[int], bool], page_size: int) -> tuple[int, int]:
    """(about how many runs one search has, the requests spent): ``probe(offset)``, a run is there.
    At most one page counts as half a page (the count only balances parts: one request, not two)."""
    requests = 0

    def at(offset: int) -> int | None:
        nonlocal requests
        requests += 1
        return 0 if probe(offset) else None

    last, miss = _bracket(at, page_size)
    return ((last + 1 + miss) // 2 if last else page_size // 2), requests


def groups_by_weight(weights: Sequence[int], parts: int) -> list[tuple[int, ...]]:
    """The indexes of ``weights`` in at most ``parts`` groups of about equal total weight: heaviest
    first, each to the lightest group so far (ties: the lower index); in index order, groups too."""
    k = max(1, min(parts, len(weights)))
    totals = [0] * k
    groups: list[list[int]] = [[] for _ in range(k)]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        g = min(range(k), key=lambda g: (totals[g], g))
        totals[g] += weights[i]
        groups[g].append(i)
    return sorted(tuple(sorted(g)) for g in groups if g)


def scan_order(started: int, run_id: str) -> tuple[int, str]:
    """A run's place in MLflow's one scan: ``start_time DESC``, then run id ascending (its SQL store's
    ``_get_orderby_clauses``; its file store sorts by the same key). Where a run has no start time
    there is no place to find: MLflow's ``RunInfo`` refuses one (a search over such a run fails on
    the server, "start_time cannot be None"), and over REST an absent one reads as 0. Run ids are
    MLflow's lowercase hex UUIDs, which every SQL collation orders as Python does."""
    return -started, run_id


def split_by_time(newest: int, oldest: int, parts: int) -> Split:
    """Boundaries cutting ``[oldest, newest]`` evenly (where no offset can be asked for)."""
    if parts < 2 or newest <= oldest:
        return Split()
    span = newest - oldest + 1
    return Split(_descending([oldest + span * i // parts for i in range(1, parts)]))


class _End:
    pass


@dataclass
class _Failed:
    error: BaseException


def read_parts(
    parts: Sequence[Callable[[], Iterator[T]]],
    *,
    name: str = "hpohash-part",
    key: Callable[[T], Any] | None = None,
) -> Iterator[T]:
    """Every item of every part, part by part in the order given, while all parts are read at once;
    with ``key`` (each part ordered by it), merged into one order by it instead.

    Part 0 is handed on as it arrives; the others are held until their turn (slim records, so what
    is held is what the scan keeps anyway). An error in a part is raised here, in its turn's place.
    Closing this (Ctrl-C, an error) stops every part at its next item; requests under way finish
    within their deadline, none is started after."""
    if len(parts) == 1:
        yield from parts[0]()
        return
    queues: list[queue.SimpleQueue[object]] = [queue.SimpleQueue() for _ in parts]
    stop = threading.Event()

    def run(i: int) -> None:
        items: Iterator[T] | None = None
        try:
            items = parts[i]()
            for item in items:
                if stop.is_set():
                    return
                queues[i].put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised in its place
            queues[i].put(_Failed(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # the part's own page loop stops its reads ahead
        queues[i].put(_End())

    # paused here, around all the parts: each part pauses the collector too, and the first to end
    # would otherwise turn it back on under the others
    with gc_paused():
        yield from _read_at_once(parts, queues, stop, run, name, key)


def _read_at_once(
    parts: Sequence[Callable[[], Iterator[T]]],
    queues: list[queue.SimpleQueue[object]],
    stop: threading.Event,
    run: Callable[[int], None],
    name: str,
    key: Callable[[T], Any] | None,
) -> Iterator[T]:
    pool = ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix=name)
    try:
        for i in range(len(parts)):
            pool.submit(carried(run), i)  # in the call's context: its secrets are masked there
        if key is None:
            for q in queues:
                yield from _drain(q)
        else:
            yield from heapq.merge(*(_drain(q) for q in queues), key=key)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _drain(q: queue.SimpleQueue[object]) -> Iterator[T]:
    """One part's items as its thread hands them on; its error raised here."""
    while True:
        try:
            item = q.get(timeout=0.2)  # a timeout keeps Ctrl-C deliverable here
        except queue.Empty:
            continue
        if isinstance(item, _End):
            return
        if isinstance(item, _Failed):
            raise item.error
        yield cast(T, item)
