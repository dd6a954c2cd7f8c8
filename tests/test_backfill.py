"""`hpohash backfill` and `hpohash undo` against a real SQLite MLflow store: exact tags after apply."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.entities import ViewType

from hpohash.hashing import trial_key_hash
from tests.builders import EXPECTED, Builder
from tests.conftest import assert_one_error_line

C01 = EXPECTED["c01_realistic.yaml"]
V2 = C01["study_key_hash_v2"]
V1 = C01["study_key_hash_v1"]["1.0"]
# builders.C01_TRIALS are c01 trials 0 and 2 of the reference vectors, plus one of our own
VEC = {0: C01["trials"][0], 1: C01["trials"][2]}


def snapshot(b: Builder, exp_id: str) -> dict[str, tuple[dict, dict, dict]]:
    runs = b.client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)
    return {r.info.run_id: (dict(r.data.tags), dict(r.data.params), dict(r.data.metrics)) for r in runs}


def backfill(run_cli, b: Builder, *args: str) -> tuple[int, dict]:
    r = run_cli(["backfill", "--tracking-uri", b.uri, "--format", "json", *args])
    assert r.code == 2 or r.err == "", r.err
    return r.code, json.loads(r.out) if r.out else {}


def test_legacy_study_exact_tags_idempotent_and_undo(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, folds=2)
    builder.make_legacy(s)
    before = snapshot(builder, exp)

    # dry run: a plan, and not one tag changed
    code, plan = backfill(run_cli, builder, "-e", name, "--dry-run")
    assert code == 0 and plan["dry_run"] is True and plan["journal"] is None
    assert snapshot(builder, exp) == before
    assert plan["summary"] == {
        "runs_planned": 4,
        "tags_planned": 20,
        "runs_written": 0,
        "runs_failed": 0,
        "conflicts": 0,
    }
    code, _ = backfill(run_cli, builder, "-e", name, "--dry-run", "--exit-code")
    assert code == 1

    journal = tmp_path / "j1.jsonl"
    code, done = backfill(run_cli, builder, "-e", name, "--yes", "--journal", str(journal))
    assert code == 0, done
    assert done["summary"]["runs_written"] == 4 and done["journal"] == str(journal)

    fp = {
        "code.fingerprint.data": C01["data_fingerprint"],
        "code.fingerprint.eval": C01["eval_fingerprint"],
        "code.study.key_schema_version": "2.0",
    }
    for i, rid in enumerate(s.trials):
        old_trial = trial_key_hash(V1, s.hps[i], schema="1.0")
        new_trial = VEC[i]["trial_key_hash_v2"]["2.0"] if i in VEC else trial_key_hash(V2, s.hps[i])
        if i in VEC:
            assert old_trial == VEC[i]["trial_key_hash_v1"]["1.0"]
        assert builder.tags(rid) == {
            "code.stage": "hpo",
            "code.hpo.trial_number": str(i),
            "code.study_key_hash": V2,
            "code.trial_key_hash": new_trial,
            "code.legacy.study_key_hash": V1,
            "code.legacy.trial_key_hash": old_trial,
        }  # trials never get schema or fingerprint tags: the pipeline never writes them on trials
    assert builder.tags(s.refit) == {
        "code.stage": "hpo_refit",
        "code.hpo.trial_number": "1",
        "code.artifact.available": "true",
        "code.study_key_hash": V2,
        "code.trial_key_hash": VEC[1]["trial_key_hash_v2"]["2.0"],
        "code.refit.of_trial_run_id": s.trials[1],
        "code.legacy.study_key_hash": V1,
        "code.legacy.trial_key_hash": VEC[1]["trial_key_hash_folder8"]["1.0"],
        **fp,
    }
    after = snapshot(builder, exp)
    for rid, (_, params, metrics) in before.items():
        assert after[rid][1:] == (params, metrics)  # params and metrics untouched
    for fold in s.folds:
        assert after[fold] == before[fold]
    assert after[s.parent] == before[s.parent]  # the v2 parent is the source of truth

    # verify is clean, and a second backfill plans nothing
    assert run_cli(["verify", "--tracking-uri", builder.uri, "-e", name]).code == 0
    code, again = backfill(run_cli, builder, "-e", name, "--dry-run", "--exit-code")
    assert (code, again["changes"], again["conflicts"]) == (0, [], [])

    # the journal: header, then one line per tag, each written before its run
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert lines[0]["command"] == "backfill" and lines[0]["experiments"] == [name]
    assert lines[0]["tracking_uri"] == builder.uri and "time" in lines[0] and lines[0]["tool_version"]
    assert len(lines) == 21 and all(set(x) == {"run_id", "key", "old", "new"} for x in lines[1:])

    # undo restores the exact prior tag set of every run
    r = run_cli(
        [
            "undo",
            str(journal),
            "--tracking-uri",
            builder.uri,
            "--yes",
            "--format",
            "json",
            "--journal",
            str(tmp_path / "undo.jsonl"),
        ]
    )
    assert r.code == 0, r.err
    assert json.loads(r.out)["summary"]["tags_planned"] == 20
    assert snapshot(builder, exp) == before
    # undo again: nothing left to restore
    r = run_cli(["undo", str(journal), "--tracking-uri", builder.uri, "--yes", "--format", "json"])
    again = json.loads(r.out)
    # not a dry run (--yes was given), and no journal: nothing was written
    assert (r.code, again["summary"]["tags_planned"], again["dry_run"], again["journal"]) == (0, 0, False, None)
    # undoing the undo re-applies the backfill
    r = run_cli(["undo", str(tmp_path / "undo.jsonl"), "--tracking-uri", builder.uri, "--yes", "--format", "json"])
    assert r.code == 0
    assert run_cli(["verify", "--tracking-uri", builder.uri, "-e", name]).code == 0


def test_parent_upgraded_when_not_v2(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, parent_tags={"code.study_key_hash": V1})
    for key in (
        "code.study.key_schema_version",
        "code.fingerprint.data",
        "code.fingerprint.eval",
        "code.objective.direction",
    ):
        builder.client.delete_tag(s.parent, key)
    code, done = backfill(run_cli, builder, "-e", name, "--yes")
    assert code == 0, done
    assert builder.tags(s.parent) == {
        "code.stage": "hpo",
        "code.backbone": "distilbert",
        "code.study_key_hash": V2,
        "code.legacy.study_key_hash": V1,
        "code.study.key_schema_version": "2.0",
        "code.fingerprint.data": C01["data_fingerprint"],
        "code.fingerprint.eval": C01["eval_fingerprint"],
        "code.objective.direction": "maximize",
    }
    assert {c["run_id"] for c in done["changes"]} == {s.parent}


def test_dangling_and_ambiguous_links(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.set(s.refit, code__refit__of_trial_run_id="0" * 32)  # dangling
    twin = (s.hps[0], s.hps[0], s.hps[1])  # two trials with the same hyperparameters
    amb = builder.study(exp, hps=twin, scores=(0.9, 0.9, 0.1))
    builder.client.delete_tag(amb.refit, "code.refit.of_trial_run_id")
    for rid in amb.trials + [amb.refit]:
        builder.client.delete_tag(rid, "code.hpo.trial_number")
    code, done = backfill(run_cli, builder, "-e", name, "--yes")
    assert code == 1  # the ambiguous refit is a conflict
    tags = builder.tags(s.refit)
    assert tags["code.refit.of_trial_run_id"] == s.trials[1]
    assert tags["code.legacy.refit_of_trial_run_id"] == "0" * 32
    assert "code.refit.of_trial_run_id" not in builder.tags(amb.refit)
    (conflict,) = done["conflicts"]
    assert conflict["run_id"] == amb.refit and conflict["key"] == "code.refit.of_trial_run_id"
    assert "new trial hash: 2 trials" in conflict["message"]


def test_unknown_provenance_needs_force(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    odd = "ab" * 32
    builder.set(s.trials[0], code__study_key_hash=odd)
    code, done = backfill(run_cli, builder, "-e", name, "--yes")
    assert code == 1
    assert [(c["run_id"], c["key"], c["current"]) for c in done["conflicts"]] == [
        (s.trials[0], "code.study_key_hash", odd)
    ]
    assert builder.tags(s.trials[0])["code.study_key_hash"] == odd
    code, done = backfill(run_cli, builder, "-e", name, "--yes", "--force")
    assert code == 0 and done["conflicts"] == []
    tags = builder.tags(s.trials[0])
    assert (tags["code.study_key_hash"], tags["code.legacy.study_key_hash"]) == (V2, odd)


def test_auto_schema_follows_the_study(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, trial_schema="1.0")
    builder.set(s.refit, code__trial_key_hash="cd" * 32)
    builder.client.delete_tag(s.trials[2], "code.trial_key_hash")
    code, done = backfill(run_cli, builder, "-e", name, "--yes", "--force")
    assert code == 0
    assert builder.tags(s.refit)["code.trial_key_hash"] == VEC[1]["trial_key_hash_v2"]["1.0"]
    assert builder.tags(s.trials[2])["code.trial_key_hash"] == trial_key_hash(V2, s.hps[2], schema="1.0")
    # forced to 2.0, correct 1.0 hashes are kept (either generation is correct)
    code, again = backfill(run_cli, builder, "-e", name, "--dry-run", "--trial-key-schema", "2.0")
    assert (code, again["changes"]) == (0, [])


def test_artifact_available_is_never_invented(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    builder.client.delete_tag(s.refit, "code.artifact.available")
    code, done = backfill(run_cli, builder, "-e", name, "--yes")
    assert code == 1  # an error backfill cannot fix is left, and said: verify and backfill agree
    assert [c["message"].split(":")[0] for c in done["conflicts"]] == ["HH124 not fixable by backfill"]
    assert "code.artifact.available" not in builder.tags(s.refit)
    assert not [c for c in done["changes"] if c["key"] == "code.artifact.available"]
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert [f["code"] for f in json.loads(r.out)["findings"]] == ["HH124"]


def test_table_output(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--dry-run"])
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0].startswith("study ") and f" · parent {s.parent} · " in lines[0]
    assert lines[-2:] == [
        "dry run: 20 tags on 4 runs would change · 0 conflicts · 0 failed",
        f"apply: hpohash backfill --tracking-uri {builder.uri} -e {name} --yes",
    ]
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--dry-run", "--format", "markdown"])
    assert r.code == 0 and r.out.startswith("## hpohash backfill (dry run)")


# ----------------------------------------------------------------------------- bad input


def test_refuses_to_write_without_yes_when_not_a_terminal(run_cli, builder: Builder, monkeypatch) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    before = snapshot(builder, exp)
    monkeypatch.chdir(builder.uri[len("sqlite:///") :].rsplit("/", 1)[0])
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert_one_error_line(r, 2, "pass --yes to apply")
    assert snapshot(builder, exp) == before


def test_option_errors(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    before = snapshot(builder, exp)
    assert_one_error_line(
        run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--exit-code"]),
        2,
        "--exit-code only goes with --dry-run",
    )
    assert_one_error_line(
        run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--dry-run", "--yes"]),
        2,
        "--dry-run and --yes exclude each other",
    )
    assert_one_error_line(
        run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--workers", "0"]),
        2,
        "Invalid value for '--workers'",
    )
    assert_one_error_line(
        run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--trial-key-schema", "3.0"]),
        2,
        "Invalid value for '--trial-key-schema'",
    )
    existing = tmp_path / "exists.jsonl"
    existing.write_text("keep me\n")
    assert_one_error_line(
        run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--journal", str(existing)]),
        2,
        "already exists",
    )
    assert existing.read_text() == "keep me\n"
    assert snapshot(builder, exp) == before


def test_undo_bad_journals(run_cli, sqlite_uri: str, tmp_path: Path) -> None:
    assert_one_error_line(
        run_cli(["undo", str(tmp_path / "none.jsonl"), "--tracking-uri", sqlite_uri]), 2, "cannot read"
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a header"}\n')
    assert_one_error_line(run_cli(["undo", str(bad), "--tracking-uri", sqlite_uri]), 2, "not an hpohash journal")
    bad.write_text('{"hpohash_journal": 1, "tracking_uri": "x"}\n{"run_id": 3}\n{}\n')
    assert_one_error_line(
        run_cli(["undo", str(bad), "--tracking-uri", sqlite_uri]), 2, ":2: expected an object with run_id"
    )
    other = tmp_path / "other.jsonl"
    other.write_text('{"hpohash_journal": 1, "tracking_uri": "sqlite:///elsewhere.db"}\n')
    assert_one_error_line(
        run_cli(["undo", str(other), "--tracking-uri", sqlite_uri]),
        2,
        "journal was written against sqlite:///elsewhere.db",
    )
