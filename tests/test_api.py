"""The library: the commands as functions on a real SQLite store, equal to what the CLI prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hpohash
from tests.builders import Builder


def test_verify_plan_apply_undo_as_functions(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    report = hpohash.verify(tracking_uri=builder.uri, experiments=[name])
    cli = json.loads(run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"]).out)
    assert report.ok is False and [f.as_dict() for f in report.findings] == cli["findings"]
    assert json.loads(json.dumps(report.as_dict(), default=list)) == cli
    assert {(f.code, f.run_id) for f in report.findings} >= {("HH110", s.trials[0]), ("HH121", s.refit)}
    assert [st.parent_run_id for st in report.studies] == [s.parent]

    plan = hpohash.plan_backfill(tracking_uri=builder.uri, experiments=[name])
    assert plan.conflicts == () and plan.fixes_errors and len(plan.changes) == 20
    assert {c.fixes for c in plan.changes if c.key == "code.refit.of_trial_run_id"} == {("HH121", "HH122", "HH130")}
    done = hpohash.apply(plan, journal=tmp_path / "j.jsonl")
    assert done.journal == str(tmp_path / "j.jsonl") and done.result is not None and done.result.runs_written == 4
    assert hpohash.verify(tracking_uri=builder.uri, experiments=[name]).ok

    undone = hpohash.undo([tmp_path / "j.jsonl"], tracking_uri=builder.uri, journal=tmp_path / "u.jsonl")
    assert undone.ok and undone.result is not None and undone.result.runs_written == 4
    assert not hpohash.verify(tracking_uri=builder.uri, experiments=[name]).ok


def test_declined_confirmation_writes_nothing(builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    before = builder.tags(s.trials[0])
    plan = hpohash.plan_backfill(tracking_uri=builder.uri, experiments=[name])
    asked: list[str] = []
    with pytest.raises(hpohash.Aborted):
        hpohash.apply(plan, journal=tmp_path / "j.jsonl", confirm=lambda what: asked.append(what) or False)
    assert asked == [f"20 tags on 4 runs to {builder.uri}"]
    assert builder.tags(s.trials[0]) == before and not (tmp_path / "j.jsonl").exists()


def test_errors_are_raised_not_exit_codes(builder: Builder) -> None:
    with pytest.raises(hpohash.UsageError, match="experiment 'no-such-experiment' not found"):
        hpohash.verify(tracking_uri=builder.uri, experiments=["no-such-experiment"])
    with pytest.raises(hpohash.UsageError, match="^select HX1: no finding code starts with it") as err:
        hpohash.verify(tracking_uri=builder.uri, experiments=["x"], select=["HX1"])
    # the library names its arguments; the command line names the option
    assert err.value.naming({"select": "--select"}).startswith("--select HX1: no finding code starts with it")
