"""The HTTP path against a real `mlflow server` subprocess on 127.0.0.1: verify, thread-pooled
backfill, and a backfill interrupted by the server going away, then resumed and undone."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from mlflow.entities import ViewType

from hpohash.tracking import Tracking
from tests.builders import EXPECTED, Builder

pytestmark = pytest.mark.server

C01 = EXPECTED["c01_realistic.yaml"]


@pytest.fixture(params=["sqlite", "postgresql"])
def mlflow_server(request: pytest.FixtureRequest):
    """Every test here runs against a server on SQLite and one on PostgreSQL (``http_builder`` too)."""
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_mlflow_server")


def tags_of(b: Builder, exp_id: str) -> dict[str, dict[str, str]]:
    runs = b.client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)
    return {r.info.run_id: dict(r.data.tags) for r in runs}


def many_trials(n: int) -> tuple[tuple[dict, ...], tuple[float, ...]]:
    hps = tuple({"learning_rate": 1e-5 + i * 1e-7, "batch_size": 8 if i % 2 else 16, "dropout": 0.1,
                 "weight_decay": 0.01} for i in range(n))  # fmt: skip
    return hps, tuple(0.5 + i / 100 for i in range(n))


def test_verify_over_http(run_cli, http_builder: Builder) -> None:
    exp, name = http_builder.experiment()
    s = http_builder.study(exp, folds=1)
    legacy = http_builder.study(exp, config_format="json")
    http_builder.make_legacy(legacy)
    r = run_cli(["verify", "--tracking-uri", http_builder.uri, "-e", name, "--format", "json"])
    assert r.out, r.err
    doc = json.loads(r.out)
    assert r.code == 1
    assert doc["tracking_uri"] == http_builder.uri
    assert {f["parent_run_id"] for f in doc["findings"]} == {legacy.parent}
    assert [st["recomputed_study_key_hash"] for st in doc["studies"]] == [C01["study_key_hash_v2"]] * 2
    assert doc["summary"]["trials"] == 6 and s.parent in {st["parent_run_id"] for st in doc["studies"]}


def test_backfill_over_http_uses_threads_and_is_exact(
    run_cli, http_builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, name = http_builder.experiment()
    hps, scores = many_trials(12)
    s = http_builder.study(exp, hps=hps, scores=scores)
    http_builder.make_legacy(s)
    before = tags_of(http_builder, exp)
    threads: set[str] = set()
    original = Tracking.set_tags

    def spy(self: Tracking, run_id: str, tags: dict) -> None:
        threads.add(threading.current_thread().name)
        original(self, run_id, tags)

    monkeypatch.setattr(Tracking, "set_tags", spy)
    r = run_cli(
        [
            "backfill",
            "--tracking-uri",
            http_builder.uri,
            "-e",
            name,
            "--yes",
            "--format",
            "json",
            "--journal",
            str(tmp_path / "j.jsonl"),
        ]
    )
    assert r.code == 0, r.err
    assert json.loads(r.out)["summary"]["runs_written"] == 13
    assert len(threads) > 1  # the bounded pool, not one sequential loop
    assert run_cli(["verify", "--tracking-uri", http_builder.uri, "-e", name]).code == 0
    assert http_builder.tags(s.refit)["code.refit.of_trial_run_id"] == s.trials[11]
    r = run_cli(["undo", str(tmp_path / "j.jsonl"), "--tracking-uri", http_builder.uri, "--yes", "--quiet"])
    assert r.code == 0, r.err
    assert tags_of(http_builder, exp) == before


def test_interrupted_backfill_resumes_and_undoes(
    run_cli, mlflow_server, http_builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server dies after a few writes; the journal is complete; a rerun finishes; undo restores all."""
    exp, name = http_builder.experiment()
    hps, scores = many_trials(30)
    s = http_builder.study(exp, hps=hps, scores=scores)
    http_builder.make_legacy(s)
    original_tags = tags_of(http_builder, exp)

    calls = {"n": 0}
    lock = threading.Lock()
    original = Tracking.set_tags

    def dies_after_five(self: Tracking, run_id: str, tags: dict) -> None:
        with lock:
            calls["n"] += 1
            if calls["n"] == 6:
                mlflow_server.stop()  # a real outage: every later request is refused
        original(self, run_id, tags)

    j1, j2 = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    monkeypatch.setattr(Tracking, "set_tags", dies_after_five)
    r = run_cli(
        [
            "backfill",
            "--tracking-uri",
            mlflow_server.uri,
            "-e",
            name,
            "--yes",
            "--format",
            "json",
            "--workers",
            "1",
            "--journal",
            str(j1),
        ]
    )
    monkeypatch.undo()  # the server is back later; writes go through the real method again
    assert r.code == 3, r.err
    first = json.loads(r.out)
    # one worker: five writes land, the sixth meets the outage, four more fail (five backend
    # failures in a row), and the remaining 21 runs are not attempted
    assert (first["summary"]["runs_written"], first["summary"]["runs_failed"]) == (5, 26)
    errors = [f["error"] for f in first["failures"]]
    assert all("tracking backend failed" in e for e in errors[:5]), errors[:6]
    assert all("not attempted" in e for e in errors[5:]), errors[:6]

    # every run written is in the journal with all of its tags (journal first, then the write);
    # runs never attempted are not
    journal = [json.loads(x) for x in j1.read_text().splitlines()[1:]]
    journaled = {e["run_id"] for e in journal}
    failed = {f["run_id"] for f in first["failures"]}
    written = {c["run_id"] for c in first["changes"]} - failed
    tried_and_failed = {f["run_id"] for f in first["failures"] if "tracking backend failed" in f["error"]}
    assert journaled == written | tried_and_failed and len(journaled) == 10
    for rid in journaled:
        assert {e["key"] for e in journal if e["run_id"] == rid} == {
            c["key"] for c in first["changes"] if c["run_id"] == rid
        }

    mlflow_server.start()
    mid = tags_of(http_builder, exp)
    assert {rid for rid in mid if mid[rid] != original_tags[rid]} == written

    r = run_cli(
        ["backfill", "--tracking-uri", mlflow_server.uri, "-e", name, "--yes", "--format", "json", "--journal", str(j2)]
    )
    assert r.code == 0, r.err
    second = json.loads(r.out)
    assert {c["run_id"] for c in second["changes"]} == {c["run_id"] for c in first["changes"]} - written
    assert run_cli(["verify", "--tracking-uri", mlflow_server.uri, "-e", name]).code == 0

    r = run_cli(["undo", str(j1), str(j2), "--tracking-uri", mlflow_server.uri, "--yes", "--format", "json"])
    assert r.code == 0, r.err
    assert tags_of(http_builder, exp) == original_tags


def test_verify_since_over_http(run_cli, http_builder: Builder) -> None:
    """--since through the server: the start-time and `IS NULL` filters run in its database."""
    import time

    exp, name = http_builder.experiment()
    now = int(time.time() * 1000)
    old = http_builder.study(exp, model="old", start_time=now - 10 * 86_400_000)
    new = http_builder.study(exp, model="new", start_time=now - 3_600_000)
    http_builder.make_legacy(old)
    r = run_cli(["verify", "--tracking-uri", http_builder.uri, "-e", name, "--since", "1d", "--format", "json"])
    doc = json.loads(r.out)
    assert r.code == 0, r.err
    assert [st["parent_run_id"] for st in doc["studies"]] == [new.parent]
    assert (doc["summary"]["studies"], doc["summary"]["studies_skipped"], doc["findings"]) == (1, 1, [])


def test_scan_reads_pages_ahead_with_the_servers_own_tokens(
    run_cli, http_builder: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over HTTP the next pages are requested while one is reduced, with the offset tokens the server
    itself returns: the same runs in the same order, and the same JSON, as one page at a time; a
    store whose tokens are not offset tokens is paged one token at a time."""
    from mlflow import MlflowClient

    import hpohash.tracking as tracking

    exp, name = http_builder.experiment()
    hps, scores = many_trials(10)
    legacy = http_builder.study(exp, hps=hps, scores=scores)
    http_builder.make_legacy(legacy)
    http_builder.study(exp, model="bert")
    monkeypatch.setattr(tracking, "PAGE_SIZE", 3)
    calls: list[tuple[str | None, str]] = []
    real = MlflowClient.search_runs

    def recording(self, *a, **kw):
        calls.append((kw.get("page_token"), threading.current_thread().name))
        return real(self, *a, **kw)

    monkeypatch.setattr(MlflowClient, "search_runs", recording)

    def scan(ahead: int) -> tuple[list[str], list[tuple[str | None, str]]]:
        monkeypatch.setattr(tracking, "READ_AHEAD_HTTP", ahead)
        calls.clear()
        ids = [r.run_id for r in Tracking(http_builder.uri).scan([exp])]
        return ids, list(calls)

    one_by_one, sequential = scan(0)
    assert len(one_by_one) == len(set(one_by_one)) == 12 + 5 and len(sequential) == 6
    ahead_ids, ahead_calls = scan(2)
    assert ahead_ids == one_by_one
    tokens = [t for t, _ in sequential]
    # every token a sequential scan sends, once each, and at most the two beyond the last page; two
    # pages read ahead are requested at once, so the server may see them in either order
    sent = Counter(t for t, _ in ahead_calls)
    beyond = [t for t in sent if t not in tokens]
    assert all(sent[t] == 1 for t in tokens) and len(beyond) <= 2 and sum(sent.values()) == len(tokens) + len(beyond)
    assert sum(1 for _, who in ahead_calls if who.startswith("hpohash-page")) >= len(tokens) - 1

    verify = ["verify", "--tracking-uri", http_builder.uri, "-e", name, "--format", "json"]
    r_ahead = run_cli(verify)
    monkeypatch.setattr(tracking, "READ_AHEAD_HTTP", 0)
    r_seq = run_cli(verify)
    assert (r_ahead.code, r_ahead.out) == (r_seq.code, r_seq.out) and r_seq.code == 1

    # another store's tokens (opaque here): followed as given, no page requested ahead
    opaque: dict[str, str] = {}

    def opaque_tokens(self, *a, page_token=None, **kw):
        page = real(self, *a, page_token=opaque.get(page_token, page_token), **kw)
        if page.token:
            opaque[f"opaque-{len(opaque)}"] = page.token
            page.token = f"opaque-{len(opaque) - 1}"
        calls.append((page_token, threading.current_thread().name))
        return page

    monkeypatch.setattr(MlflowClient, "search_runs", opaque_tokens)
    opaque_ids, opaque_calls = scan(2)
    assert opaque_ids == one_by_one and len(opaque_calls) == 6
    assert not any(who.startswith("hpohash-page") for _, who in opaque_calls)
