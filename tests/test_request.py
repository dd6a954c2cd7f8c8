"""The request object, one library call per command equal to the CLI's report, and calls that share
nothing: a real SQLite store for each, no mocks."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import hpohash
from hpohash import api
from hpohash.request import Request, Store
from hpohash.settings import BackendSettings
from tests.builders import Builder


def _legacy(builder: Builder) -> tuple[str, object]:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    return name, s


# ------------------------------------------------------------------------------ the request


def test_a_request_is_checked_once_when_made(tmp_path: Path) -> None:
    r = Request(store=Store("sqlite:///x.db"), experiments=["a", "b"], select="HH11", since="2026-11-20")
    assert r.experiments == ("a", "b") and r.select == ("HH11",) and r.since_ms == 1795132800000
    assert r.selection.wants("HH110") and not r.selection.wants("HH120")
    assert r.registry.key("stage")  # the default tag keys, loaded once
    with pytest.raises(hpohash.UsageError, match="^since excludes check_all and parent_run_id$"):
        Request(since="1d", parent_run_id="p")
    with pytest.raises(hpohash.UsageError, match="^check_all and parent_run_id exclude each other$"):
        Request(check_all=True, parent_run_id="p")
    with pytest.raises(hpohash.UsageError, match=f"^experiment_ids {'9' * 23}: out of range"):
        Request(experiment_ids=["9" * 23])
    with pytest.raises(hpohash.UsageError, match="^read_via nosql: one of auto, api, sql$"):
        Store(settings=BackendSettings(read_via="nosql"))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        api.verify(tracking_uri="sqlite:///x.db", experiment=["a"])
    with pytest.raises(TypeError, match="not both"):
        api.verify(Request(), experiments=["a"])


def test_the_cli_fills_the_store_settings_from_its_options_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpohash import edge

    monkeypatch.setenv("HPOHASH_SERVER_FILTER", "Never")
    store = edge.store("sqlite:///x.db", timeout=7.5, read_via="api")
    assert store.settings == BackendSettings(deadline_s=7.5, read_via="api", server_filter="never")
    monkeypatch.setenv("HPOHASH_SERVER_FILTER", "bogus")
    assert edge.store(None).settings == BackendSettings()


def test_timeout_and_read_via_are_store_options(run_cli, builder: Builder) -> None:
    name, _ = _legacy(builder)
    base = ["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"]
    r = run_cli([*base, "--timeout", "20", "--read-via", "api"])
    assert r.code == 1 and json.loads(r.out)["experiments"] == [name]
    r = run_cli([*base, "--timeout", "0"])
    assert r.code == 2 and "--timeout" in r.err
    help_text = run_cli(["backfill", "--help"]).out
    assert "--timeout SECONDS" in help_text and "--read-via [auto|api|sql]" in help_text


# ------------------------------------------------------------------------------ library == CLI, per command


def test_verify_library_equals_cli(run_cli, builder: Builder) -> None:
    name, _ = _legacy(builder)
    report = hpohash.verify(Request(store=Store(builder.uri), experiments=(name,), ignore=("HH160",)))
    cli = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--ignore", "HH160", "--format", "json"])
    assert cli.code == 1 and json.loads(json.dumps(report.as_dict(), default=list)) == json.loads(cli.out)


def test_check_all_in_the_library_reads_every_experiment(run_cli, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'own.db'}"
    b = Builder(uri, artifact_root=(tmp_path / "artifacts").as_uri())
    name, _ = _legacy(b)
    report = hpohash.verify(tracking_uri=uri, check_all=True)
    cli = json.loads(run_cli(["verify", "--tracking-uri", uri, "--check-all", "--format", "json"]).out)
    assert json.loads(json.dumps(report.as_dict(), default=list)) == cli and name in cli["experiments"]


def test_backfill_plan_apply_and_undo_library_equal_cli(run_cli, builder: Builder, tmp_path: Path) -> None:
    from hpohash.reports import BackfillReport

    name, _ = _legacy(builder)
    scope = ["--tracking-uri", builder.uri, "-e", name]
    plan = hpohash.plan_backfill(tracking_uri=builder.uri, experiments=[name])
    cli = run_cli(["backfill", *scope, "--dry-run", "--format", "json"])
    assert cli.code == 0 and BackfillReport(plan, dry_run=True).as_dict() == json.loads(cli.out)

    done = hpohash.apply(plan, journal=tmp_path / "lib.jsonl")
    undo_lib = hpohash.undo([tmp_path / "lib.jsonl"], dry_run=True, tracking_uri=builder.uri)
    cli = run_cli(["undo", str(tmp_path / "lib.jsonl"), "--tracking-uri", builder.uri, "--dry-run", "--format", "json"])
    assert cli.code == 0 and undo_lib.as_dict() == json.loads(cli.out)
    undone = hpohash.undo([tmp_path / "lib.jsonl"], tracking_uri=builder.uri, journal=tmp_path / "u-lib.jsonl")

    # the store is back where it was: the CLI writes the same changes the library wrote
    cli = run_cli(["backfill", *scope, "--yes", "--journal", str(tmp_path / "cli.jsonl"), "--format", "json"])
    assert cli.code == 0
    assert {**done.as_dict(), "journal": None} == {**json.loads(cli.out), "journal": None}
    cli = run_cli(["undo", str(tmp_path / "cli.jsonl"), "--tracking-uri", builder.uri, "--yes", "--journal",
                   str(tmp_path / "u-cli.jsonl"), "--format", "json"])  # fmt: skip
    assert cli.code == 0
    assert {**undone.as_dict(), "journal": None} == {**json.loads(cli.out), "journal": None}


def test_diff_library_equals_cli(run_cli, builder: Builder) -> None:
    _, s = _legacy(builder)
    trial = s.trials[0]  # type: ignore[attr-defined]
    report = hpohash.diff(trial, tracking_uri=builder.uri)
    cli = run_cli(["diff", trial, "--tracking-uri", builder.uri, "--format", "json"])
    assert cli.code == (0 if report.ok else 1) and report.as_dict() == json.loads(cli.out)


def test_hash_library_equals_cli(run_cli, c01_dir: Path) -> None:
    hp = '{"learning_rate": 2e-5, "batch_size": 16}'
    report = api.hash_configs(config_dir=str(c01_dir), model="distilbert-base-uncased", hyperparameters=[hp])
    cli = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "distilbert-base-uncased",
                   "--hyperparameters", hp, "--format", "json"])  # fmt: skip
    assert cli.code == 0 and report == json.loads(cli.out)
    with pytest.raises(hpohash.UsageError, match="^hyperparameters #1: expected a JSON object, got list$"):
        api.hash_configs(config_dir=str(c01_dir), model="m", hyperparameters=["[1]"])
    r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m", "--hyperparameters", "[1]"])
    assert r.code == 2 and r.err == "hpohash: error: --hyperparameters #1: expected a JSON object, got list\n"


def test_rules_library_equals_cli(run_cli) -> None:
    cli = run_cli(["rules", "hh120", "--format", "json"])
    assert cli.code == 0 and json.loads(cli.out)["rules"] == [r.as_dict() for r in api.rules("hh120")]


def test_demo_library_equals_cli(run_cli, tmp_path: Path) -> None:
    lib = api.demo(tracking_uri=f"sqlite:///{tmp_path / 'lib.db'}")
    cli = json.loads(run_cli(["demo", "--tracking-uri", f"sqlite:///{tmp_path / 'cli.db'}", "--format", "json"]).out)
    assert cli.pop("schema") == "hpohash.demo/1"

    def shape(d: dict) -> dict:
        return {k: (len(v) if isinstance(v, list) else type(v).__name__) for k, v in d.items() if k != "tracking_uri"}

    assert shape(lib) == shape(cli) and lib["experiment"] == cli["experiment"] == "hpohash-demo"


# ------------------------------------------------------------------------------ no process-wide state


def test_verify_twice_and_from_two_threads_gives_independent_reports(builder: Builder) -> None:
    broken, _ = _legacy(builder)
    exp, clean = builder.experiment()
    builder.study(exp)

    def run(name: str) -> dict:
        return json.loads(
            json.dumps(hpohash.verify(tracking_uri=builder.uri, experiments=[name]).as_dict(), default=list)
        )

    first, second = run(broken), run(clean)
    assert run(broken) == first and run(clean) == second  # twice in one process: the same, each
    assert not first["summary"]["ok"] and second["summary"]["ok"]

    results: dict[str, list[dict]] = {broken: [], clean: []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        try:
            barrier.wait()
            results[name].append(run(name))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in (broken, clean, broken, clean)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results[broken] == [first, first] and results[clean] == [second, second]


def test_a_calls_ledger_and_secrets_are_its_own(builder: Builder, tmp_path: Path) -> None:
    from hpohash.context import CallContext, call_context, current
    from hpohash.redact import Redactor, redact

    name, _ = _legacy(builder)
    plan = hpohash.plan_backfill(tracking_uri=builder.uri, experiments=[name])
    mine = CallContext()
    Redactor(mine.secrets).add_secret("S3CRET-of-one-call")
    with call_context(mine):
        hpohash.apply(plan, journal=tmp_path / "j.jsonl")
        assert redact("x S3CRET-of-one-call x") == "x *** x"
    assert mine.ledger.runs_written == 4 and mine.ledger.journal == str(tmp_path / "j.jsonl")
    assert current().ledger.runs_written == 0  # outside that call: nothing written, by nobody
    assert redact("x S3CRET-of-one-call x") == "x S3CRET-of-one-call x"
    done = hpohash.undo([tmp_path / "j.jsonl"], tracking_uri=builder.uri, journal=tmp_path / "u.jsonl")
    assert done.result is not None and done.result.runs_written == 4
    assert mine.ledger.runs_written == 4  # the undo, a call of its own, left it alone


def test_worker_threads_a_call_starts_carry_its_secrets() -> None:
    """Config fetches, pages read ahead and writes run on worker threads: what they redact is masked
    with the call's own secrets, and a thread the call did not start sees none of them."""
    from concurrent.futures import ThreadPoolExecutor

    from hpohash.context import CallContext, call_context, carried
    from hpohash.redact import Redactor, redact

    mine = CallContext()
    Redactor(mine.secrets).add_secret("S3CRET-in-a-worker")

    def masked(_: int) -> str:
        return redact("x S3CRET-in-a-worker x")

    with call_context(mine), ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(carried(masked), range(4))) == ["x *** x"] * 4
        assert list(pool.map(masked, range(2))) == ["x S3CRET-in-a-worker x"] * 2


def test_the_gc_pause_is_counted_and_can_be_declined() -> None:
    import gc

    from hpohash.context import CallContext, call_context
    from hpohash.perf import gc_paused

    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    with call_context(CallContext(pause_gc=False)), gc_paused():
        assert gc.isenabled()


def test_a_library_caller_reads_argument_names_the_cli_reads_options(run_cli, builder: Builder) -> None:
    """One error, two readers: below the api a message names the argument; the CLI names its option."""
    why = ": expected a duration like 1d, 12h, 30m, 2w or a date like 2026-11-20[T06:00]"
    with pytest.raises(hpohash.ArgumentError) as since:
        Request(since="{yesterday}")
    assert str(since.value) == "since '{yesterday}'" + why
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", "x", "--since", "{yesterday}"])
    assert (r.code, r.out, r.err) == (2, "", "hpohash: error: --since '{yesterday}'" + why + "\n")

    exp, _ = builder.experiment()
    s = builder.study(exp)
    builder.client.delete_run(s.parent)
    with pytest.raises(hpohash.ArgumentError) as deleted:
        hpohash.verify(Request(store=Store(builder.uri), parent_run_id=s.parent))
    assert str(deleted.value) == f"parent_run_id {s.parent}: the run is deleted; pass include_deleted to check it"
    r = run_cli(["verify", "--tracking-uri", builder.uri, "--parent-run-id", s.parent])
    assert (r.code, r.out) == (2, "")
    why = ": the run is deleted; pass --include-deleted to check it\n"
    assert r.err == f"hpohash: error: --parent-run-id {s.parent}" + why
