"""verify's second process (hpohash/forked.py, ``audit_per_study``): the first studies audited in a forked
child while the parent audits the rest. The contract is the one-process report, byte for byte, and
whatever goes wrong in the child, the parent audits those studies itself. Every store here is real
(SQLite in-process, a real ``mlflow server``); only the child's failures are forced."""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpohash import forked
from hpohash.context import CallContext, call_context
from tests.builders import Builder

ROOT = Path(__file__).resolve().parents[1]


def legacy_store(b: Builder, studies: int = 4) -> str:
    """Legacy and current studies, a link across studies, a deleted trial and an orphan: every kind of
    finding the per-study split must keep in its place."""
    exp, name = b.experiment("forked")
    built = []
    for i in range(studies):
        s = b.study(exp, model="bert" if i % 2 else "resnet")
        if i % 2 == 0:
            b.make_legacy(s, link_refit=i == 2)
        built.append(s)
    b.set(built[-1].refit, code__refit__of_trial_run_id=built[0].trials[0])  # a link across studies
    b.client.delete_run(built[1].trials[0])
    b.run(exp, "stray", {"code.stage": "hpo", "mlflow.parentRunId": "gone", "code.hpo.trial_number": "1"})
    return name


def verify(uri: str, name: str, processes: str, patch: str = "") -> subprocess.CompletedProcess[str]:
    """``hpohash --verbose verify … --format json`` as a process of its own: the suite's process may hold
    threads other tests left (a second process is never forked beside other threads). ``patch``: Python
    run first, to force a failure in the child."""
    code = f"import sys\n{patch}\nfrom hpohash.cli import entry\nsys.argv[0] = 'hpohash'\nentry()"
    args = ["verify", "--verbose", "--tracking-uri", uri, "-e", name, "--format", "json"]
    env = {**os.environ, "HPOHASH_PROCESSES": processes, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd)


def child_takes(n: int) -> str:
    """Python run first: the parent, once it has taken the last study, waits (up to 30 s) until the
    child has taken ``n`` from the front (``forked.Ends``), so the split is known; else a small store's
    parent may audit every study before the child has started."""
    return (
        "import os, time, hpohash.forked as f\n"
        "PARENT, take = os.getpid(), f.Ends.take\n"
        "def take_late(self, *, front):\n"
        "    i, deadline = take(self, front=front), time.monotonic() + 30\n"
        f"    while not front and os.getpid() == PARENT and self.taken_from_front < {n}:\n"
        "        assert time.monotonic() < deadline, 'the child took nothing in 30 s'\n"
        "        time.sleep(0.01)\n"
        "    return i\n"
        "f.Ends.take = take_late\n"
    )


def test_two_processes_give_the_one_process_report_byte_for_byte(builder: Builder) -> None:
    name = legacy_store(builder)
    one = verify(builder.uri, name, "1")
    # the child takes three studies and sends each as it would a batch
    two = verify(builder.uri, name, "2", patch=child_takes(3) + "import hpohash.audit as a; a.BATCH_RUNS = 1")
    assert one.returncode == two.returncode == 1, two.stderr
    assert two.stdout == one.stdout
    doc = json.loads(two.stdout)
    assert len(doc["studies"]) == 4 and {f["code"] for f in doc["findings"]} >= {"HH110", "HH112", "HH150"}
    assert "hpohash: audited 3 of 4 studies in a second process\n" in two.stderr
    assert "second process" not in one.stderr


def test_two_processes_over_http_give_the_one_process_report(http_builder: Builder) -> None:
    name = legacy_store(http_builder, studies=3)
    one = verify(http_builder.uri, name, "1")
    two = verify(http_builder.uri, name, "2", patch=child_takes(2))
    assert two.stdout == one.stdout and two.returncode == one.returncode == 1, two.stderr
    assert "hpohash: audited 2 of 3 studies in a second process\n" in two.stderr


#: Python run before the CLI, to fail the child in one way; the parent never calls what is patched
BROKEN_START = (  # Tracking.forked runs in the child only
    "import hpohash.tracking as t\n"
    "def forked(self): raise RuntimeError('the child cannot start')\n"
    "t.Tracking.forked = forked"
)
DIES_AFTER_TWO_BATCHES = (  # the parent never sends; the audit's child pickles, the scan's marshals
    "import os, hpohash.audit as a, hpohash.forked as f\n"
    "a.BATCH_RUNS = 1\n"
    "dump, sent = f.Framed.dump, []\n"
    "def dies(self, value, pipe):\n"
    "    if self is f.PICKLE and len(sent) == 2:\n"
    "        pipe.flush(); os._exit(3)\n"
    "    sent.append(value) if self is f.PICKLE else None\n"
    "    dump(self, value, pipe)\n"
    "f.Framed.dump = dies"
)
SQL_READ_FAILS = (  # the objective metric is read by SQL during the audit
    "import hpohash.sqlread as s\n"
    "def fails(*args): raise OSError('disk I/O error')\n"
    "def forked(self): self.latest_metric = fails\n"
    "s.SqlReader.forked = forked"
)


@pytest.mark.parametrize(
    ("studies", "patch", "said"),
    [
        (4, BROKEN_START, "the second process failed before it audited a study: audited them all here"),
        (
            6,
            child_takes(3) + DIES_AFTER_TWO_BATCHES,  # it sends each study's batch as it is made
            "the second process auditing 3 studies failed after 2: audited the rest here",
        ),
        (
            4,
            child_takes(1) + SQL_READ_FAILS,
            "the second process auditing 1 study failed after 0: audited the rest here",
        ),
    ],
    ids=["fails-at-start", "dies-part-way", "sql-read-fails"],
)
def test_whatever_the_second_process_fails_the_parent_audits_what_it_did_not_send(
    builder: Builder, studies: int, patch: str, said: str
) -> None:
    """The report is the one-process report; a failed SQL read in the child never switches the command
    to MLflow (the parent, which the child cannot tell, keeps reading by SQL)."""
    name = legacy_store(builder, studies=studies)
    one = verify(builder.uri, name, "1")
    two = verify(builder.uri, name, "2", patch=patch)
    assert two.stdout == one.stdout and two.returncode == 1, two.stderr
    assert f"hpohash: {said}\n" in two.stderr
    assert "search_runs" not in two.stderr


#: chunks of three runs, so a small store's SQL scan is read in many chunks, every other one by a child
SMALL_CHUNKS = "import hpohash.sqlread as s\ns.CHUNK = 3\n"
READER_DIES = SMALL_CHUNKS + (  # the parent never sends
    "import os, hpohash.forked as f\n"
    "dump, sent = f.Framed.dump, []\n"
    "def dies(self, value, pipe):\n"
    "    if len(sent) == 2:\n"
    "        pipe.write(b'\\x40' + bytes(7) + b'cut'); pipe.flush(); os._exit(3)\n"
    "    sent.append(value); dump(self, value, pipe)\n"
    "f.Framed.dump = dies"
)
READER_READ_FAILS = SMALL_CHUNKS + (  # SqlReader.forked runs in the children only
    "def fails(*args): raise OSError('disk I/O error')\n"
    "def forked(self): self._read_chunk = fails\n"
    "s.SqlReader.forked = forked"
)
READ_IN_CHILD = re.compile(r"hpohash: read (\d+) of (\d+) chunks of runs in a second process\n")


def test_a_second_process_reads_every_other_chunk_of_a_sql_scan(builder: Builder) -> None:
    name = legacy_store(builder)
    one = verify(builder.uri, name, "1", patch=SMALL_CHUNKS)
    two = verify(builder.uri, name, "2", patch=SMALL_CHUNKS)
    assert two.stdout == one.stdout and two.returncode == one.returncode == 1, two.stderr
    found = READ_IN_CHILD.search(two.stderr)
    assert found is not None, two.stderr
    assert (int(found.group(1)), int(found.group(2))) == (3, 7)  # the store's HPO runs: 7 chunks of 3
    assert "second process" not in one.stderr


@pytest.mark.parametrize(
    ("patch", "said"),
    [
        (READER_DIES, r"the second process reading runs stopped after 2 of \d+ chunks: read the rest here"),
        (READER_READ_FAILS, r"the second process reading runs stopped after 0 of \d+ chunks: read the rest here"),
    ],
    ids=["dies-part-way", "read-fails"],
)
def test_whatever_the_reading_process_fails_the_parent_reads_what_it_did_not_send(
    builder: Builder, patch: str, said: str
) -> None:
    """The report is the one-process report, and the parent goes on reading by SQL (the failure was
    the child's)."""
    name = legacy_store(builder)
    one = verify(builder.uri, name, "1", patch=SMALL_CHUNKS)
    two = verify(builder.uri, name, "2", patch=patch)
    assert two.stdout == one.stdout and two.returncode == 1, two.stderr
    assert re.search(f"hpohash: {said}\n", two.stderr), two.stderr
    assert "search_runs" not in two.stderr


def test_a_framed_value_is_read_whole_or_not_at_all() -> None:
    """``MARSHAL`` sends each value behind its length: one cut short (a child dying while it sends) is
    a failure of the child, never a value decoded from part of the bytes; what came whole before it
    is received."""
    value = [("run", "1", ("k",), ("v",), 1.5), ("run2", None, (), (), 0)]
    frame = io.BytesIO()
    forked.MARSHAL.dump(value, frame)
    whole = frame.getvalue()
    for cut in (0, 3, 8, len(whole) - 1):
        read_fd, write_fd = os.pipe()
        os.write(write_fd, whole + whole[:cut])
        os.close(write_fd)  # the child's end closed: it stopped part way through the second value
        child = forked.Child(0, read_fd, forked.MARSHAL)  # no process to reap: only the pipe is read
        assert list(child.received()) == [value], cut


def test_both_ends_take_every_study_once_the_child_from_the_front() -> None:
    ends = forked.Ends(300)
    try:
        with forked.forked(lambda: iter(lambda: ends.take(front=True), None)) as child:
            assert child is not None
            mine = list(iter(lambda: ends.take(front=False), None))
            theirs = list(child.received())
        assert child.ok and ends.taken_from_front == len(theirs)
        assert theirs == list(range(len(theirs))) and mine == list(range(299, len(theirs) - 1, -1))
    finally:
        ends.close()


def test_a_child_killed_while_it_holds_the_ends_blocks_nobody() -> None:
    """The ends are guarded by a POSIX record lock: the kernel lets it go with its holder."""
    ends = forked.Ends(3)

    def hold() -> Iterator[str]:
        fcntl.lockf(ends._fd, fcntl.LOCK_EX)
        yield "held"
        time.sleep(60)

    try:
        with forked.forked(hold, stream=True) as child:
            assert child is not None
            assert next(iter(child.received())) == "held"
            with pytest.raises(OSError):  # held by the child: the parent would wait
                fcntl.lockf(ends._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            child.stop()
        assert ends.take(front=False) == 2 and ends.take(front=True) == 0 and ends.taken_from_front == 1
    finally:
        ends.close()


def test_ready_takes_what_has_arrived_whole_without_waiting_for_more() -> None:
    """The audit's parent reads along between its own studies (``Child.ready``): it gets what has
    arrived, in order, never part of a value (one larger than the pipe comes in pieces), and never
    waits for a child that has nothing to send yet; ``received`` then gives the rest."""
    go_on_read, go_on_write = os.pipe()
    large = bytes(range(256)) * 12_000  # ~3 MB: several reads of the pipe

    def work() -> Iterator[object]:
        yield 1
        yield (2, "two")
        os.read(go_on_read, 1)  # until the parent says so
        yield large
        yield 4

    try:
        with forked.forked(work, stream=True) as child:
            assert child is not None
            got: list[object] = []
            deadline = time.monotonic() + 30
            while len(got) < 2:
                assert time.monotonic() < deadline, "the child's first values never came"
                got += child.ready()
            assert got == [1, (2, "two")]
            assert child.ready() == []  # the child waits for us: ready did not wait for it
            os.write(go_on_write, b"x")
            while len(got) < 3:
                assert time.monotonic() < deadline, "the large value never came whole"
                got += child.ready()
            got += child.received()
            assert got[2:] == [large, 4] and child.ok
            assert child.ready() == []
    finally:
        os.close(go_on_read)
        os.close(go_on_write)


def test_an_interrupted_parent_leaves_no_child_behind() -> None:
    with pytest.raises(KeyboardInterrupt), forked.forked(lambda: [time.sleep(60)]) as child:
        assert child is not None
        pid = child.pid
        raise KeyboardInterrupt
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # killed and reaped: no zombie, nothing left running


def test_values_arrive_one_by_one_and_a_signal_death_is_a_failure() -> None:
    with forked.forked(lambda: [1, (2, "two"), None]) as child:
        assert child is not None
        assert list(child.received()) == [1, (2, "two"), None] and child.ok
    with forked.forked(lambda: [os.kill(os.getpid(), signal.SIGKILL)]) as child:
        assert child is not None
        assert list(child.received()) == [] and not child.ok


def test_when_no_second_process_is_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    with call_context(CallContext(processes=1)):
        assert forked.why_not(10**6) == "one process asked for"
    monkeypatch.setattr(forked.threading, "active_count", lambda: 1)  # other tests may leave threads behind
    with call_context(CallContext(processes=0)):
        monkeypatch.setattr(forked.os, "sched_getaffinity", lambda pid: {0, 1})
        assert forked.why_not(forked.MIN_RUNS - 1) == f"{forked.MIN_RUNS - 1} runs (fewer than {forked.MIN_RUNS})"
        assert forked.why_not(forked.MIN_RUNS) is None
        monkeypatch.setattr(forked.os, "sched_getaffinity", lambda pid: {0})
        assert forked.why_not(forked.MIN_RUNS) == "one usable core"
    with call_context(CallContext(processes=2)):
        monkeypatch.setattr(forked.os, "sched_getaffinity", lambda pid: {0, 1})
        monkeypatch.setattr(forked.threading, "active_count", lambda: 2)
        assert forked.why_not(1) == "other threads are running"
