"""Partitioned scans over HTTP: one search read as start-time parts at once, against the session's
real `mlflow server` (SQLite and PostgreSQL), with pages of a few runs so a few dozen runs make
several pages a part; the same runs in the same order, and the same verify JSON, for every K."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient

import hpohash.tracking as tr
from hpohash import partitions
from hpohash.capabilities import for_family
from hpohash.partitions import Split, auto_parts, read_parts, split_by_offsets, split_by_time
from hpohash.settings import BackendSettings
from hpohash.tracking import Tracking
from tests.builders import Builder
from tests.proxy import Profile, RestrictedProxy

BASE = 1_700_000_000_000

# ------------------------------------------------------------------------------------------ pure parts


def test_parts_are_half_open_ranges_newest_first() -> None:
    assert Split((300, 200, 100)).filters() == [
        "attributes.start_time >= 300",
        "attributes.start_time >= 200 AND attributes.start_time < 300",
        "attributes.start_time >= 100 AND attributes.start_time < 200",
        "attributes.start_time < 100",
    ]
    assert Split().filters() == [""] and Split().parts == 1


def _probe_over(times: list[int], asked: list[int]):
    """The start time at each offset of a scan of ``times`` (newest first), noting what was asked."""
    ordered = sorted(times, reverse=True)

    def probe(offset: int) -> int | None:
        asked.append(offset)
        return ordered[offset] if offset < len(ordered) else None

    return probe


def test_offsets_place_boundaries_at_equal_run_counts_with_few_requests() -> None:
    # 1,000 runs, the newest 900 in the last tenth of the time range: cutting the time range evenly
    # would put 9 in 10 runs in one part; cutting by counts gives parts of about 250
    times = [BASE + i for i in range(100)] + [BASE + 1_000_000 + i for i in range(900)]
    asked: list[int] = []
    split = split_by_offsets(_probe_over(times, asked), 100, 4)
    # doubling 100..1600 (5), two halvings (1200, 1000), three boundaries (none probed before)
    assert asked == [100, 200, 400, 800, 1600, 1200, 1000, 225, 450, 675]
    assert split.requests == len(asked) == 10 and split.runs_estimate == 900 and split.parts == 4
    sizes = [sum(1 for t in times if eval_part(t, f)) for f in split.filters()]
    assert sum(sizes) == 1000 and max(sizes) <= 350


def eval_part(t: int, flt: str) -> bool:
    ok = True
    for clause in filter(None, flt.split(" AND ")):
        op, value = clause.split()[1], int(clause.split()[2])
        ok &= t >= value if op == ">=" else t < value
    return ok


def test_one_page_or_less_is_never_split_and_auto_stops_at_four() -> None:
    asked: list[int] = []
    assert split_by_offsets(_probe_over([BASE] * 100, asked), 100, 0) == Split(requests=1)
    assert asked == [100]
    assert (auto_parts(1500), auto_parts(2500), auto_parts(100_000)) == (1, 2, 4)
    # runs sharing one start time cannot be cut: one boundary at most, never a part twice
    assert split_by_offsets(_probe_over([BASE] * 500, []), 100, 4).bounds == (BASE,)
    assert split_by_time(BASE + 99, BASE, 4).bounds == (BASE + 75, BASE + 50, BASE + 25)
    assert split_by_time(BASE, BASE, 4) == Split()


def test_parts_are_read_at_once_and_handed_on_in_order() -> None:
    gate = threading.Event()

    def part(i: int):
        def items() -> Iterator[str]:
            if i == 0:
                assert gate.wait(5)  # part 0 waits until the last part has run: all run at once
            yield from (f"{i}-{j}" for j in range(3))
            if i == 2:
                gate.set()

        return items

    assert list(read_parts([part(i) for i in range(3)])) == [f"{i}-{j}" for i in range(3) for j in range(3)]

    def failing() -> Iterator[str]:
        raise RuntimeError("part 1 failed")
        yield ""

    with pytest.raises(RuntimeError, match="part 1 failed"):
        list(read_parts([part(2), failing]))


# ------------------------------------------------------------------------------------------ a real server


@pytest.fixture(params=["sqlite", "postgresql"])
def mlflow_server(request: pytest.FixtureRequest):
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_mlflow_server")


def _scan(uri: str, exp: str | list[str], parts: int) -> tuple[list[str], list[tuple[int, str, str]]]:
    calls: list[tuple[int, str, str]] = []
    real = MlflowClient.search_runs

    def recording(self, *a, **kw):
        calls.append((kw.get("max_results"), kw.get("filter_string", ""), threading.current_thread().name))
        return real(self, *a, **kw)

    real_part = Tracking._scan_search

    def part(self, *a, **kw):  # the thread each part's page loop runs on (requests run on the watch's)
        calls.append((-1, "", threading.current_thread().name))
        yield from real_part(self, *a, **kw)

    MlflowClient.search_runs = recording  # type: ignore[method-assign]
    Tracking._scan_search = part  # type: ignore[method-assign]
    try:
        exps = [exp] if isinstance(exp, str) else exp
        ids = [r.run_id for r in Tracking(uri, settings=BackendSettings(scan_parts=parts)).scan(exps)]
    finally:
        MlflowClient.search_runs = real  # type: ignore[method-assign]
        Tracking._scan_search = real_part  # type: ignore[method-assign]
    return ids, calls


def test_parts_give_the_one_scans_runs_in_its_order(http_builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 runs in groups of 5 sharing a start time, pages of 4: the first page (offsets 0-3, all of
    the newest group) gives no run newer than its last, so all 40 are split; a boundary falls inside
    a group (offset 18 of 15-19), whose runs all land in one part; every K gives the one scan's ids
    in its order, auto (0) included."""
    exp, _ = http_builder.experiment()
    for i in range(40):
        http_builder.client.create_run(exp, run_name=f"r{i}", start_time=BASE + (i // 5) * 1000)
    monkeypatch.setattr(tr, "PAGE_SIZE", 4)
    monkeypatch.setattr(partitions, "AUTO_RUNS_PER_PART", 4)
    # start_time taken as accepted: the requests counted are the split's own
    monkeypatch.setitem(tr._LEARNED, http_builder.uri, for_family("http").learn("start_time", True, "test"))
    one, calls = _scan(http_builder.uri, exp, 1)
    assert len(one) == len(set(one)) == 40 and all("start_time" not in f for _, f, _ in calls)
    assert [who for n, _, who in calls if n == -1] == ["MainThread"]
    direct = [r.info.run_id for r in http_builder.client.search_runs([exp], max_results=100)]
    assert one == direct
    for k in (2, 4, 0):
        ids, calls = _scan(http_builder.uri, exp, k)
        assert ids == one, k
        probes = [c for c in calls if c[0] == 1]
        # doubling 4..64, halvings 48 and 40 (about 36 runs), one request a boundary
        assert len(probes) == 5 + 2 + (k or 4) - 1, (k, probes)
        assert [f for n, f, _ in calls if n == 4 and "start_time" not in f] == [""]  # the first page
        parts = {f for n, f, _ in calls if n == 4 and "start_time" in f}
        assert len(parts) == (k or 4), (k, parts)
        readers = [who for n, _, who in calls if n == -1]
        assert len(readers) == (k or 4) + 1 and all(w.startswith("hpohash-part") for w in readers), readers
        if k == 4:  # the tied group at offsets 15..19 (start time BASE + 4000) is a boundary
            below = f"attributes.start_time < {BASE + 7001}"
            assert (
                f"{below} AND attributes.start_time >= {BASE + 4000} AND attributes.start_time < {BASE + 6000}" in parts
            )


def test_verify_json_is_the_same_for_every_k(run_cli, http_builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_http_server import many_trials

    exp, name = http_builder.experiment()
    hps, scores = many_trials(12)
    legacy = http_builder.study(exp, hps=hps, scores=scores)
    http_builder.make_legacy(legacy)
    http_builder.study(exp, model="bert", hps=hps, scores=scores)
    monkeypatch.setattr(tr, "PAGE_SIZE", 3)
    monkeypatch.setattr(partitions, "AUTO_RUNS_PER_PART", 3)
    verify = ["verify", "--tracking-uri", http_builder.uri, "-e", name, "--format", "json", "--verbose"]
    outs = {}
    for k in ("1", "2", "4", ""):
        monkeypatch.setenv("HPOHASH_SCAN_PARTS", k)
        r = run_cli(verify)
        outs[k] = (r.code, r.out)
        said = "start-time parts at once" in r.err
        assert said == (k != "1"), (k, r.err)
    assert len(set(outs.values())) == 1 and outs["1"][0] == 1
    assert {f["parent_run_id"] for f in json.loads(outs["1"][1])["findings"]} == {legacy.parent}


def test_a_server_refusing_start_time_is_read_in_one_scan(
    run_cli, sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a dialect without start_time filters: one sequential scan, the same JSON as direct."""
    from tests.test_http_server import many_trials

    b = Builder(sqlite_mlflow_server.uri)
    exp, name = b.experiment()
    hps, scores = many_trials(12)
    b.make_legacy(b.study(exp, hps=hps, scores=scores))
    monkeypatch.setattr(tr, "PAGE_SIZE", 3)
    monkeypatch.setenv("HPOHASH_SCAN_PARTS", "4")
    proxy = RestrictedProxy(sqlite_mlflow_server.uri, Profile("no-start-time", start_time=True, opaque_tokens=False))
    proxy.start()
    try:
        direct = run_cli(["verify", "--tracking-uri", b.uri, "-e", name, "--format", "json"])
        proxy.reset_counts()
        r = run_cli(["verify", "--tracking-uri", proxy.uri, "-e", name, "--format", "json"])
        assert (r.code, r.out.replace(proxy.uri, b.uri)) == (direct.code, direct.out) and r.code == 1
        assert proxy.refused["start_time"] == 1  # the one probe; no part was ever asked for
        ids = [run.run_id for run in Tracking(proxy.uri, settings=BackendSettings(scan_parts=4)).scan([exp])]
        assert ids == [run.run_id for run in Tracking(b.uri, settings=BackendSettings(scan_parts=1)).scan([exp])]
        assert proxy.refused["start_time"] == 1
    finally:
        proxy.stop()


def test_opaque_tokens_split_the_time_range_evenly_when_asked(
    sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no offset can be asked for, K asked for cuts the time range evenly (one more request,
    for the oldest run); auto does not split (the run count is unknown): the same runs, same order."""
    b = Builder(sqlite_mlflow_server.uri)
    exp, _ = b.experiment()
    for i in range(20):
        b.client.create_run(exp, run_name=f"r{i}", start_time=BASE + (i // 2) * 1000)
    monkeypatch.setattr(tr, "PAGE_SIZE", 3)
    monkeypatch.setattr(partitions, "AUTO_RUNS_PER_PART", 3)
    proxy = RestrictedProxy(sqlite_mlflow_server.uri, Profile("opaque"))
    proxy.start()
    try:
        one = [r.run_id for r in Tracking(b.uri, settings=BackendSettings(scan_parts=1)).scan([exp])]
        # auto: the start_time filter tried once, then 7 pages of 3. K=4: the first page (newest 2
        # runs kept: the third shares its start time with the next run), the oldest run, then
        # BASE + 2000, 4000, 6000 cut [BASE, BASE + 8000]: parts of 6, 4, 4, 4 runs, 2 pages each
        for k, searches in ((0, 1 + 7), (4, 1 + 1 + 4 * 2)):
            proxy.reset_counts()
            ids = [r.run_id for r in Tracking(proxy.uri, settings=BackendSettings(scan_parts=k)).scan([exp])]
            assert ids == one and len(ids) == 20, k
            assert proxy.counts["search"] == searches, (k, proxy.counts)
    finally:
        proxy.stop()


# ------------------------------------------------------------------------------------------ experiment parts


def test_experiment_groups_are_balanced_by_counted_runs() -> None:
    # 9 runs, pages of 3: a run at 3 and 6, none at 12, then none at 9: 6 < n <= 9, about 8
    assert partitions.count_runs(lambda offset: offset < 9, 3) == (8, 4)
    assert partitions.count_runs(lambda offset: offset < 6, 3) == (5, 2)
    assert partitions.count_runs(lambda offset: offset < 3, 3) == (1, 1)  # one page: half a page
    assert partitions.count_runs(lambda offset: offset < 1000, 100) == (900, 7)  # as split_by_offsets
    # heaviest first, each to the lightest group so far; never more groups than experiments
    assert partitions.groups_by_weight([8, 5, 1], 2) == [(0,), (1, 2)]
    assert partitions.groups_by_weight([1, 9, 4, 4], 2) == [(0, 2, 3), (1,)]
    assert partitions.groups_by_weight([1] * 5, 2) == [(0, 2, 4), (1, 3)]
    assert partitions.groups_by_weight([3, 3, 3], 4) == [(0,), (1,), (2,)]
    assert partitions.groups_by_weight([5], 4) == [(0,)]


def test_experiment_parts_merge_into_the_one_scans_order() -> None:
    # MLflow's order: start_time DESC, then run id (a tie across experiments is broken by run id)
    runs = [(5, "b"), (5, "a"), (7, "z"), (0, "c"), (-3, "d")]
    assert sorted(runs, key=lambda r: partitions.scan_order(*r)) == [(7, "z"), (5, "a"), (5, "b"), (0, "c"), (-3, "d")]
    gate = threading.Event()

    def part(items: list[int], last: bool = False):
        def read() -> Iterator[int]:
            if not last:
                assert gate.wait(5)  # the first parts wait until the last has run: all run at once
            yield from items
            gate.set()

        return read

    merged = read_parts([part([9, 5, 1]), part([8, 5, 2]), part([7, 3], last=True)], key=lambda x: -x)
    assert list(merged) == [9, 8, 7, 5, 5, 3, 2, 1]


def _experiments(b: Builder, sizes: tuple[int, ...]) -> list[str]:
    """Experiments of ``sizes`` runs whose start times interleave and tie across experiments (a tie
    is ordered by run id, wherever the runs are)."""
    exps = [b.experiment()[0] for _ in sizes]
    for e, n in zip(exps, sizes, strict=True):
        for i in range(n):
            b.client.create_run(e, run_name=f"r{i}", start_time=BASE + (i % 4) * 1000)
    return exps


def _learned_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read learns the dialect afresh (a proxy's port may be one an earlier test's proxy had)."""
    monkeypatch.setattr(tr, "_LEARNED", {})


def test_a_server_refusing_start_time_reads_experiments_at_once(
    sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 experiments of 9, 6 and 3 runs behind a proxy refusing start_time, pages of 3: every K reads
    the one scan's runs in its order; the groups asked for are exactly the balanced ones; deciding
    costs the refused probe, the scan's first page and (counting) 4 + 2 + 1 one-run requests."""
    b = Builder(sqlite_mlflow_server.uri)
    exps = _experiments(b, (9, 6, 3))
    e1, e2, e3 = exps
    monkeypatch.setattr(tr, "PAGE_SIZE", 3)
    monkeypatch.setattr(partitions, "AUTO_RUNS_PER_PART", 3)
    direct = [r.info.run_id for r in b.client.search_runs(exps, max_results=100)]
    assert [r.run_id for r in Tracking(b.uri, settings=BackendSettings(scan_parts=1)).scan(exps)] == direct
    proxy = RestrictedProxy(sqlite_mlflow_server.uri, Profile("no-start-time", start_time=True, opaque_tokens=False))
    proxy.start()
    try:
        # K: (groups read, one-run requests: the start_time probe and the counts)
        expected = {
            1: (set(), 0),
            2: ({(e1,), (e2, e3)}, 1 + 4 + 2 + 1),  # weights 8, 5, 1
            4: ({(e1,), (e2,), (e3,)}, 1),  # no more experiments than parts: nothing to count
            0: ({(e1,), (e2,), (e3,)}, 1 + 4 + 2 + 1),  # about 14 runs: auto_parts(14) is 4
        }
        for k, (groups, probes) in expected.items():
            _learned_nothing(monkeypatch)
            proxy.reset_counts()
            ids, calls = _scan(proxy.uri, exps, k)
            assert ids == direct, k
            assert [s for s in proxy.searches if s[2] == 1 and s[1]] == (
                [] if k == 1 else [((e1, e2, e3), _START, 1, False)]
            )
            assert sum(1 for s in proxy.searches if s[2] == 1) == probes, (k, proxy.searches)
            asked = {s[0] for s in proxy.searches if s[2] == 3 and s[0] != (e1, e2, e3)}
            assert asked == groups, k
            firsts = [s for s in proxy.searches if s[0] == (e1, e2, e3) and s[2] == 3 and not s[3]]
            assert len(firsts) == 1, k  # the one scan's first page, read once (it decides)
            readers = [who for n, _, who in calls if n == -1]
            if k == 1:
                assert readers == ["MainThread"]
            else:  # one page loop per group, each on its own part thread
                assert len(readers) == len(groups) and all(w.startswith("hpohash-part") for w in readers), readers
            assert proxy.refused["start_time"] == (0 if k == 1 else 1)
    finally:
        proxy.stop()


_START = "attributes.start_time >= 0"


def test_one_experiment_or_opaque_tokens_behind_a_start_time_refusal(
    sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One experiment: one scan, nothing asked but the refused probe. Opaque tokens: no offset to
    count at, so K asked gives one experiment a part (by count of experiments), and auto one scan."""
    b = Builder(sqlite_mlflow_server.uri)
    exps = _experiments(b, (5, 4, 4))
    monkeypatch.setattr(tr, "PAGE_SIZE", 3)
    monkeypatch.setattr(partitions, "AUTO_RUNS_PER_PART", 3)
    direct = [r.info.run_id for r in b.client.search_runs(exps, max_results=100)]
    alone = [r.info.run_id for r in b.client.search_runs(exps[:1], max_results=100)]
    proxy = RestrictedProxy(sqlite_mlflow_server.uri, Profile("opaque-no-start-time", start_time=True))
    proxy.start()
    try:
        for k in (4, 0):
            _learned_nothing(monkeypatch)
            proxy.reset_counts()
            assert _scan(proxy.uri, exps[:1], k)[0] == alone
            assert {s[0] for s in proxy.searches} == {(exps[0],)}
            assert [s[2] for s in proxy.searches] == [1, 3, 3], k  # the probe, then 2 pages of one scan
        for k, groups in ((2, {(exps[0], exps[2]), (exps[1],)}), (0, set())):
            _learned_nothing(monkeypatch)
            proxy.reset_counts()
            assert _scan(proxy.uri, exps, k)[0] == direct, k
            assert sum(1 for s in proxy.searches if s[2] == 1) == 1  # the refused probe alone
            assert {s[0] for s in proxy.searches if len(s[0]) < 3} == groups, k
    finally:
        proxy.stop()


def test_verify_json_is_the_same_for_every_k_behind_a_start_time_refusal(
    run_cli, sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 experiments verified through a proxy refusing start_time: a legacy study in one; in the
    other two, trials whose parents are in an experiment not verified (orphans, reported in the
    scan's order), with start times tied across the two. K=1, 2, 4 and auto: the JSON and exit code
    of a direct read; every K but 1 says it read experiment parts."""
    from tests.test_http_server import many_trials

    b = Builder(sqlite_mlflow_server.uri)
    e0, _ = b.experiment()
    (e1, n1), (e2, n2), (e3, n3) = (b.experiment() for _ in range(3))
    hps, scores = many_trials(6)
    b.make_legacy(b.study(e1, hps=hps, scores=scores))
    b.study(e0, hps=hps, scores=scores, trial_experiment=e2, start_time=BASE)
    b.study(e0, model="bert", hps=hps, scores=scores, trial_experiment=e3, start_time=BASE)
    monkeypatch.setattr(tr, "PAGE_SIZE", 3)
    monkeypatch.setattr(partitions, "AUTO_RUNS_PER_PART", 3)
    args = ["-e", n1, "-e", n2, "-e", n3, "--format", "json", "--verbose"]
    monkeypatch.setenv("HPOHASH_SCAN_PARTS", "1")
    direct = run_cli(["verify", "--tracking-uri", b.uri, *args])
    assert direct.code == 1 and len(json.loads(direct.out)["findings"]) > 12
    proxy = RestrictedProxy(sqlite_mlflow_server.uri, Profile("no-start-time", start_time=True, opaque_tokens=False))
    proxy.start()
    try:
        for k in ("1", "2", "4", ""):
            monkeypatch.setenv("HPOHASH_SCAN_PARTS", k)
            proxy.reset_counts()
            r = run_cli(["verify", "--tracking-uri", proxy.uri, *args])
            assert (r.code, r.out.replace(proxy.uri, b.uri)) == (direct.code, direct.out), k
            assert ("experiment parts at once" in r.err) == (k != "1"), (k, r.err)
            assert "start-time parts" not in r.err
            # only the scan of stage ILIKE 'hpo%' has more than a page; e1 has 8 runs in it, the
            # others 6: counted about 8, 5 and 5, two parts are e1 and the other two
            split = {frozenset(s[0]) for s in proxy.searches if len(s[0]) < 3 and s[2] == 3}
            one = {frozenset({e}) for e in (e1, e2, e3)}
            assert split == {"1": set(), "2": {frozenset({e1}), frozenset({e2, e3})}}.get(k, one), k
    finally:
        proxy.stop()


def test_closing_a_merged_read_stops_every_part() -> None:
    """Ctrl-C (or an error) closes the merged read: every part stops at its next item and its page
    loop is closed before the close returns; no part thread is left running."""
    stopped: list[int] = []

    def part(i: int):
        def read() -> Iterator[int]:
            try:
                n = 10**9 - i
                while True:  # endless, newest first
                    yield n
                    n -= 3
            finally:
                stopped.append(i)

        return read

    merged = read_parts([part(i) for i in range(3)], key=lambda x: -x, name="hpohash-test-part")
    assert [next(merged) for _ in range(6)] == [10**9 - i for i in (0, 1, 2, 3, 4, 5)]
    merged.close()
    assert sorted(stopped) == [0, 1, 2]
    assert not [t for t in threading.enumerate() if t.name.startswith("hpohash-test-part")]
