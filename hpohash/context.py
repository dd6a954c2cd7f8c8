"""The state one library call carries: what it has written, the secrets it must not print, the GC pause,
the second process.

Plain data at the bottom of the house (no hpohash import): ``redact``, ``perf`` and ``writes`` read
the call's context from here.

Nothing here is process-wide. Each ``api`` call runs in a :class:`CallContext` of its own (or in the
one its caller opened, as the CLI does to tell a Ctrl-C what was written), held in a context
variable, so a notebook calling ``hpohash.verify()`` twice, or two threads calling it at once, never
see each other's ledger or secrets. A thread starts with no context variables, so every worker a
call starts runs its work through :func:`carried`, in the call's own context.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class WriteLedger:
    """What this call has written so far: the truth a Ctrl-C message tells (SPEC §5, exit 130).

    Mutable on purpose: worker threads update it as writes land, and the CLI reads it when
    interrupted, wherever the interrupt arrived.
    """

    command: str | None = None
    journal: str | None = None
    runs_written: int = 0
    tags_written: int = 0
    in_flight: set[str] = field(default_factory=set)
    #: Ctrl-C was pressed (the CLI notes it): no further write starts, even where Python dropped the
    #: ``KeyboardInterrupt`` itself (raised inside a weakref callback, it is only printed)
    interrupted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def interrupted_message(self) -> str:
        with self.lock:
            runs, tags, flying, journal = self.runs_written, self.tags_written, len(self.in_flight), self.journal
        if journal is None:
            return "interrupted: nothing written"
        text = f"interrupted: {runs} run(s) written ({tags} tags)"
        if flying:
            text += f", {flying} more run(s) were being written and may or may not have landed"
        return (
            f"{text}; every one is in the journal {journal}. To finish, rerun the same {self.command or 'command'}; "
            f"to go back, run: hpohash undo {journal}"
        )


@dataclass
class Secrets:
    """The literal secrets one call masks (``hpohash.redact.Redactor`` adds to them and applies them)."""

    literals: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass
class CallContext:
    """One call's ledger, secrets, whether it may pause the garbage collector (see ``perf``) and
    whether it may fork a second process for part of its work (see ``forked``)."""

    ledger: WriteLedger = field(default_factory=WriteLedger)
    secrets: Secrets = field(default_factory=Secrets)
    pause_gc: bool = True
    #: 0 auto (a second process where safe and the scope is large), 1 never, 2 wherever safe
    processes: int = 0


_CURRENT: ContextVar[CallContext | None] = ContextVar("hpohash_call", default=None)


def current() -> CallContext:
    """The context of the call in progress; outside any call, a fresh one nobody else sees."""
    ctx = _CURRENT.get()
    return ctx if ctx is not None else CallContext()


def active() -> CallContext | None:
    return _CURRENT.get()


@contextmanager
def call_context(ctx: CallContext | None = None) -> Iterator[CallContext]:
    """Run a library call in ``ctx``; with none, in the caller's open context, else in a new one."""
    chosen = ctx or _CURRENT.get() or CallContext()
    token = _CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        _CURRENT.reset(token)


def carried(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` as a worker thread of this call runs it: in the call's context (its secrets to mask and
    its ledger), which a new thread would not otherwise see."""
    call = _CURRENT.get()
    if call is None:
        return fn

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _CURRENT.set(call)
        try:
            return fn(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return run
