"""Reading large stores: slim run records, the server-side HPO filter, and ``verify --since`` on a
store where old and new studies are mixed (start times set explicitly)."""

from __future__ import annotations

import json
import sys
import time

import pytest

from hpohash.loading import load_scope
from hpohash.settings import BackendSettings
from hpohash.tags import TagRegistry
from hpohash.text import parse_since
from hpohash.tracking import Tracking
from tests.builders import Builder
from tests.conftest import assert_one_error_line

DAY_MS = 86_400_000


def test_scan_keeps_registered_tags_and_all_params_metrics(builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp, parent_tags={"mlflow.user": "someone", "azureml.sweep": "true", "code.refit_run_id": "r"})
    builder.set(s.trials[0], code__legacy__study_key_hash="old", code__run_key_hash="x")
    scope = load_scope(Tracking(builder.uri), TagRegistry(), experiment_ids=[exp])
    parent = scope.index[s.parent]
    assert parent.run_name == "sweep-distilbert" and not parent.deleted
    assert sorted(parent.tags) == [
        "code.backbone",
        "code.fingerprint.data",
        "code.fingerprint.eval",
        "code.objective.direction",
        "code.refit_run_id",
        "code.stage",
        "code.study.key_schema_version",
        "code.study_key_hash",
    ]
    trial = scope.index[s.trials[0]]
    assert "code.legacy.study_key_hash" in trial.tags and "code.run_key_hash" not in trial.tags
    assert dict(trial.params) == {
        "learning_rate": "2.33e-05",
        "batch_size": "16",
        "dropout": "0.1733",
        "weight_decay": "0.0042",
        "backbone": "distilbert",
    }
    # read by SQL, a scan keeps no metrics: the objective metric is read per study when it is ranked
    assert dict(trial.metrics) == {}
    assert scope.studies[0].scores("macro-f1")[s.trials[0]] == 0.80
    # through search_runs every metric comes with the run, and is kept
    via_api = load_scope(
        Tracking(builder.uri, settings=BackendSettings(read_via="api")), TagRegistry(), experiment_ids=[exp]
    )
    assert dict(via_api.index[s.trials[0]].metrics) == {"macro-f1": 0.80}
    assert via_api.studies[0].scores("macro-f1")[s.trials[0]] == 0.80
    # trials with the same keys share one key index: per run only the values stay alive
    assert scope.index[s.trials[1]].params._index is trial.params._index


@pytest.mark.parametrize("where", ["always", "never"])
def test_non_hpo_runs_are_not_kept_but_link_targets_are_read(
    run_cli, builder: Builder, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Filtered on the server (``always``) or while reducing the pages (``never``): the same scope."""
    monkeypatch.setenv("HPOHASH_SERVER_FILTER", where)
    exp, name = builder.experiment()
    s = builder.study(exp)
    other = builder.run(exp, "train", {"code.stage": "train"})
    odd = builder.run(exp, "cv", {"code.stage": "cv_fold", "mlflow.parentRunId": s.trials[0]})
    builder.set(s.refit, code__refit__of_trial_run_id=other)
    # as the CLI maps the variable; through search_runs, where the filter is a choice (SQL reads filter in SQL)
    tracking = Tracking(builder.uri, settings=BackendSettings(server_filter=where, read_via="api"))
    scope = load_scope(tracking, TagRegistry(), experiment_ids=[exp])
    assert other in scope.index  # fetched by id for the refit's link, not by the scan
    assert scope.studies[0].folds == 1 and odd in scope.index  # a stage without the hpo prefix is read
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    doc = json.loads(r.out)
    [hh122] = [f for f in doc["findings"] if f["code"] == "HH122"]
    assert hh122["message"] == f"refit link names run {other}, which is not a trial of this study"
    assert "studies_skipped" not in doc["summary"]


def test_verify_since_reads_only_recent_studies_whole(run_cli, builder: Builder) -> None:
    """Old study (skipped), new study, and an old study with one new trial (read whole)."""
    exp, name = builder.experiment()
    now = int(time.time() * 1000)
    old = builder.study(exp, model="old", start_time=now - 10 * DAY_MS)
    new = builder.study(exp, model="new", start_time=now - 3_600_000)
    mixed = builder.study(exp, model="mixed", start_time=now - 10 * DAY_MS)
    builder.make_legacy(old)
    builder.make_legacy(mixed)
    builder.run(
        exp,
        "trial-late",
        {"code.stage": "hpo", "mlflow.parentRunId": mixed.parent, "code.hpo.trial_number": "9"},
        start_time=now - 60_000,
    )

    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--since", "1d", "--format", "json"])
    doc = json.loads(r.out)
    assert r.code == 1, r.err
    assert [st["parent_run_id"] for st in doc["studies"]] == [mixed.parent, new.parent]
    assert [st["trials"] for st in doc["studies"]] == [4, 3]  # the mixed study's three old trials too
    assert doc["summary"]["studies_skipped"] == 1 and doc["summary"]["studies"] == 2
    assert {f["parent_run_id"] for f in doc["findings"]} == {mixed.parent}

    full = json.loads(run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"]).out)
    assert full["summary"]["studies"] == 3 and "studies_skipped" not in full["summary"]
    assert {f["parent_run_id"] for f in full["findings"]} == {old.parent, mixed.parent}

    # a date works the same way; markdown says how many studies were skipped
    day = time.strftime("%Y-%m-%d", time.gmtime((now - 2 * DAY_MS) / 1000))
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--since", day, "--format", "markdown"])
    assert "studies 2 ·" in r.out and "studies skipped (no run since --since) 1" in r.out
    # nothing new: every study skipped, nothing to report
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--since", "30s", "--format", "json"])
    doc = json.loads(r.out)
    assert r.code == 0 and doc["summary"]["studies"] == 0 and doc["summary"]["studies_skipped"] == 3


def test_since_parsing_and_errors(run_cli, builder: Builder) -> None:
    assert parse_since("1d", now=1_000_000.0) == (1_000_000 - 86_400) * 1000
    assert parse_since("90m", now=1_000_000.0) == (1_000_000 - 5_400) * 1000
    assert parse_since("2026-11-20") == 1_795_132_800_000
    assert parse_since("2026-11-20T06:00+02:00") == 1_795_132_800_000 + 4 * 3_600_000
    exp, name = builder.experiment()
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--since", "yesterday"])
    assert_one_error_line(r, 2, "--since 'yesterday': expected a duration like 1d")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "--parent-run-id", "abc", "--since", "1d"])
    assert_one_error_line(r, 2, "--since excludes --check-all and --parent-run-id")


def test_json_findings_stream_in_chunks_as_one_line(run_cli, builder: Builder, monkeypatch) -> None:
    """The streamed JSON is byte for byte what ``json.dumps`` of the whole report writes."""
    from hpohash.render import json_

    exp, name = builder.experiment()
    builder.make_legacy(builder.study(exp))
    builder.make_legacy(builder.study(exp, model="bert"))
    args = ["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"]
    whole = run_cli(args).out
    monkeypatch.setattr(json_, "STREAM_CHUNK", 1)
    r = run_cli(args)
    doc = json.loads(r.out)
    assert len(doc["findings"]) == 20 and r.out == whole
    assert r.out == json.dumps(doc, ensure_ascii=False) + "\n"


def test_audit_per_study_equals_the_whole_scope_audit(builder: Builder) -> None:
    from hpohash.audit import audit, audit_per_study
    from hpohash.plan import build_plan

    exp, _ = builder.experiment()
    a = builder.study(exp)
    builder.make_legacy(a)
    b = builder.study(exp, model="bert")
    builder.make_legacy(b, link_refit=True)
    builder.set(b.refit, code__refit__of_trial_run_id=a.trials[0])  # a link across studies
    builder.study(exp, model="roberta")
    builder.run(exp, "stray", {"code.stage": "hpo", "mlflow.parentRunId": "gone", "code.hpo.trial_number": "1"})
    scope = load_scope(Tracking(builder.uri), TagRegistry(), experiment_ids=[exp])
    whole = audit(scope, build_plan(scope))
    assert len(whole) == 21 and any(f.code == "HH150" for f in whole)
    hps = {r.run_id: s.hp(r) for s in scope.studies for r in s.trials}
    assert audit_per_study(scope) == whole
    # each study's per-run memos are dropped once audited; asked again, the same values come back
    assert all(not s.hyperparameters and not s._canonical_hps and not s._recognised for s in scope.studies)
    assert audit_per_study(scope) == whole
    assert {r.run_id: s.hp(r) for s in scope.studies for r in s.trials} == hps
    assert any(v for v in hps.values()) and scope.studies[0].hp(scope.studies[0].parent) == {}


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB and inherited through vfork on Linux only")
def test_benchmark_timer_reports_the_commands_own_peak_not_its_starters() -> None:
    """Linux records the peak RSS of the process that starts a command into the command's
    ``ru_maxrss``; the benchmarks' timer must not report the benchmark's own memory as verify's."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"
    spec = importlib.util.spec_from_file_location("benchmarks_common", path)
    assert spec is not None and spec.loader is not None
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    ballast = b"x" * (300 * 2**20)  # this process: over 300 MiB resident while the commands start
    try:
        _, small, _ = common.timed([sys.executable, "-c", "pass"])
        _, big, out = common.timed([sys.executable, "-c", "b = b'x' * (120 * 2**20); print(len(b))"])
    finally:
        del ballast
    assert small < 60
    assert 120 <= big < 180 and out == "125829120\n"


def test_objective_metrics_are_read_for_batches_of_consecutive_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose records left metrics out reads them for the trials of up to ``SCORE_BATCH``
    trials of consecutive studies at once; asked again after ``forget``, it reads alone."""
    from hpohash import study as st
    from hpohash.records import Reducer

    monkeypatch.setattr(st, "SCORE_BATCH", 4)
    reducer = Reducer()

    def run(rid: str) -> st.RunRecord:
        return reducer.from_fields(
            run_id=rid, experiment_id="1", name=rid, artifact_uri="", lifecycle_stage="active",
            status="FINISHED", start_time=1, tags=(), params=(), metrics=(),
        )  # fmt: skip

    values = {"a1": 0.5, "a2": 0.7, "b1": 0.9, "c1": 0.1, "c2": 0.2, "c3": 0.3}
    calls: list[tuple[list[str], str]] = []

    def reader(ids: object, metric: str) -> dict[str, float]:
        calls.append((list(ids), metric))  # type: ignore[call-overload]
        known = values if metric == "macro-f1" else {}
        return {rid: known[rid] for rid in ids if rid in known}  # type: ignore[attr-defined]

    studies = []
    for name, trials in (("a", ["a1", "a2", "a0"]), ("b", ["b1"]), ("c", ["c1", "c2", "c3"])):
        s = st.Study(parent=run(name), trials=[run(t) for t in trials], metric_reader=reader)
        studies.append(s)
    st.batch_scores(studies)
    assert dict(studies[0].scores("macro-f1")) == {"a1": 0.5, "a2": 0.7}  # a0 has no value
    assert dict(studies[1].scores("macro-f1")) == {"b1": 0.9}
    assert calls == [(["a1", "a2", "a0", "b1"], "macro-f1")]  # a and b in one read (4 trials)
    assert dict(studies[2].scores("macro-f1")) == {"c1": 0.1, "c2": 0.2, "c3": 0.3}
    assert calls[1:] == [(["c1", "c2", "c3"], "macro-f1")]
    studies[0].forget()
    assert dict(studies[0].scores("macro-f1")) == {"a1": 0.5, "a2": 0.7}
    assert calls[2:] == [(["a1", "a2", "a0"], "macro-f1")]
    assert dict(studies[1].scores("other")) == {}  # another metric: read alone
    assert calls[3:] == [(["b1"], "other")]
