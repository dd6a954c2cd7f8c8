"""`hpohash verify` against a real SQLite MLflow store: each finding on the run it belongs to."""

from __future__ import annotations

import json

import pytest
import yaml

from hpohash import hashing as h
from hpohash.hashing import trial_key_hash
from tests.builders import EXPECTED, Builder, load_case
from tests.conftest import assert_one_error_line

C01 = EXPECTED["c01_realistic.yaml"]


def verify(run_cli, uri: str, *args: str) -> tuple[int, dict]:
    r = run_cli(["verify", "--tracking-uri", uri, "--format", "json", *args])
    assert r.err == "" or r.code == 2, r.err
    return r.code, json.loads(r.out)


def findings(doc: dict) -> list[tuple[str, str, str | None]]:
    return sorted((f["code"], f["run_id"], f["cause"]) for f in doc["findings"])


def test_correct_study_has_no_findings(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, folds=2)
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert code == 0
    assert doc["findings"] == []
    assert doc["schema"] == "hpohash.verify/1"
    assert doc["experiments"] == [name]
    assert doc["summary"] == {
        "studies": 1, "parents": 1, "trials": 3, "refits": 1, "errors": 0, "warnings": 0, "ok": True,
    }  # fmt: skip
    assert doc["studies"] == [
        {
            "parent_run_id": s.parent,
            "model": "distilbert",
            "model_source": "tag:code.backbone (parent)",
            "study_key_hash": C01["study_key_hash_v2"],
            "recomputed_study_key_hash": C01["study_key_hash_v2"],
            "config_source": {
                "revision": "artifacts",
                "commit": None,
                "date": None,
                "files": {n: f"run {s.parent} artifact config/{n}.yaml" for n in ("data", "hpo", "train")},
            },
            "trials": 3,
            "refits": 1,
            "errors": 0,
            "warnings": 0,
        }
    ]


def test_trial_key_generation_1_0_is_accepted(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, trial_schema="1.0")
    assert builder.tags(s.trials[0])["code.trial_key_hash"] == C01["trials"][0]["trial_key_hash_v2"]["1.0"]
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert (code, doc["findings"]) == (0, [])


def test_json_configs_and_table_output(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    builder.study(exp, config_format="json")
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert (code, doc["findings"]) == (0, [])
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name])
    assert r.code == 0 and r.out.splitlines()[-1] == "no findings: 5 runs of 1 study checked"
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "markdown"])
    assert r.code == 0 and r.out.startswith("## hpohash verify — ✅ no errors")


def test_legacy_study_findings_and_causes(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert code == 1
    t0, t1, t2 = s.trials
    assert findings(doc) == sorted(
        [
            *[("HH110", t, "v1") for t in s.trials],
            *[("HH112", t, "v1") for t in s.trials],
            ("HH120", s.refit, "v1"),
            ("HH121", s.refit, None),
            ("HH123", s.refit, "folder8"),
            ("HH130", t1, None),
        ]
    )
    by = {(f["code"], f["run_id"]): f for f in doc["findings"]}
    f = by[("HH112", t0)]
    assert f["severity"] == "error" and f["stage"] == "trial" and f["parent_run_id"] == s.parent
    assert f["expected"] == C01["trials"][0]["trial_key_hash_v2"]["2.0"]
    assert f["actual"] == C01["trials"][0]["trial_key_hash_v1"]["1.0"]
    assert f["fixable"] is True
    f = by[("HH110", t0)]
    assert (f["expected"], f["actual"]) == (C01["study_key_hash_v2"], C01["study_key_hash_v1"]["1.0"])
    assert by[("HH123", s.refit)]["actual"] == C01["trials"][2]["trial_key_hash_folder8"]["1.0"]
    assert by[("HH121", s.refit)]["fixable"] is True
    assert by[("HH130", t1)]["fixable"] is True  # backfill links the refit to the champion
    assert doc["summary"]["errors"] == 10 and doc["summary"]["ok"] is False


def test_parent_findings(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    v1 = C01["study_key_hash_v1"]["2.0"]
    s1 = builder.study(exp, parent_tags={"code.study.key_schema_version": "1.0", "code.study_key_hash": v1})
    s2 = builder.study(exp)
    builder.client.delete_tag(s2.parent, "code.study.key_schema_version")
    s3 = builder.study(exp)
    builder.client.delete_tag(s3.parent, "code.study_key_hash")
    s4 = builder.study(exp)
    builder.client.delete_tag(s4.parent, "code.fingerprint.eval")
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert code == 1
    got = [(f["code"], f["run_id"], f["cause"]) for f in doc["findings"] if f["stage"] == "parent"]
    assert sorted(got) == sorted(
        [("HH101", s1.parent, "v1"), ("HH101", s2.parent, "v2"), ("HH100", s3.parent, None), ("HH103", s4.parent, None)]
    )
    # s1's trials carry the v2 hash the recomputation gives, so only the parent is wrong
    assert not [f for f in doc["findings"] if f["run_id"] in s1.trials]
    hh103 = next(f for f in doc["findings"] if f["code"] == "HH103")
    assert (hh103["severity"], hh103["expected"], hh103["actual"]) == ("warning", C01["eval_fingerprint"], None)


def test_parent_tagged_v2_with_seed_eval_hash(run_cli, builder: Builder) -> None:
    c = load_case("c01_realistic.yaml")
    seed = h.hash_payload(h.study_key_v2(c["data"], c["hpo"], c["train"], "distilbert", eval_cfg={}))
    exp, name = builder.experiment()
    s = builder.study(exp, parent_tags={"code.study_key_hash": seed})
    # trials follow the parent's tag (the source of truth)
    for rid, hp in zip(s.trials + [s.refit], [*s.hps, s.hps[1]], strict=True):
        builder.set(rid, code__study_key_hash=seed, code__trial_key_hash=trial_key_hash(seed, hp))
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert findings(doc) == [("HH102", s.parent, "seed-eval")]
    assert doc["findings"][0]["severity"] == "warning"
    assert code == 0
    strict = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--strict", "--quiet"])
    assert strict.code == 1


def test_refit_link_findings(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    other = builder.study(exp)
    deleted_trial = builder.run(exp, "gone", {"code.stage": "hpo", "mlflow.parentRunId": s.parent})
    builder.client.delete_run(deleted_trial)
    builder.set(s.refit, code__refit__of_trial_run_id=other.trials[0])
    builder.set(other.refit, code__refit__of_trial_run_id=deleted_trial, code__artifact__available="false")
    code, doc = verify(run_cli, builder.uri, "-e", name)
    got = {(f["code"], f["run_id"]): f for f in doc["findings"]}
    assert "is not a trial of this study" in got[("HH122", s.refit)]["message"]
    assert "is deleted" in got[("HH122", other.refit)]["message"]
    assert got[("HH124", other.refit)]["actual"] == "false"
    assert deleted_trial not in {f["run_id"] for f in doc["findings"]}
    assert code == 1


def test_refit_link_to_missing_run(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.set(s.refit, code__refit__of_trial_run_id="0" * 32)
    _, doc = verify(run_cli, builder.uri, "-e", name)
    f = next(f for f in doc["findings"] if f["code"] == "HH122")
    assert f["run_id"] == s.refit and "does not exist in the scanned experiments" in f["message"]


def test_trial_without_hash_and_output_dir(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.client.delete_tag(s.trials[2], "code.trial_key_hash")
    v1 = C01["study_key_hash_v1"]["1.0"]
    builder.set(s.refit, code__output_dir=f"outputs/hpo/study-{v1[:8]}/trial-1")
    builder.set(s.trials[0], code__output_dir=f"outputs/hpo/study-{C01['study_key_hash_v2'][:8]}/trial-0")
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert findings(doc) == sorted([("HH111", s.trials[2], None), ("HH160", s.refit, None)])
    f = next(f for f in doc["findings"] if f["code"] == "HH160")
    assert (f["expected"], f["actual"]) == (f"study-{C01['study_key_hash_v2'][:8]}", f"study-{v1[:8]}")
    assert code == 1


def test_missing_and_malformed_configs(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    ok = builder.study(exp)
    no_cfg = builder.study(exp, config_format=None)
    bad = builder.study(exp, config_format=None)
    builder.client.log_text(bad.parent, "search_space: [1, 2\n", "config/hpo.yaml")
    builder.client.log_text(bad.parent, "name: x\n", "config/data.yaml")
    builder.client.log_text(bad.parent, "{}", "config/train.json")
    code, doc = verify(run_cli, builder.uri, "-e", name)
    got = {(f["code"], f["run_id"]): f for f in doc["findings"]}
    assert set(got) == {("HH140", no_cfg.parent), ("HH141", bad.parent)}
    assert got[("HH140", no_cfg.parent)]["severity"] == "warning"
    msg = got[("HH141", bad.parent)]["message"]
    assert f"run {bad.parent} artifact config/hpo.yaml" in msg and "malformed YAML" in msg
    assert [s["parent_run_id"] for s in doc["studies"]] == [ok.parent, no_cfg.parent, bad.parent]
    assert doc["studies"][1]["recomputed_study_key_hash"] is None
    assert code == 1


def test_config_dir_supplies_missing_configs(run_cli, builder: Builder, c01_dir) -> None:
    exp, name = builder.experiment()
    builder.study(exp, config_format=None)
    code, doc = verify(run_cli, builder.uri, "-e", name, "--config-dir", str(c01_dir))
    assert (code, doc["findings"]) == (0, [])
    assert doc["studies"][0]["recomputed_study_key_hash"] == C01["study_key_hash_v2"]


def test_folds_and_deleted_runs_are_never_reported(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, folds=3)
    broken = builder.run(
        exp, "deleted-trial", {"code.stage": "hpo", "mlflow.parentRunId": s.parent, "code.study_key_hash": "bad"}
    )
    builder.client.delete_run(broken)
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert (code, doc["findings"]) == (0, [])
    assert doc["summary"]["trials"] == 3
    code, doc = verify(run_cli, builder.uri, "-e", name, "--include-deleted")
    assert ("HH110", broken) in {(f["code"], f["run_id"]) for f in doc["findings"]}


def test_250_trials_are_checked_in_full(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    hps = tuple(
        {"learning_rate": 1e-5 + i * 1e-7, "batch_size": 8, "dropout": 0.1, "weight_decay": 0.01} for i in range(250)
    )
    s = builder.study(exp, hps=hps, scores=tuple(0.5 + i / 1000 for i in range(250)))
    builder.set(s.trials[249], code__trial_key_hash="f" * 64)  # the very last one
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert doc["summary"]["trials"] == 250
    assert findings(doc) == [("HH112", s.trials[249], "unknown")]
    assert code == 1


def test_trials_in_second_experiment_found_by_lineage(run_cli, builder: Builder) -> None:
    exp_a, name_a = builder.experiment("sweeps")
    exp_b, name_b = builder.experiment("trials")
    s = builder.study(exp_a, trial_experiment=exp_b)
    code, doc = verify(run_cli, builder.uri, "-e", name_a, "-e", name_b)
    assert (code, doc["findings"]) == (0, [])
    assert doc["summary"]["trials"] == 3
    # only the trials' experiment: the parent is out of scope
    code, doc = verify(run_cli, builder.uri, "-e", name_b)
    assert findings(doc) == sorted(("HH150", t, None) for t in s.trials)
    assert code == 0
    # --parent-run-id finds the trials in the other experiment through the lineage tag
    code, doc = verify(run_cli, builder.uri, "--parent-run-id", s.parent)
    assert (code, doc["summary"]["trials"], doc["findings"]) == (0, 3, [])


def test_model_from_trial_param_when_parent_has_only_code_model(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp, model="distilbert-base-uncased")
    builder.client.delete_tag(s.parent, "code.backbone")
    builder.set(s.parent, code__model="distilbert")  # the pipeline's shortened name
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert (code, doc["findings"]) == (0, [])
    assert doc["studies"][0]["model"] == "distilbert-base-uncased"
    assert doc["studies"][0]["model_source"] == f"param:backbone (run {s.trials[0]})"


def test_parent_run_id_scope(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s1 = builder.study(exp)
    s2 = builder.study(exp)
    builder.make_legacy(s2)
    code, doc = verify(run_cli, builder.uri, "--parent-run-id", s1.parent)
    assert (code, doc["summary"]["studies"], doc["findings"]) == (0, 1, [])
    code, doc = verify(run_cli, builder.uri, "--parent-run-id", s2.parent, "-e", name)
    assert code == 1 and {f["parent_run_id"] for f in doc["findings"]} == {s2.parent}


def test_tags_config_renamed_keys(run_cli, builder: Builder, tmp_path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.set(s.refit, team__link=s.trials[1])  # the team's own key for the refit link
    builder.client.delete_tag(s.refit, "code.refit.of_trial_run_id")
    cfg = tmp_path / "tags.yaml"
    cfg.write_text(yaml.safe_dump({"refit": {"of_trial_run_id": "team.link"}}))
    code, doc = verify(run_cli, builder.uri, "-e", name, "--tags-config", str(cfg))
    assert (code, doc["findings"]) == (0, [])
    code, doc = verify(run_cli, builder.uri, "-e", name)
    assert ("HH121", s.refit, None) in findings(doc)


# ----------------------------------------------------------------------------- bad input


def test_unknown_experiment(run_cli, sqlite_uri: str) -> None:
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "no-such-exp"]),
        2,
        f"experiment 'no-such-exp' not found at {sqlite_uri}",
    )
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "--experiment-id", "987654"]),
        2,
        "experiment id '987654' not found",
    )


def test_unknown_parent_run(run_cli, sqlite_uri: str) -> None:
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "--parent-run-id", "f" * 32]), 2, f"run '{'f' * 32}' not found"
    )


def test_parent_run_id_that_is_a_trial(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", builder.uri, "--parent-run-id", s.trials[0]]),
        2,
        f"--parent-run-id {s.trials[0]}: not the parent run of a study (it is: trial)",
    )


def test_no_experiment_given(run_cli, sqlite_uri: str) -> None:
    assert_one_error_line(run_cli(["verify", "--tracking-uri", sqlite_uri]), 2, "give --experiment-name/-e NAME")


def test_missing_sqlite_file_is_not_created(run_cli, tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'typo.db'}"
    assert_one_error_line(run_cli(["verify", "--tracking-uri", uri, "-e", "x"]), 2, "no such SQLite file")
    assert not (tmp_path / "typo.db").exists()


def test_bad_tags_config(run_cli, sqlite_uri: str, tmp_path) -> None:
    f = tmp_path / "tags.yaml"
    f.write_text("grouping: 3\n")
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "x", "--tags-config", str(f)]),
        2,
        f"--tags-config {f}: section 'grouping' must map names to tag keys",
    )


def test_bad_config_dir(run_cli, sqlite_uri: str, builder: Builder, tmp_path) -> None:
    exp, name = builder.experiment()
    (tmp_path / "hpo.yaml").write_text("- 1\n")
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", name, "--config-dir", str(tmp_path)]), 2, "not a mapping"
    )
    missing = tmp_path / "nope"
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", name, "--config-dir", str(missing)]),
        2,
        f"--config-dir: {missing}: no such directory",
    )


def test_check_all_with_parent_is_usage_error(run_cli, sqlite_uri: str) -> None:
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "--check-all", "--parent-run-id", "x"]),
        2,
        "--check-all and --parent-run-id exclude each other",
    )


def test_unreachable_server_fails_fast() -> None:
    """A real process with hpohash's retry defaults (no MLFLOW_HTTP_* set): one line, exit 3, seconds."""
    import os
    import subprocess
    import sys
    import time

    from tests.server import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    start = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "hpohash", "verify", "--tracking-uri", f"http://127.0.0.1:{free_port()}", "-e", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    elapsed = time.monotonic() - start
    assert p.returncode == 3, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("hpohash: error: ") and "Traceback" not in p.stderr
    assert "tracking backend failed" in p.stderr
    assert elapsed < 30, elapsed


@pytest.mark.parametrize("flag", ["--verbose", "-v"])
def test_verbose_shows_traceback(flag: str, sqlite_uri: str) -> None:
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "hpohash", "verify", "--tracking-uri", sqlite_uri, "-e", "nope", flag],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "Traceback" in p.stderr and "UsageError" in p.stderr  # --verbose keeps the code


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_closed_pipe_keeps_the_exit_code(builder: Builder, fmt: str) -> None:
    """`hpohash verify | head`: the reader leaves early; the gate still says 0 (warnings only)."""
    import subprocess
    import sys

    exp, name = builder.experiment()
    hps = tuple(
        {"learning_rate": 1e-5 + i * 1e-7, "batch_size": 8, "dropout": 0.1, "weight_decay": 0.01} for i in range(150)
    )
    s = builder.study(exp, hps=hps, scores=tuple(0.5 + i / 1000 for i in range(150)))
    for rid in s.trials:  # 150 HH160 warnings: far more output than a pipe buffer holds, and exit 0
        builder.set(rid, code__output_dir=f"outputs/hpo/study-{'0' * 8}/{rid}")
    p = subprocess.Popen(
        [sys.executable, "-m", "hpohash", "verify", "--tracking-uri", builder.uri, "-e", name, "--format", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(100)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Error" not in err
