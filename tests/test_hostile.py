"""Hostile input and faults (issue 10): no leaked secret, no crash, no hang, the documented exit code.

Every case runs against a real SQLite store (or files on disk) and asserts the exact exit code and
message; the few forced faults (a bug, a full disk, Ctrl-C on the N-th write) are patched into an
otherwise real run.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hpohash.errors import EXIT_INTERNAL, EXIT_INTERRUPTED
from hpohash.tracking import Tracking
from tests.builders import Builder, load_case
from tests.conftest import assert_one_error_line

#: a 350-byte "billion laughs": 9 levels of 9 aliases, 9**9 (387 million) strings once expanded
BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
BAD_CONFIGS = {
    "bomb.yaml": (BOMB, "expands to more than 200,000 values"),
    "deep.json": ("[" * 100_000 + "]" * 100_000, "nested deeper than 100 levels"),
    "deep.yaml": ("a: " + "[" * 500 + "]" * 500, "nested deeper than 100 levels"),
    "longint.json": ('{"a": ' + "9" * 5000 + "}", "integer too long"),
    "longint.yaml": ("a: " + "9" * 5000 + "\n", "integer too long"),
    "nan.yaml": ("a: {b: .nan}\n", "holds a value JSON cannot express: nan at a.b"),
    "inf.yaml": ("a: .inf\n", "holds a value JSON cannot express: inf at a"),
    "inf.json": ('{"a": Infinity}', "Infinity is not a value JSON can express"),
    "huge.json": ('{"a": 1e999}', "holds a value JSON cannot express: inf at a"),
    "recursive.yaml": ("a: &x [*x]\n", "recursive structure"),
    "binary.yaml": (b"\xff\xfe\x00binary", "not UTF-8 text"),
}


def snapshot(b: Builder, exp_id: str) -> dict[str, tuple]:
    """Everything a write could touch: tags, params, metrics and the run name, per run."""
    from mlflow.entities import ViewType

    runs = b.client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)
    return {
        r.info.run_id: (dict(r.data.tags), dict(r.data.params), dict(r.data.metrics), r.info.run_name) for r in runs
    }


def write(path: Path, body: str | bytes) -> Path:
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


@pytest.fixture
def good_files(tmp_path: Path) -> dict[str, Path]:
    case = load_case("c01_realistic.yaml")
    return {n: write(tmp_path / f"{n}.yaml", yaml.safe_dump(case[n])) for n in ("data", "hpo", "train")}


# ------------------------------------------------------------------------------------ 1. secrets

SECRETS = ("pw-S3CRET", "pw-S3CR%45T", "tok-S3CRET", "env-T0KEN-S3CRET", "Bearer-S3CRET")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text[:2000])


def test_no_secret_in_any_output_of_a_failing_backend(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A password in the URI (plain and percent-encoded), a token query parameter and an env token."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "env-T0KEN-S3CRET")
    for uri in ("http://user:pw-S3CRET@127.0.0.1:9", "http://user:pw-S3CR%45T@127.0.0.1:9/?token=tok-S3CRET"):
        for extra in ([], ["--verbose"], ["--format", "json"], ["--format", "markdown"], ["--quiet"]):
            r = run_cli(["verify", "--tracking-uri", uri, "-e", "x", *extra])
            assert r.code == 3, (extra, r.err)
            assert_no_secret(r.out, r.err)
            assert "tracking backend failed" in r.err.strip().splitlines()[-1]
            assert ("Traceback" in r.err) == ("--verbose" in extra)
        r = run_cli(["undo", "nothing.jsonl", "--tracking-uri", uri, "--verbose"])
        assert r.code == 2 and "cannot read" in r.err
        assert_no_secret(r.out, r.err)


def test_redact_shapes() -> None:
    from hpohash.redact import redact

    text = (
        "API request to http://alice:pw-S3CRET@host:5000/api?x=1&token=tok-S3CRET&sig=abc%2Fdef failed; "
        "https://tok-S3CRET@github.com/x; Authorization: Bearer Bearer-S3CRET; s3://bucket/key?X-Amz-Signature=ff"
    )
    out = redact(text)
    assert_no_secret(out)
    assert out == (
        "API request to http://***@host:5000/api?x=1&token=***&sig=*** failed; "
        "https://***@github.com/x; Authorization: Bearer ***; s3://bucket/key?X-Amz-Signature=***"
    )
    assert redact('{"ok": true, "hash": "ab12"}') == '{"ok": true, "hash": "ab12"}'


@pytest.mark.server
def test_no_secret_in_failures_json_table_or_journal(
    run_cli, http_builder: Builder, mlflow_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real MLflow error text (from a credentialed URI) in failures[].error, tables and the journal."""
    exp, name = http_builder.experiment()
    s = http_builder.study(exp)
    http_builder.make_legacy(s)
    secret_uri = mlflow_server.uri.replace("http://", "http://user:pw-S3CRET@")
    original = Tracking.set_tags

    def second_write_hits_a_dead_port(self: Tracking, run_id: str, tags: dict) -> None:
        if run_id == s.trials[1]:
            from mlflow import MlflowClient
            from mlflow.entities import RunTag

            dead = MlflowClient(tracking_uri="http://user:pw-S3CRET@127.0.0.1:9")
            dead.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])  # the real error text
        original(self, run_id, tags)

    monkeypatch.setattr(Tracking, "set_tags", second_write_hits_a_dead_port)
    journal = tmp_path / "j.jsonl"
    r = run_cli(["backfill", "--tracking-uri", secret_uri, "-e", name, "--yes", "--format", "json", "--journal",
                 str(journal), "--workers", "1"])  # fmt: skip
    assert r.code == 3, r.err
    doc = json.loads(r.out)
    (failure,) = doc["failures"]
    assert failure["run_id"] == s.trials[1]
    assert "http://***@127.0.0.1:9/api/2.0/mlflow/runs/log-batch" in failure["error"]
    assert_no_secret(r.out, r.err, journal.read_text())
    assert json.loads(journal.read_text().splitlines()[0])["tracking_uri"] == mlflow_server.uri
    # the same failure again (that run is still unwritten), printed by the Markdown renderer
    r = run_cli(["backfill", "--tracking-uri", secret_uri, "-e", name, "--yes", "--format", "markdown",
                 "--journal", str(tmp_path / "md.jsonl")])  # fmt: skip
    assert r.code == 3 and "log-batch" in r.out, r.out
    assert_no_secret(r.out, r.err, (tmp_path / "md.jsonl").read_text())


# ------------------------------------------------------------------------------------ 2. exit codes


def test_verbose_keeps_usage_and_backend_codes(run_cli, sqlite_uri: str) -> None:
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "no-such-experiment", "--verbose"])
    assert r.code == 2 and "Traceback" in r.err
    last = r.err.strip().splitlines()[-1]
    assert last == f"hpohash: error: experiment 'no-such-experiment' not found at {sqlite_uri}"
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "--bogus-option", "--verbose"])
    assert r.code == 2 and r.err.strip().splitlines()[-1] == "hpohash: error: No such option '--bogus-option'."
    r = run_cli(["verify", "--tracking-uri", "http://127.0.0.1:9", "-e", "x", "-v"])
    assert r.code == 3 and "Traceback" in r.err and "tracking backend failed" in r.err.strip().splitlines()[-1]


def test_a_bug_is_exit_4_and_says_report_it(run_cli, c01_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hpohash.hashing

    def bug(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(hpohash.hashing, "hash_report", bug)
    args = ["hash", "--config-dir", str(c01_dir), "--model", "m"]
    r = run_cli(args)
    assert r.code == EXIT_INTERNAL == 4
    assert r.err == (
        "hpohash: internal error: ZeroDivisionError: division by zero — a bug in hpohash, please report it "
        "(rerun with --verbose for the traceback)\n"
    )
    r = run_cli([*args, "--verbose"])
    assert r.code == 4 and "Traceback" in r.err and "in bug" in r.err
    assert r.err.strip().splitlines()[-1].endswith("a bug in hpohash, please report it")


# ------------------------------------------------------------------------------------ 3. bounded parsing


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_user_config_is_one_line_exit_2_fast(
    run_cli, good_files: dict[str, Path], tmp_path: Path, name: str
) -> None:
    body, fragment = BAD_CONFIGS[name]
    bad = write(tmp_path / name, body)
    start = time.monotonic()
    r = run_cli(["hash", "--data", str(bad), "--hpo", str(good_files["hpo"]), "--train", str(good_files["train"]),
                 "--model", "m", "--format", "json"])  # fmt: skip
    assert time.monotonic() - start < 1.0
    assert_one_error_line(r, 2, f"config {bad}: ")
    assert fragment in r.err


def test_bad_config_dir_is_exit_2(run_cli, good_files: dict[str, Path], tmp_path: Path, sqlite_uri: str) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for p in good_files.values():
        shutil.copy(p, d / p.name)
    write(d / "hpo.yaml", BOMB)
    start = time.monotonic()
    assert_one_error_line(run_cli(["hash", "--config-dir", str(d), "--model", "m"]), 2, "expands to more than")
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "x", "--config-dir", str(d)]), 2, "expands to more than"
    )
    assert time.monotonic() - start < 2.0


def test_process_substitution_reads_like_a_file(run_cli, good_files: dict[str, Path], c01_dir: Path) -> None:
    """``--data <(cat data.yaml)`` is a pipe at /dev/fd/N: read it (bounded), do not call it missing."""
    fds = []
    paths = {}
    for name, path in good_files.items():
        r, w = os.pipe()
        os.write(w, path.read_bytes())
        os.close(w)
        fds.append(r)
        paths[name] = f"/dev/fd/{r}"
    try:
        r = run_cli(["hash", "--data", paths["data"], "--hpo", paths["hpo"], "--train", paths["train"],
                     "--model", "distilbert", "--format", "json"])  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)
    assert r.code == 0, r.err
    direct = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "distilbert", "--format", "json"])
    assert json.loads(r.out)["study_key_hash"] == json.loads(direct.out)["study_key_hash"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"lr": NaN}', "--hyperparameters #1: NaN is not a value JSON can express"),
        ('{"lr": -Infinity}', "--hyperparameters #1: -Infinity is not a value JSON can express"),
        ('{"lr": 1e400}', "--hyperparameters #1: holds a value JSON cannot express: inf at lr"),
        ('{"n": ' + "1" * 5000 + "}", "--hyperparameters #1: holds an integer too long"),
        ('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}", "--hyperparameters #1: nested deeper than 100 levels"),
        ("[1]", "--hyperparameters #1: expected a JSON object, got list"),
    ],
)
def test_bad_hyperparameters(run_cli, c01_dir: Path, text: str, fragment: str) -> None:
    r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "m", "--hyperparameters", text, "--format", "json"])
    assert_one_error_line(r, 2, fragment)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\xfe\x00\x01", "not UTF-8 text"),
        (BOMB.encode(), "expands to more than 200,000 values"),
        (b"grouping: " + b"[" * 500 + b"]" * 500, "nested deeper than 100 levels"),
        (b"grouping: {study_key_hash: " + b"9" * 5000 + b"}", "holds an integer too long"),
    ],
)
def test_bad_tags_config(run_cli, sqlite_uri: str, tmp_path: Path, body: bytes, fragment: str) -> None:
    f = write(tmp_path / "tags.yaml", body)
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "x", "--tags-config", str(f)])
    assert_one_error_line(r, 2, f"--tags-config {f}: {fragment}")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\xfe\x00\x01", "not UTF-8 text"),
        (b'{"hpohash_journal": 1, "experiments": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", ":1: nested deeper"),
        (b'{"hpohash_journal": 1, "tracking_uri": ' + b"7" * 5000 + b"}\n", ":1: holds an integer too long"),
        (b'{"hpohash_journal": 1, "tracking_uri": ["x"]}\n', ":1: header's tracking_uri must be a string"),
        (b"\n\n\n", "empty"),
        (b'{"hpohash_journal": 1}\n{"run_id": "r1", "key": "k", "old": NaN, "new": "x"}\n', ":2: NaN is not"),
        (b'{"hpohash_journal": 1}\n{"run_id": "r\' OR 1", "key": "k", "old": null, "new": "x"}\n', ":2: run_id or key"),
    ],
)
def test_bad_journal(run_cli, sqlite_uri: str, tmp_path: Path, body: bytes, fragment: str) -> None:
    f = write(tmp_path / "j.jsonl", body)
    r = run_cli(["undo", str(f), "--tracking-uri", sqlite_uri, "--dry-run"])
    assert_one_error_line(r, 2, f"journal {f}")
    assert fragment in r.err


def test_bad_config_artifacts_are_hh141_per_study(run_cli, builder: Builder) -> None:
    """A logged bomb, NaN, deep or long-int config is HH141 for its study (with its run's stage),
    in well under a second each; the healthy study in the same experiment is still checked."""
    exp, name = builder.experiment()
    healthy = builder.study(exp)
    broken = {}
    for fname, text in (("hpo.yaml", BOMB), ("data.yaml", "x: .nan\n"), ("train.json", "[" * 100_000),
                        ("hpo.json", '{"a": ' + "5" * 5000 + "}")):  # fmt: skip
        s = builder.study(exp, config_format=None)  # the parent logs nothing: configs come from the refit
        case = load_case("c01_realistic.yaml")
        for n in ("data", "hpo", "train"):
            if not fname.startswith(n):
                builder.client.log_text(s.refit, yaml.safe_dump(case[n]), f"config/{n}.yaml")
        builder.client.log_text(s.refit, text, f"config/{fname}")
        broken[s.parent] = (s.refit, fname)
    start = time.monotonic()
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert time.monotonic() - start < 3.0
    assert r.code == 1 and r.err == ""
    doc = json.loads(r.out)
    hh141 = {f["parent_run_id"]: f for f in doc["findings"] if f["code"] == "HH141"}
    assert set(hh141) == set(broken)
    for pid, (refit, fname) in broken.items():
        f = hh141[pid]
        assert (f["run_id"], f["stage"], f["severity"]) == (refit, "refit", "error")
        assert f"config run {refit} artifact config/{fname} is malformed: " in f["message"]
    assert not [f for f in doc["findings"] if f["parent_run_id"] == healthy.parent]
    assert {st["parent_run_id"]: st["recomputed_study_key_hash"] for st in doc["studies"]}[healthy.parent]


def test_verify_json_is_strict_even_with_nan_params(run_cli, builder: Builder) -> None:
    """A trial param 'nan' in a float search space becomes float('nan'): stdout JSON stays strict."""
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.client.log_param(builder.run(exp, "t-nan", {"code.stage": "hpo", "mlflow.parentRunId": s.parent,
                                                        "code.hpo.trial_number": "9"}), "dropout", "nan")  # fmt: skip
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert r.code == 1
    json.loads(r.out, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    nan_trial = [rid for rid in snapshot(builder, exp) if rid not in {s.parent, s.refit, *s.trials}][0]
    r = run_cli(["diff", nan_trial, s.trials[0], "--tracking-uri", builder.uri, "--format", "json"])
    assert r.code == 1, r.err
    doc = json.loads(r.out, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))
    assert {"path": "hyperparameters.dropout", "a": "nan", "b": 0.1733} in doc["differences"]


# ------------------------------------------------------------------------------------ 4. tags files


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("process: {stage: mlflow.runName}\n", "'process.stage' = 'mlflow.runName' is an MLflow system tag"),
        ("grouping: {study_key_hash: MLflow.Note}\n", "is an MLflow system tag"),
        (
            "grouping: {study_key_hash: code.h, trial_key_hash: code.h}\n",
            "'grouping.study_key_hash' and 'grouping.trial_key_hash' both map to 'code.h'",
        ),
        ("hpo: {trial_number: code.stage}\n", "the default of stage and 'hpo.trial_number' both map to 'code.stage'"),
        ("grouping: {study_key_hash: code.legacy.x}\n", "is under code.legacy."),
        ('grouping: {study_key_hash: "a`b"}\n', "is not an MLflow tag key"),
    ],
)
def test_tags_config_cannot_point_at_the_wrong_tags(
    run_cli, builder: Builder, tmp_path: Path, body: str, fragment: str
) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    before = snapshot(builder, exp)
    f = write(tmp_path / "tags.yaml", body)
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--force", "--tags-config", str(f)])
    assert_one_error_line(r, 2, fragment)
    assert snapshot(builder, exp) == before
    assert not (Path.cwd() / ".hpohash").exists()


# ------------------------------------------------------------------------------------ 5. loops


def test_lineage_loops_are_findings(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    looped = builder.run(exp, "refit-loop", {"code.stage": "hpo_refit"})
    builder.set(looped, code__lineage__hpo_sweep_run_id=looped)
    selfish = builder.run(exp, "refit-self", {"code.stage": "hpo_refit"})
    builder.set(selfish, mlflow__parentRunId=selfish)
    a = builder.run(exp, "trial-a", {"code.stage": "hpo_trial", "code.hpo.trial_number": "1"})
    b = builder.run(exp, "trial-b", {"code.stage": "hpo_trial", "code.lineage.hpo_sweep_run_id": a})
    builder.set(a, code__lineage__hpo_sweep_run_id=b)
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert r.code == 0 and r.err == "", r.err  # HH150 is a warning
    hh150 = {f["run_id"]: f["message"] for f in json.loads(r.out)["findings"] if f["code"] == "HH150"}
    assert hh150 == {
        looped: "refit names itself as its parent: a lineage loop",
        selfish: "refit names itself as its parent: a lineage loop",
        a: f"trial names parent {b}, which is not a study's parent run (a lineage loop or a wrong link)",
        b: f"trial names parent {a}, which is not a study's parent run (a lineage loop or a wrong link)",
    }
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--dry-run", "--format", "json"])
    assert r.code == 0 and json.loads(r.out)["changes"] == []
    r = run_cli(["diff", looped, "--tracking-uri", builder.uri])
    assert_one_error_line(r, 2, f"run '{looped}' names no parent run that exists")
    assert s.parent


def test_long_chains_and_rings_of_links_classify_fast() -> None:
    """20,000 nested HPO runs, or refits naming each other in a ring: no RecursionError, no quadratic walk.

    (RunRecords built in memory: creating 20,000 runs in a store would take minutes; ``classify`` is
    the pure function every command feeds its scan into.)
    """
    from types import MappingProxyType

    from hpohash.classify import classify
    from hpohash.records import RunRecord
    from hpohash.tags import TagRegistry

    def rec(i: int, tags: dict[str, str]) -> RunRecord:
        empty = MappingProxyType({})
        return RunRecord(f"r{i}", "0", "", "", "active", "FINISHED", i, MappingProxyType(tags), empty, empty)

    n = 20_000
    cases = {
        "nested": {f"r{i}": rec(i, {"code.stage": "hpo", **({"mlflow.parentRunId": f"r{i - 1}"} if i else {})})
                   for i in range(n)},
        "refit ring": {f"r{i}": rec(i, {"code.stage": "hpo_refit", "code.lineage.hpo_sweep_run_id": f"r{(i + 1) % n}"})
                       for i in range(n)},
        "hpo ring": {f"r{i}": rec(i, {"code.stage": "hpo", "mlflow.parentRunId": f"r{(i + 1) % n}"}) for i in range(n)},
    }  # fmt: skip
    for label, runs in cases.items():
        start = time.monotonic()
        roles, study = classify(runs, TagRegistry())
        assert time.monotonic() - start < 3.0, label
        if label == "nested":
            assert (roles["r0"], roles["r1"], roles["r2"], study[f"r{n - 1}"]) == ("parent", "trial", "fold", "r0")
        elif label == "refit ring":
            assert set(roles.values()) == {"refit"} and set(study.values()) == {None}
        else:
            assert list(roles.values()).count("parent") == 1


# ------------------------------------------------------------------------------------ 6. journals


def _legacy_experiment(builder: Builder, n_trials: int = 3) -> tuple[str, str, object]:
    exp, name = builder.experiment()
    hps = tuple({"learning_rate": 1e-5 + i * 1e-7, "batch_size": 8, "dropout": 0.1, "weight_decay": 0.01}
                for i in range(n_trials))  # fmt: skip
    s = builder.study(exp, hps=hps, scores=tuple(0.5 + i / 100 for i in range(n_trials)))
    builder.make_legacy(s)
    return exp, name, s


def test_ctrl_c_during_apply_says_what_was_written(
    run_cli, builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, name, s = _legacy_experiment(builder, 5)
    before = snapshot(builder, exp)
    calls = {"n": 0}
    original = Tracking.set_tags

    def ctrl_c_on_third(self: Tracking, run_id: str, tags: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user's Ctrl-C, arriving during the third run's write
        original(self, run_id, tags)

    monkeypatch.setattr(Tracking, "set_tags", ctrl_c_on_third)
    j1 = tmp_path / "j1.jsonl"
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--format", "json", "--journal",
                 str(j1)])  # fmt: skip
    monkeypatch.undo()
    assert r.code == EXIT_INTERRUPTED == 130 and r.out == ""
    entries = [json.loads(x)["run_id"] for x in j1.read_text().splitlines()[1:]]
    tags_per_run = [entries.count(rid) for rid in dict.fromkeys(entries)]
    assert len(tags_per_run) == 3  # journaled: two written, the third interrupted during its write
    assert r.err.strip() == (
        f"hpohash: interrupted: 2 run(s) written ({tags_per_run[0] + tags_per_run[1]} tags), 1 more run(s) were "
        f"being written and may or may not have landed; every one is in the journal {j1}. To finish, rerun the "
        f"same backfill; to go back, run: hpohash undo {j1}"
    )
    mid = snapshot(builder, exp)
    assert len([rid for rid in mid if mid[rid] != before[rid]]) == 2
    # finish by rerunning, then go back with undo: every tag exactly as before
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--journal", str(tmp_path / "j2")])
    assert r.code == 0, r.err
    assert run_cli(["verify", "--tracking-uri", builder.uri, "-e", name]).code == 0
    r = run_cli(["undo", str(j1), str(tmp_path / "j2"), "--tracking-uri", builder.uri, "--yes"])
    assert r.code == 0, r.err
    assert snapshot(builder, exp) == before


def test_ctrl_c_before_any_write(run_cli, builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    import hpohash.plan

    exp, name, _ = _legacy_experiment(builder)

    def interrupt(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hpohash.plan, "build_plan", interrupt)
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes"])
    assert r.code == 130 and r.err.strip() == "hpohash: interrupted: nothing written"


def test_cut_last_journal_line_is_undone_as_far_as_possible(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name, s = _legacy_experiment(builder)
    before = snapshot(builder, exp)
    journal = tmp_path / "j.jsonl"
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--journal", str(journal)])
    assert r.code == 0, r.err
    lines = journal.read_text().splitlines()
    last = json.loads(lines[-1])
    # the process died while journaling the last line, after its "old" value: as if that write never ran
    builder.client.set_tag(last["run_id"], last["key"], last["old"]) if last["old"] is not None else (
        builder.client.delete_tag(last["run_id"], last["key"]))  # fmt: skip
    cut_text = lines[-1][: lines[-1].index('"new"') + 9]
    journal.write_text("\n".join(lines[:-1]) + "\n" + cut_text)
    r = run_cli(["undo", str(journal), "--tracking-uri", builder.uri, "--yes", "--format", "json"])
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    (cut,) = doc["cut_lines"]
    assert cut == {
        "journal": str(journal),
        "line": len(lines),
        "run_id": last["run_id"],
        "key": last["key"],
        "old": last["old"],
        "current": last["old"],
        "message": f"journal {journal}:{len(lines)}: last line is cut (the process died while journaling it); "
        f"run {last['run_id']} {last['key']} still holds its old value {last['old']!r}: "
        "that write never reached the store",
    }
    assert doc["summary"]["tags_planned"] == len(lines) - 2
    assert snapshot(builder, exp) == before

    # cut before "old": the current value is shown and the person is asked to check it
    journal2 = tmp_path / "j2.jsonl"
    journal2.write_text(lines[0] + "\n" + lines[1][: lines[1].index('"old"')])
    r = run_cli(["undo", str(journal2), "--tracking-uri", builder.uri, "--dry-run"])
    assert r.code == 1 and "cut journal lines" in r.out and "check it by hand" in r.out


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        ("/dev/null/j.jsonl", "--journal /dev/null/j.jsonl: cannot create: /dev/null is not a directory"),
        ("{tmp}/file/sub/j.jsonl", "--journal {tmp}/file/sub/j.jsonl: cannot create: {tmp}/file is not a directory"),
        ("{tmp}/" + "x" * 300 + ".jsonl", "cannot create: file name too long"),
        ("{tmp}/file", "--journal {tmp}/file: already exists; journals are never overwritten"),
    ],
)
def test_journal_path_that_cannot_be_created(
    run_cli, builder: Builder, tmp_path: Path, where: str, fragment: str
) -> None:
    exp, name, _ = _legacy_experiment(builder)
    before = snapshot(builder, exp)
    (tmp_path / "file").write_text("x")
    where, fragment = where.format(tmp=tmp_path), fragment.format(tmp=tmp_path)
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--journal", where])
    assert_one_error_line(r, 2, fragment)
    assert snapshot(builder, exp) == before


def test_disk_error_while_journaling_is_not_a_backend_failure(
    run_cli, builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp, name, s = _legacy_experiment(builder, 4)
    before = snapshot(builder, exp)
    calls = {"n": 0}
    real_fsync = os.fsync

    def disk_full_on_third(fd: int) -> None:  # header, run 1, run 2, then the disk is full
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full_on_third)
    journal = tmp_path / "j.jsonl"
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--format", "json", "--journal",
                 str(journal)])  # fmt: skip
    monkeypatch.undo()
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    assert doc["summary"]["runs_written"] == 2
    errors = [f["error"] for f in doc["failures"]]
    assert errors[0] == f"journal {journal}: cannot write: No space left on device; not written"
    assert set(errors[1:]) == {"not attempted: the journal cannot be written"} and len(errors) == 3
    assert not any("tracking backend" in e for e in errors)
    after = snapshot(builder, exp)
    changed = {rid for rid in after if after[rid] != before[rid]}
    journaled = {json.loads(x)["run_id"] for x in journal.read_text().splitlines()[1:] if x.endswith("}")}
    assert len(changed) == 2 and changed <= journaled


# ------------------------------------------------------------------------------------ 7. smaller truths


def test_deleted_parent_says_deleted(run_cli, builder: Builder) -> None:
    exp, _ = builder.experiment()
    s = builder.study(exp)
    builder.client.delete_run(s.parent)
    r = run_cli(["verify", "--tracking-uri", builder.uri, "--parent-run-id", s.parent])
    assert_one_error_line(r, 2, f"--parent-run-id {s.parent}: the run is deleted; pass --include-deleted to check it")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "--parent-run-id", s.parent, "--include-deleted"])
    assert r.code == 0, r.err


def test_config_dir_symlinked_out_of_the_artifact_root_is_hh141(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    bad = builder.study(exp)
    good = builder.study(exp)
    root = Path(builder.client.get_run(bad.parent).info.artifact_uri.removeprefix("file://"))
    outside = tmp_path / "outside"
    shutil.copytree(root / "config", outside)
    shutil.rmtree(root / "config")
    (root / "config").symlink_to(outside)
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    assert [(f["code"], f["run_id"], f["stage"]) for f in doc["findings"]] == [("HH141", bad.parent, "parent")]
    assert "cannot list the config/ artifacts: Invalid path" in doc["findings"][0]["message"]
    assert good.parent in {st["parent_run_id"] for st in doc["studies"]}


def test_a_fifo_among_the_config_artifacts_is_hh141_not_a_hang(builder: Builder) -> None:
    """A local artifact is read in place with no deadline: a FIFO (or any file that is not a regular one)
    is refused for that study at once, never waited on for a writer."""
    exp, name = builder.experiment()
    bad = builder.study(exp)
    good = builder.study(exp)
    config = Path(builder.client.get_run(bad.parent).info.artifact_uri.removeprefix("file://")) / "config"
    (config / "train.yaml").unlink()
    os.mkfifo(config / "train.yaml")
    p = subprocess.run(
        [sys.executable, "-m", "hpohash", "verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert [(f["code"], f["run_id"]) for f in doc["findings"]] == [("HH141", bad.parent)]
    assert "Not a regular file: 'config/train.yaml'" in doc["findings"][0]["message"]
    assert good.parent in {st["parent_run_id"] for st in doc["studies"]}


def test_backfill_yes_with_nothing_to_write_is_not_a_dry_run(run_cli, builder: Builder) -> None:
    exp, name = builder.experiment()
    builder.study(exp)
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--format", "json"])
    assert r.code == 0 and json.loads(r.out)["dry_run"] is False and json.loads(r.out)["journal"] is None
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes"])
    assert r.code == 0 and "nothing to backfill" in r.out


def test_shortened_model_warning_and_tags_config_keys(run_cli, builder: Builder, tmp_path: Path) -> None:
    # the backbone param of trials outranks the shortened tag: no warning
    exp2, name2 = builder.experiment()
    s2 = builder.study(exp2)
    builder.client.delete_tag(s2.parent, "code.backbone")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name2, "--format", "json"])
    doc = json.loads(r.out)
    assert doc["studies"][0]["model_source"].startswith("param:backbone")
    assert not [f for f in doc["findings"] if f["code"] == "HH143"]
    # a study whose only model is the parent's shortened code.model tag
    exp3, name3 = builder.experiment()
    case = load_case("c01_realistic.yaml")
    arts = {f"config/{n}.yaml": yaml.safe_dump(case[n]) for n in ("data", "hpo", "train")}
    p = builder.run(exp3, "sweep", {"code.stage": "hpo", "code.model_short": "distilbert"}, artifacts=arts)
    builder.run(exp3, "t0", {"code.stage": "hpo", "mlflow.parentRunId": p}, params={"learning_rate": "1e-5"})
    tags = write(tmp_path / "tags.yaml", "process: {model: code.model_short, backbone: code.backbone_full}\n")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name3, "--format", "json", "--tags-config", str(tags)])
    doc = json.loads(r.out)
    assert doc["studies"][0]["model_source"] == "tag:code.model_short (parent; shortened name)"
    (warning,) = [f for f in doc["findings"] if f["code"] == "HH143"]
    assert (warning["severity"], warning["run_id"], warning["stage"]) == ("warning", p, "parent")
    assert warning["message"] == (
        "model 'distilbert' comes from tag:code.model_short (parent; shortened name): the pipeline writes a "
        "shortened name there, so the study key may use a longer one; set the code.backbone_full tag on the "
        "parent if it does"
    )
    # no model at all: the message names the configured keys, not the defaults
    builder.client.delete_tag(p, "code.model_short")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name3, "--format", "json", "--tags-config", str(tags)])
    (hh140,) = [f for f in json.loads(r.out)["findings"] if f["code"] == "HH140"]
    assert hh140["message"] == (
        "no model: no code.backbone_full tag, backbone param or code.model_short tag; pass --model"
    )


def test_markup_in_data_prints_as_text(run_cli, builder: Builder, tmp_path: Path) -> None:
    """Rich markup in an experiment name, a tag value or --model is data: printed, never a crash."""
    exp, name = builder.experiment("[/bold]x")
    s = builder.study(exp)
    builder.set(s.trials[0], code__study_key_hash="[/bold][red]x")
    builder.set(s.refit, code__refit__of_trial_run_id="[/x]")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name])
    assert r.code == 1 and r.err == "" and f"experiments {name}" in r.out and "[/bold][red]" in r.out
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--dry-run", "--force"])
    assert r.code == 0 and r.err == "" and "[/x]" in r.out  # the plan shows the dangling link it replaces
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--force", "--journal",
                 str(tmp_path / "j")])  # fmt: skip
    assert r.code == 0 and r.err == ""
    r = run_cli(["undo", str(tmp_path / "j"), "--tracking-uri", builder.uri, "--yes"])
    assert r.code == 0 and r.err == ""
    r = run_cli(["hash", "--config-dir", str(write_case_dir_for(tmp_path)), "--model", "[/m]"])
    assert r.code == 0 and "model: [/m]" in r.out


def write_case_dir_for(tmp_path: Path) -> Path:
    from tests.conftest import write_case_dir

    write_case_dir("c01_realistic.yaml", tmp_path / "cfg")
    return tmp_path / "cfg"
