"""The direct SQL read of SQL-backed stores (hpohash/sqlread.py): equivalence with MLflow's
``search_runs`` is the contract, so every store here is read both ways and compared byte for byte."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hpohash import capabilities as cap
from hpohash.audit import audit_per_study
from hpohash.errors import BackendError, UsageError
from hpohash.loading import hpo_filters, load_scope, scan_keep
from hpohash.records import Reducer
from hpohash.redact import redact
from hpohash.render import VerifyContext, json_
from hpohash.reports import VerifyReport
from hpohash.settings import BackendSettings
from hpohash.sqlread import KNOWN_REVISIONS, installed_head, parse_filter
from hpohash.tags import TagRegistry
from hpohash.tracking import Tracking
from tests.builders import Builder
from tests.pipeline import build_pipeline_store


def tag_filter(key: str, op: str, value: str | None = None) -> str:
    """One tag clause as the filter text the adapter sends (and the SQL reader parses)."""
    return cap.tag(key, op, value).text()


def started_filter(op: str, ms: int) -> str:
    return cap.started(op, ms).text()


ROOT = Path(__file__).resolve().parents[1]
DAY_MS = 86_400_000


def tracking(uri: str, via: str) -> Tracking:
    t = Tracking(uri, settings=BackendSettings(read_via=via))
    assert (t._sql is not None) == (via == "sql"), t.notes
    return t


def report(capsys: pytest.CaptureFixture[str], uri: str, via: str, **kw: Any) -> str:
    """The ``verify --format json`` document of one read (what ``verify`` prints, byte for byte)."""
    scope = load_scope(tracking(uri, via), TagRegistry(), **kw)
    verified = VerifyReport.from_scope(scope, audit_per_study(scope))
    return "".join(json_.format_verify(verified, VerifyContext()))


def assert_same(capsys: pytest.CaptureFixture[str], uri: str, **kw: Any) -> dict[str, Any]:
    via_api = report(capsys, uri, "api", **kw)
    via_sql = report(capsys, uri, "sql", **kw)
    assert via_sql == via_api
    return dict(json.loads(via_sql))


def assert_same_scans(uri: str, exp_ids: list[str], filters: list[str], reducer_keep: Any = None) -> int:
    """Raw scans (every run, in order, every kept field) are equal on both paths; returns the runs seen."""
    seen = 0
    for flt in filters:
        for deleted in (True, False):
            got = []
            for via in ("api", "sql"):
                reducer = Reducer(reducer_keep) if reducer_keep is not None else Reducer()
                runs = list(
                    tracking(uri, via).scan(exp_ids, filter_string=flt, include_deleted=deleted, reducer=reducer)
                )
                # repr: every field, and a NaN metric compares equal to itself
                got.append([repr((r, r.artifact_uri)) for r in runs])
            assert got[1] == got[0], flt
            seen += len(got[0])
    return seen


def mixed_store(b: Builder) -> tuple[list[str], list[str]]:
    """Two experiments: correct, legacy and broken studies, folds, deleted runs, non-HPO runs, a
    study whose trials live in the other experiment, a NaN metric, equal start times."""
    exp1, name1 = b.experiment("mixed")
    exp2, name2 = b.experiment("mixed")
    now = int(time.time() * 1000)
    good = b.study(exp1, start_time=now - 5 * DAY_MS)
    legacy = b.study(exp1, model="bert", folds=2, start_time=now - 5 * DAY_MS)
    b.make_legacy(legacy)
    b.study(exp1, model="roberta", trial_experiment=exp2, start_time=now - 3_600_000)
    gone = b.study(exp2, model="gone", start_time=now - 2 * DAY_MS)
    b.client.delete_run(gone.trials[1])
    b.client.delete_run(gone.refit or "")
    b.set(good.trials[0], code__study_key_hash="f" * 64)
    for i in range(3):
        b.run(exp1, f"train-{i}", {"code.stage": "final_training"}, metrics={"loss": 0.3}, start_time=now - 1000)
    b.run(exp2, "benchmark", {"code.stage": "benchmark", "code.run_type": "REFIT"}, metrics={"nan": float("nan")})
    b.run(exp2, "no-stage", {"mlflow.note.content": "x"}, start_time=now - 1000)
    return [exp1, exp2], [name1, name2]


# ------------------------------------------------------------------------------------ equivalence


def test_mixed_store_reads_identically_both_ways(capsys, builder: Builder) -> None:
    exps, names = mixed_store(builder)
    doc = assert_same(capsys, builder.uri, experiment_names=names)
    assert doc["summary"]["studies"] == 4 and doc["findings"]
    assert_same(capsys, builder.uri, experiment_names=names, include_deleted=True)
    assert_same(capsys, builder.uri, experiment_ids=[exps[1]])
    assert_same(capsys, builder.uri, experiment_names=names, since_ms=int(time.time() * 1000) - DAY_MS)
    parent = json.loads(report(capsys, builder.uri, "api", experiment_names=names))["studies"][0]["parent_run_id"]
    assert_same(capsys, builder.uri, parent_run_id=parent)


def test_raw_scans_are_equal_with_every_filter_loading_sends(builder: Builder) -> None:
    exps, _ = mixed_store(builder)
    reg = TagRegistry()
    some = [r.run_id for r in tracking(builder.uri, "api").scan(exps)][::3]
    filters = [
        "",
        *(c.text() for c in hpo_filters(reg)),
        tag_filter(reg.key("parent"), "=", some[0]),
        f"{tag_filter(reg.key('parent'), 'IS NULL')} AND {started_filter('<', int(time.time() * 1000) - DAY_MS)}",
        started_filter(">=", int(time.time() * 1000) - DAY_MS),
        "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in some) + ")",
    ]
    assert assert_same_scans(builder.uri, exps, filters) > 50
    assert_same_scans(builder.uri, exps, ["", hpo_filters(reg)[0].text()], scan_keep(reg))


def test_server_side_filters_translated_to_sql(capsys, builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the HPO filters sent to the store (``always``), the SQL path translates them: same report."""
    monkeypatch.setenv("HPOHASH_SERVER_FILTER", "always")
    _, names = mixed_store(builder)
    assert_same(capsys, builder.uri, experiment_names=names)
    assert_same(capsys, builder.uri, experiment_names=names, since_ms=int(time.time() * 1000) - DAY_MS)


def test_demo_and_pipeline_stores_read_identically(capsys, builder: Builder, tmp_path: Path) -> None:
    from hpohash.demo import EXPERIMENT, write_demo

    uri = f"sqlite:///{tmp_path / 'demo.db'}"
    write_demo(Tracking(uri, create=True))
    doc = assert_same(capsys, uri, experiment_names=[EXPERIMENT])
    assert doc["summary"]["studies"] > 0
    _, name, _, _ = build_pipeline_store(builder, tmp_path / "repo")
    assert_same(capsys, builder.uri, experiment_names=[name])


def test_bulk_seeded_store_reads_identically(capsys, tmp_path: Path) -> None:
    """The benchmarks' store (MLflow's schema written directly): legacy studies, non-HPO runs."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from seed_bulk import bulk_seed
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'bulk.db'}"
    seeded = bulk_seed(uri, MlflowClient(tracking_uri=uri), "bulk", 600, trials_per_study=18, non_hpo=0.3)
    doc = assert_same(capsys, uri, experiment_names=["bulk"])
    assert doc["summary"]["studies"] == seeded.studies > 10
    assert assert_same_scans(uri, [seeded.experiment_id], [""]) == 2 * seeded.runs


def test_postgresql_store_reads_identically(capsys, pg_mlflow_server, tmp_path: Path) -> None:
    """The session's PostgreSQL database, written and read by its own URI (artifacts on local files)."""
    uri = pg_mlflow_server.backend_uri
    exps, names = mixed_store(Builder(uri, artifact_root=(tmp_path / "artifacts").as_uri()))
    assert Tracking(uri).notes == [f"reading runs by SQL (schema revision {installed_head()})"]
    doc = assert_same(capsys, uri, experiment_names=names, include_deleted=True)
    assert doc["summary"]["studies"] == 4
    assert_same(capsys, uri, experiment_names=names, since_ms=int(time.time() * 1000) - DAY_MS)
    reg = TagRegistry()
    assert_same_scans(uri, exps, ["", *(c.text() for c in hpo_filters(reg)), tag_filter(reg.key("parent"), "IS NULL")])


# ------------------------------------------------------------------------------------ choosing the path


def test_auto_reads_sql_stores_by_sql_and_says_so_under_verbose(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    builder.study(exp)
    t = Tracking(builder.uri)
    assert t._sql is not None and t.notes == [f"reading runs by SQL (schema revision {installed_head()})"]
    assert installed_head() in KNOWN_REVISIONS
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--verbose"])
    assert r.code == 0 and f"hpohash: reading runs by SQL (schema revision {installed_head()})\n" in r.err
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name])
    assert r.code == 0 and "reading runs" not in r.err


def test_http_is_read_through_mlflow_and_sql_there_is_a_usage_error() -> None:
    t = Tracking("http://127.0.0.1:9", settings=BackendSettings(read_via="auto"))
    assert t._sql is None
    # notes and errors are redacted: after a PostgreSQL test registered its URI's secrets, parts may be masked
    why = redact("http://127.0.0.1:9 is not a SQL database (sqlite, postgresql, mysql)")
    assert t.notes == [f"reading runs through MLflow's search_runs: {why}"]
    with pytest.raises(UsageError) as err:
        Tracking("http://user:secret@127.0.0.1:9", settings=BackendSettings(read_via="sql"))
    assert str(err.value) == f"--read-via sql: {why}"
    assert Tracking("http://127.0.0.1:9", settings=BackendSettings(read_via="api")).notes == []


def _copy_with_revision(src_uri: str, dest: Path, revision: str) -> str:
    shutil.copy(src_uri[len("sqlite:///") :], dest)
    with sqlite3.connect(dest) as con:
        con.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    return f"sqlite:///{dest}"


def test_unknown_schema_revision_falls_back_with_one_note(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    builder.study(exp)
    uri = _copy_with_revision(builder.uri, tmp_path / "other.db", "0123456789ab")
    t = Tracking(uri)
    assert t._sql is None
    why = "schema revision 0123456789ab is not one hpohash has been tested against"
    assert t.notes == [f"reading runs through MLflow's search_runs: {why}"]
    with pytest.raises(UsageError, match=f"^--read-via sql: {why}$"):
        Tracking(uri, settings=BackendSettings(read_via="sql"))
    # a known revision that is not the installed MLflow's: MLflow itself decides (it refuses it)
    older = _copy_with_revision(builder.uri, tmp_path / "older.db", "6953534de441")
    assert Tracking(older).notes == [
        "reading runs through MLflow's search_runs: schema revision 6953534de441 is not the installed "
        f"MLflow's ({installed_head()})"
    ]
    r = run_cli(["verify", "--tracking-uri", uri, "-e", name, "--verbose"])
    assert f"hpohash: reading runs through MLflow's search_runs: {why}\n" in r.err


def test_a_filter_not_translated_reads_that_scan_through_mlflow(builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    t = Tracking(builder.uri)
    flt = "params.backbone = 'distilbert'"
    got = sorted(r.run_id for r in t.scan([exp], filter_string=flt))
    assert got == sorted([*s.trials, s.refit or ""])
    assert t.notes[-1] == f"one scan through MLflow's search_runs: filter not translated to SQL here: {flt!r}"
    assert t._sql is not None  # the next scan is read by SQL again
    with pytest.raises(UsageError, match="^--read-via sql: filter not translated"):
        list(tracking(builder.uri, "sql").scan([exp], filter_string=flt))


def test_a_failing_sql_read_goes_on_through_mlflow(builder: Builder) -> None:
    """The store changes under the reader (its connection closed): the scan finishes through MLflow,
    without repeating the runs already handed on; forced ``sql``: a backend error."""
    exp, _ = builder.experiment()
    builder.study(exp)
    t = Tracking(builder.uri)
    expected = [r.run_id for r in tracking(builder.uri, "api").scan([exp])]
    assert t._sql is not None
    t._sql.close()
    assert [r.run_id for r in t.scan([exp])] == expected
    assert t._sql is None and t.notes[-1].startswith("reading runs through MLflow's search_runs from here on: ")
    forced = tracking(builder.uri, "sql")
    assert forced._sql is not None
    forced._sql.close()
    with pytest.raises(BackendError, match="^--read-via sql: reading sqlite:///"):
        forced.resolve_experiments([], [exp])


def test_a_sql_read_failing_mid_scan_goes_on_through_mlflow(builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second chunk's read fails (a locked database) after the first chunk's runs were handed
    on; the scan finishes through MLflow, each run once, in the same order, and the metrics the SQL
    scan left out are then read through MLflow too. (One process here: a scan this small forks no
    reader; ``test_forked`` fails the forked one.)"""
    from hpohash import sqlread

    exp, _ = builder.experiment()
    s = builder.study(exp)
    api = tracking(builder.uri, "api")
    expected = [r.run_id for r in api.scan([exp])]
    assert len(expected) > 4
    monkeypatch.setattr(sqlread, "CHUNK", 2)
    reads: list[list[str]] = []
    read_chunk = sqlread.SqlReader._read_chunk

    def flaky(self: Any, ids: list[str], keep: Any) -> Any:
        reads.append(ids)
        if len(reads) == 2:
            raise sqlite3.OperationalError("database is locked")
        return read_chunk(self, ids, keep)

    monkeypatch.setattr(sqlread.SqlReader, "_read_chunk", flaky)
    t = Tracking(builder.uri)
    trials = list(s.trials)
    by_sql = t.latest_metric([s.parent, *trials], "macro-f1")  # the parent has none: absent
    by_api = {rid: api.get_run(rid).metrics["macro-f1"] for rid in trials}
    assert by_sql == by_api and len(by_api) == len(trials)
    assert [r.run_id for r in t.scan([exp])] == expected
    assert reads == [expected[:2], expected[2:4]]
    assert t._sql is None and "database is locked" in t.notes[-1]

    def one_run_at_a_time(*_: Any) -> Any:
        raise AssertionError("one get_run a run: runs_by_id's filtered scans read them in batches")

    monkeypatch.setattr(Tracking, "get_run", one_run_at_a_time)
    assert t.latest_metric([s.parent, *trials], "macro-f1") == by_api  # through search_runs now


def test_parse_filter_subset() -> None:
    assert [
        (c.kind, c.op, c.key, c.value) for c in parse_filter("tags.`a.b` ILIKE 'hpo%' AND attributes.start_time < 5")
    ] == [
        ("tag", "ILIKE", "a.b", "hpo%"),
        ("start_time", "<", "", 5),
    ]
    assert parse_filter("attributes.run_id IN ('x', 'y')")[0].value == ("x", "y")
    assert parse_filter("tags.`p` IS NULL")[0].op == "IS NULL"
    assert parse_filter("") == []


# ------------------------------------------------------------------------------------ no MLflow import


def test_verify_and_diff_over_sql_never_import_mlflow(builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    script = f"""
import sys
from hpohash.cli import main
codes = [main(["verify", "--tracking-uri", {builder.uri!r}, "-e", {name!r}, "--format", "json"])]
codes.append(main(["diff", "--tracking-uri", {builder.uri!r}, {s.trials[0]!r}, {s.trials[1]!r}, "--format", "json"]))
print("RESULT", codes, "mlflow" in sys.modules, file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "RESULT [0, 1] False", proc.stderr  # diff: the trials differ


@pytest.mark.parametrize(
    ("uri", "directory"),
    [
        ("file:///tmp/a%20b/caf%C3%A9/artifacts", "/tmp/a b/café/artifacts"),
        ("file:///x/%2F/y", "/x///y"),
        ("/plain/path/artifacts", "/plain/path/artifacts"),
        ("s3://bucket/x", None),
        ("file://otherhost/x", None),
    ],
)
def test_a_local_artifact_uri_becomes_the_directory_mlflow_reads(uri: str, directory: str | None) -> None:
    """As MLflow (``url2pathname``, unquoting on POSIX), without importing ``urllib.request``."""
    from urllib.request import url2pathname

    from hpohash.sqlread import LocalArtifacts

    found = LocalArtifacts.for_uri(uri)
    assert (found.artifact_dir if found else None) == directory
    if directory is not None:
        assert directory == url2pathname(uri.removeprefix("file://"))
