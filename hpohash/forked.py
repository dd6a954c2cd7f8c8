"""Part of one command's pure Python work in a forked second process, so it uses a second core.

Why a process: after the read, verify's time is Python work per run (planning and auditing each study),
and threads would share one interpreter lock. A forked child already holds the scope (copy-on-write),
so nothing is sent to it; only its result comes back, pickled, through a pipe.

The child is a helper, never the authority: if it cannot start, fails, dies or sends nothing readable,
the parent does that share of the work itself, so the answer (and any error) is the one a single
process gives. It never writes to stdout or stderr, runs no exit handler (``os._exit``), and is
killed if the parent is interrupted.

A fork is taken only where it is safe and pays: Linux, at least two usable cores, no other thread alive
in the process (forking a threaded process can copy a held lock), and enough work
(``MIN_RUNS``). ``CallContext.processes`` (``HPOHASH_PROCESSES`` on the command line) is 0 for that
automatic choice, 1 for never, 2 for always where safe (the tests).
"""

from __future__ import annotations

import fcntl
import marshal
import mmap
import os
import pickle
import select
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from hpohash.context import active


class ForkedChildError(Exception):
    """A second process met what only the parent may do (fall back to MLflow, say so): it stops, and
    the parent does its share of the work."""


#: runs below which a second process does not pay for its start (~5 ms) and the pickled result
MIN_RUNS = 5000


def why_not(runs: int) -> str | None:
    """None when a child may be forked for work over ``runs`` runs; else why not (for ``--verbose``)."""
    ctx = active()
    wanted = ctx.processes if ctx is not None else 0
    if wanted == 1:
        return "one process asked for"
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return "forking is used on Linux only"
    if len(os.sched_getaffinity(0)) < 2:
        return "one usable core"
    if threading.active_count() > 1:
        return "other threads are running"
    if wanted == 0 and runs < MIN_RUNS:
        return f"{runs} runs (fewer than {MIN_RUNS})"
    return None


class Child:
    """A forked child computing a sequence of values, received one by one (:meth:`received`), or as
    many as have arrived whole while the parent does its own work (:meth:`ready`)."""

    def __init__(self, pid: int, fd: int, codec: Framed) -> None:
        self.pid, self._fd, self._codec = pid, fd, codec
        #: after :meth:`received`: whether the child sent everything and ended well
        self.ok = False
        self._buffer = bytearray()  # bytes read from the pipe, not yet decoded
        self._ended = False  # the end mark arrived: everything before it was sent
        self._failed = False  # a value could not be read: the child's work is the parent's again

    def received(self) -> Iterator[Any]:
        """The child's values in order, each as it arrives (never the whole pickled result at once);
        after a failure (nothing more to read, a truncated value, a bad exit) it ends early and
        ``ok`` stays False: the caller then computes the rest itself."""
        try:
            while not self._failed:
                yield from self._whole()
                if self._ended:
                    break
                if not self._fill():
                    raise EOFError("the child's pipe ended before its end mark")
        except Exception:  # noqa: BLE001 - a child that died or sent something unreadable has failed
            self._failed = True
        if self._failed:
            self.stop()
            return
        self._close()
        self.ok = self._reap() == 0

    def ready(self) -> list[Any]:
        """The values that have arrived whole, without waiting for more: a parent that reads along
        between its own pieces of work keeps the child from waiting on a full pipe, and decodes what
        it sent meanwhile instead of all of it at the end. :meth:`received` gives the rest."""
        if self._ended or self._failed or self._fd < 0:
            return []
        try:
            for _ in range(READS_AT_ONCE):
                if not select.select([self._fd], [], [], 0)[0] or not self._fill():
                    break
            return self._whole()
        except Exception:  # noqa: BLE001 - as in ``received``: the caller does the rest itself
            self._failed = True
            return []

    def _fill(self) -> bool:
        """One read from the pipe into the buffer (waiting for it); False at the pipe's end."""
        data = os.read(self._fd, PIPE_BUFFER)
        self._buffer += data
        return bool(data)

    def _whole(self) -> list[Any]:
        """Every value whose frame (its length, then its bytes) is whole in the buffer, up to the end mark."""
        buffer, codec, values, at = self._buffer, self._codec, [], 0
        with memoryview(buffer) as view:
            while not self._ended and len(buffer) - at >= 8:
                size = int.from_bytes(view[at : at + 8], "little")
                if len(buffer) - at - 8 < size:
                    break
                value = codec.loads(view[at + 8 : at + 8 + size])
                at += 8 + size
                if isinstance(value, str) and value == _END:
                    self._ended = True
                else:
                    values.append(value)
        del buffer[:at]
        return values

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _reap(self) -> int:
        if self.pid <= 0:
            return -1
        _, status = os.waitpid(self.pid, 0)
        self.pid = 0
        return status

    def stop(self) -> None:
        """Kill and reap the child if it still runs (an interrupted parent leaves nothing behind)."""
        self._close()
        if self.pid > 0:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()


class Framed:
    """Each value sent whole behind its length (8 bytes), made by ``pickle`` or ``marshal``. A reader
    decodes a value from memory once all of it has arrived: ``marshal.load`` from a file asks the file
    for every object it decodes (a chunk of 500 runs took 12 ms to load that way, 1.6 ms from memory),
    and a parent reading along (``Child.ready``) never waits in the middle of a value."""

    def __init__(self, codec: Any, version: int) -> None:
        self._codec, self.version = codec, version

    def dump(self, value: Any, file: Any) -> None:
        data = self._codec.dumps(value, self.version)
        file.write(len(data).to_bytes(8, "little"))
        file.write(data)

    def loads(self, data: Any) -> Any:
        return self._codec.loads(data)


class Ends:
    """Items ``0 .. n-1`` shared out between a parent and its forked child from both ends: the child
    takes them from the front, the parent from the back, one at a time, until they meet. So whichever
    process is faster does more, and neither waits for the other longer than one item takes: a fixed
    half left the parent waiting up to 2 s for a child slowed by the pages it copies on write.

    The two ends live in shared memory; a take holds a POSIX record lock on it, which the kernel lets
    go if its holder dies, so a child that dies never blocks the parent.
    """

    def __init__(self, n: int) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - kept open until close(); unlinked at once
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, 16)
        self._map = mmap.mmap(self._fd, 16)
        self._ends = memoryview(self._map).cast("q")
        self._ends[0], self._ends[1] = 0, n

    def take(self, *, front: bool) -> int | None:
        """The next item from the front (the child) or the back (the parent); None when none is left."""
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            lo, hi = self._ends[0], self._ends[1]
            if lo >= hi:
                return None
            if front:
                self._ends[0] = lo + 1
                return lo
            self._ends[1] = hi - 1
            return hi - 1
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    @property
    def taken_from_front(self) -> int:
        """How many items the front has taken (they are ``0 .. taken_from_front - 1``)."""
        return int(self._ends[0])

    def close(self) -> None:
        self._ends.release()
        self._map.close()
        self._file.close()


#: ``codec`` for any picklable value (the default)
PICKLE = Framed(pickle, pickle.HIGHEST_PROTOCOL)
#: ``codec`` for plain tuples of strings and numbers (faster)
MARSHAL = Framed(marshal, marshal.version)
#: reads of the pipe one :meth:`Child.ready` makes at most (each up to ``PIPE_BUFFER`` bytes)
READS_AT_ONCE = 4


#: bytes buffered on each end of the pipe (and the pipe's own size when streaming)
PIPE_BUFFER = 1 << 20
#: the last value a child sends: everything before it arrived
_END = "hpohash.forked:end"


@contextmanager
def forked(
    work: Callable[[], Iterable[Any]],
    prepare: Callable[[], None] | None = None,
    *,
    stream: bool = False,
    codec: Framed = PICKLE,
) -> Iterator[Child | None]:
    """Start ``work()`` in a forked child (after ``prepare()`` there, e.g. a connection of its own) and
    yield a :class:`Child` whose ``received()`` are the values ``work()`` returns, or ``None`` when the
    fork failed. Leaving the block stops the child.

    By default the child computes all its values before it sends any (sending blocks until the parent
    reads), then pickles them one at a time. With ``stream`` it sends each value as it is made, for a
    parent that reads along (the SQL scan's ``received``, the audit's ``ready``). ``codec``: ``PICKLE``,
    or ``MARSHAL`` for plain tuples of strings and numbers (faster)."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        yield None
        return
    try:
        pid = os.fork()
    except OSError:  # out of processes or memory: the parent does the work
        os.close(read_fd)
        os.close(write_fd)
        yield None
        return
    if pid == 0:  # the child: compute, send, and leave without running the parent's exit handlers
        code = 1
        try:
            os.close(read_fd)
            if prepare is not None:
                prepare()
            values = work() if stream else list(work())
            with os.fdopen(write_fd, "wb", buffering=PIPE_BUFFER) as pipe:
                for value in values:
                    codec.dump(value, pipe)
                    pipe.flush()  # each value whole on its way: a child dying later loses only what follows
                codec.dump(_END, pipe)
            code = 0
        except BaseException:  # noqa: BLE001 - the parent redoes the work and meets the error itself
            pass
        finally:
            os._exit(code)
    os.close(write_fd)
    if stream:
        with suppress(OSError):  # a larger pipe lets the child read ahead of the parent (Linux only)
            fcntl.fcntl(read_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BUFFER)
    child = Child(pid, read_fd, codec)
    try:
        yield child
    finally:
        child.stop()
