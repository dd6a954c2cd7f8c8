"""Stores shaped like the pipeline's own (no config artifacts), audited with its config tree and the
tree's git history (issue 8). Every run carries exactly the tag/param/metric sets of pipeline/README.md.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.entities import ViewType

from tests.builders import Builder
from tests.conftest import assert_one_error_line
from tests.pipeline import HPS, MODEL, build_pipeline_store, git, write_tree

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed on this machine")


@pytest.fixture
def store(builder: Builder, tmp_path: Path):
    exp_id, name, repo, studies = build_pipeline_store(builder, tmp_path)
    return builder, exp_id, name, repo, studies


def run_json(run_cli, *args: str) -> tuple[int, dict, str]:
    r = run_cli([*args, "--format", "json"])
    return r.code, (json.loads(r.out) if r.out else {}), r.err


def by_code(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        out.setdefault(f["code"], []).append(f)
    return out


def snapshot(b: Builder, exp_id: str) -> dict:
    runs = b.client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)
    return {r.info.run_id: (dict(r.data.tags), dict(r.data.params), dict(r.data.metrics)) for r in runs}


def test_verify_finds_each_studys_configs_in_the_history(run_cli, store) -> None:
    b, _, name, repo, st = store
    legacy, gen1, gen2 = st["legacy"], st["gen1"], st["gen2"]
    code, doc, err = run_json(
        run_cli, "verify", "--tracking-uri", b.uri, "-e", name, "--config-dir", str(repo / "config")
    )
    assert err == ""
    assert code == 1  # the legacy refit
    studies = {s["parent_run_id"]: s for s in doc["studies"]}
    for s in (legacy, gen1, gen2):
        assert studies[s.parent]["study_key_hash"] == s.v2
        assert studies[s.parent]["recomputed_study_key_hash"] == s.v2  # every parent reproduced
        assert studies[s.parent]["model"] == MODEL
    cfg = repo / "config"
    assert studies[legacy.parent]["config_source"] == {
        "revision": legacy.version.commit,
        "commit": legacy.version.commit,
        "date": "2025-12-01T10:00:00+00:00",
        "files": {
            "data": f"{cfg}/data/resume_v1.yaml",
            "hpo": f"{cfg}/hpo/smoke.yaml",
            "train": f"{cfg}/train.yaml",
            "benchmark": f"{cfg}/benchmark.yaml",
        },
    }
    assert studies[gen1.parent]["config_source"]["commit"] == gen1.version.commit
    assert studies[gen2.parent]["config_source"]["revision"] == "work tree"
    assert studies[gen2.parent]["config_source"]["files"]["data"] == f"{cfg}/data/resume_tiny.yaml"

    codes = by_code(doc)
    assert not {"HH140", "HH102", "HH142", "HH110", "HH112", "HH123", "HH130"} & set(codes)
    errors = [f for f in doc["findings"] if f["severity"] == "error"]
    assert [(f["code"], f["run_id"], f["cause"], f["fixable"]) for f in errors] == [("HH120", legacy.refit, "v1", True)]
    assert errors[0]["actual"] == legacy.v1 and errors[0]["expected"] == legacy.v2
    # the legacy study's folder is named after its v1 hash: a warning on each of its runs, nothing else
    assert {f["run_id"] for f in codes["HH160"]} == {legacy.parent, *legacy.trials, legacy.refit}
    assert {f["parent_run_id"] for f in doc["findings"]} == {legacy.parent}


def test_table_names_the_commit(run_cli, store) -> None:
    b, _, name, repo, st = store
    r = run_cli(["verify", "--tracking-uri", b.uri, "-e", name, "--config-dir", str(repo / "config")])
    assert r.code == 1
    out = " ".join(r.out.split())
    assert f"commit {st['legacy'].version.commit[:12]}" in out


def test_backfill_agrees_with_verify_on_correct_studies(run_cli, store) -> None:
    b, _, name, repo, st = store
    cfg = str(repo / "config")
    for key in ("gen1", "gen2"):
        args = ("--tracking-uri", b.uri, "--parent-run-id", st[key].parent, "--config-dir", cfg)
        assert run_cli(["verify", *args]).code == 0
        code, plan, _ = run_json(run_cli, "backfill", *args, "--dry-run", "--exit-code")
        assert (code, plan["changes"], plan["conflicts"]) == (0, [], [])
    args = ("--tracking-uri", b.uri, "--parent-run-id", st["legacy"].parent, "--config-dir", cfg)
    assert run_cli(["verify", *args]).code == 1
    assert run_cli(["backfill", *args, "--dry-run", "--exit-code"]).code == 1


def test_without_configs_the_study_folder_is_the_evidence(run_cli, store) -> None:
    b, _, name, _, st = store
    legacy = st["legacy"]
    code, doc, _ = run_json(run_cli, "verify", "--tracking-uri", b.uri, "-e", name)
    assert code == 1
    errors = [f for f in doc["findings"] if f["severity"] == "error"]
    assert [(f["code"], f["run_id"], f["cause"], f["fixable"]) for f in errors] == [("HH120", legacy.refit, "v1", True)]
    assert f"by the study folder study-{legacy.v1[:8]}" in errors[0]["message"]
    assert {f["code"] for f in doc["findings"]} == {"HH120", "HH140", "HH160"}
    # the plan fixes it without --force
    code, plan, _ = run_json(run_cli, "backfill", "--tracking-uri", b.uri, "-e", name, "--dry-run")
    assert code == 0 and plan["conflicts"] == []
    assert [(c["run_id"], c["key"], c["old"], c["new"]) for c in plan["changes"]] == [
        (legacy.refit, "code.legacy.study_key_hash", None, legacy.v1),
        (legacy.refit, "code.study_key_hash", legacy.v1, legacy.v2),
    ]


def test_diff_refit_against_parent_with_the_tree(run_cli, store) -> None:
    b, _, _, repo, st = store
    cfg = str(repo / "config")
    gen1, legacy = st["gen1"], st["legacy"]
    code, doc, err = run_json(run_cli, "diff", gen1.refit, "--tracking-uri", b.uri, "--config-dir", cfg)
    assert err == "" and code == 0
    assert (doc["same_study"], doc["same_trial"], doc["differences"]) == (True, True, [])
    # the 1.0-generation trial hash is compared in its own generation
    from hpohash.hashing import trial_key_hash

    assert doc["a"]["trial_key_hash"] == trial_key_hash(gen1.v2, HPS[1], schema="1.0")
    assert doc["b"]["trial_key_hash"] == doc["a"]["trial_key_hash"]
    code, doc, _ = run_json(run_cli, "diff", legacy.refit, "--tracking-uri", b.uri, "--config-dir", cfg)
    assert code == 1
    assert doc["same_study"] is False and doc["a"]["cause"] == "v1" and doc["differences"] == []
    assert doc["a"]["stored_study_key_hash"] == legacy.v1 and doc["b"]["study_key_hash"] == legacy.v2


def test_backfill_legacy_study_then_verify_clean_and_undo_exact(run_cli, store, tmp_path: Path) -> None:
    b, exp_id, name, repo, st = store
    legacy = st["legacy"]
    cfg = str(repo / "config")
    before = snapshot(b, exp_id)
    journal = tmp_path / "j.jsonl"
    code, done, _ = run_json(
        run_cli,
        "backfill",
        "--tracking-uri",
        b.uri,
        "-e",
        name,
        "--config-dir",
        cfg,
        "--yes",
        "--journal",
        str(journal),
    )
    assert code == 0 and done["summary"]["runs_written"] == 1
    tags = b.client.get_run(legacy.refit).data.tags
    assert tags["code.study_key_hash"] == legacy.v2 and tags["code.legacy.study_key_hash"] == legacy.v1
    code, doc, _ = run_json(run_cli, "verify", "--tracking-uri", b.uri, "-e", name, "--config-dir", cfg)
    assert code == 0 and doc["summary"]["errors"] == 0
    r = run_cli(["undo", str(journal), "--tracking-uri", b.uri, "--yes", "--journal", str(tmp_path / "u.jsonl")])
    assert r.code == 0, r.err
    assert snapshot(b, exp_id) == before


def test_history_off_pinned_and_broken(run_cli, store) -> None:
    b, _, name, repo, st = store
    cfg = str(repo / "config")
    base = ("verify", "--tracking-uri", b.uri, "-e", name, "--config-dir", cfg)
    # the work tree alone reproduces only the newest study
    code, doc, _ = run_json(run_cli, *base, "--no-config-history")
    hh142 = {f["run_id"] for f in by_code(doc)["HH142"]}
    assert hh142 == {st["legacy"].parent, st["gen1"].parent}
    msg = by_code(doc)["HH142"][0]["message"]
    assert "none of" in msg and "nearest:" in msg and "data fingerprint" in msg
    # one pinned revision
    code, doc, _ = run_json(run_cli, *base, "--config-rev", st["gen1"].version.commit)
    assert {f["run_id"] for f in by_code(doc)["HH142"]} == {st["legacy"].parent, st["gen2"].parent}
    r = run_cli([*base, "--config-rev", "no-such-rev"])
    assert_one_error_line(r, 2, "--config-rev no-such-rev:")


def test_repository_without_history_and_plain_directory(run_cli, builder: Builder, tmp_path: Path) -> None:
    exp_id, name, repo, st = build_pipeline_store(builder, tmp_path)
    # a fresh repository (no commit yet) holding today's tree: the work tree is searched, no warning
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q")
    write_tree(fresh / "config", {})
    code, doc, err = run_json(
        run_cli, "verify", "--tracking-uri", builder.uri, "-e", name, "--config-dir", str(fresh / "config")
    )
    assert err == ""
    studies = {s["parent_run_id"]: s for s in doc["studies"]}
    assert studies[st["gen2"].parent]["config_source"]["revision"] == "work tree"
    assert {f["run_id"] for f in by_code(doc)["HH142"]} == {st["legacy"].parent, st["gen1"].parent}
    # not a git repository at all: the same, silently
    plain = tmp_path / "plain"
    write_tree(plain, {})
    code2, doc2, err2 = run_json(
        run_cli, "verify", "--tracking-uri", builder.uri, "-e", name, "--config-dir", str(plain)
    )
    assert err2 == "" and (code2, len(doc2["findings"])) == (code, len(doc["findings"]))
    # a broken repository: one warning line, the work tree still used
    broken = tmp_path / "broken"
    shutil.copytree(repo, broken)
    (broken / ".git" / "HEAD").write_text("ref: refs/heads/nothing-here\n")
    shutil.rmtree(broken / ".git" / "objects")
    (broken / ".git" / "objects").mkdir()
    r = run_cli(
        [
            "verify",
            "--tracking-uri",
            builder.uri,
            "-e",
            name,
            "--config-dir",
            str(broken / "config"),
            "--format",
            "json",
        ]
    )
    assert r.code == 1
    assert json.loads(r.out)["studies"]
    warn = [line for line in r.err.splitlines() if line.startswith("hpohash: warning:")]
    assert len(warn) <= 1 and "Traceback" not in r.err


def test_several_config_dirs_add_sources(run_cli, store, tmp_path: Path) -> None:
    b, _, name, repo, st = store
    old = tmp_path / "old-tree"
    write_tree(old, st["gen1"].version.edits)
    args = ("verify", "--tracking-uri", b.uri, "-e", name, "--no-config-history")
    code, doc, _ = run_json(run_cli, *args, "--config-dir", str(repo / "config"), "--config-dir", str(old))
    assert {f["run_id"] for f in by_code(doc)["HH142"]} == {st["legacy"].parent}
    studies = {s["parent_run_id"]: s for s in doc["studies"]}
    assert studies[st["gen1"].parent]["config_source"]["files"]["hpo"] == f"{old}/hpo/smoke.yaml"


def test_hash_uses_the_experiment_files_choice(run_cli, tmp_path: Path) -> None:
    from hpohash import hashing as h
    from tests.pipeline import TREE, load

    r = run_cli(["hash", "--config-dir", str(TREE), "--model", MODEL, "--format", "json"])
    assert r.code == 0, r.err
    want = h.study_key_hash_v2(
        load(TREE, "data/resume_tiny.yaml"), load(TREE, "hpo/prod.yaml"), load(TREE, "train.yaml"), MODEL
    )
    assert json.loads(r.out)["study_key_hash"] == want
    r = run_cli(["hash", "--config-dir", str(TREE), "--model", MODEL, "--stage", "smoke", "--format", "json"])
    want = h.study_key_hash_v2(
        load(TREE, "data/resume_tiny.yaml"), load(TREE, "hpo/smoke.yaml"), load(TREE, "train.yaml"), MODEL
    )
    assert json.loads(r.out)["study_key_hash"] == want
    assert_one_error_line(
        run_cli(["hash", "--config-dir", str(TREE), "--model", MODEL, "--stage", "nope"]),
        2,
        "--stage nope: not a stage of",
    )


def test_parent_refit_link_counts_for_the_champion_and_dangling_is_hh125(run_cli, store) -> None:
    b, exp_id, name, repo, st = store
    gen2 = st["gen2"]
    cfg = str(repo / "config")
    # the refit retrained trial 0, not the metric's champion (trial 1): the pipeline chose it (its
    # selection weighs speed too) and recorded it on the parent, so the champion still resolves
    b.client.set_tag(gen2.refit, "code.refit.of_trial_run_id", gen2.trials[0])
    from hpohash.hashing import trial_key_hash

    b.client.set_tag(gen2.refit, "code.trial_key_hash", trial_key_hash(gen2.v2, HPS[0]))
    args = ("verify", "--tracking-uri", b.uri, "--parent-run-id", gen2.parent, "--config-dir", cfg)
    code, doc, _ = run_json(run_cli, *args)
    assert "HH130" not in by_code(doc)
    # without the parent's record, the champion resolves to no refit
    b.client.delete_tag(gen2.parent, "code.refit_run_id")
    code, doc, _ = run_json(run_cli, *args)
    assert [f["run_id"] for f in by_code(doc)["HH130"]] == [gen2.trials[1]]
    # a parent record naming a run that does not exist
    b.client.set_tag(gen2.parent, "code.refit_run_id", "f" * 32)
    b.client.set_tag(gen2.refit, "code.refit.of_trial_run_id", gen2.trials[1])
    b.client.set_tag(gen2.refit, "code.trial_key_hash", trial_key_hash(gen2.v2, HPS[1]))
    code, doc, _ = run_json(run_cli, *args)
    assert code == 1
    assert [(f["code"], f["run_id"], f["actual"], f["fixable"]) for f in doc["findings"]] == [
        ("HH125", gen2.parent, "f" * 32, False)
    ]
    assert f"code.refit_run_id names run {'f' * 32}, which does not exist" in doc["findings"][0]["message"]
    # backfill cannot fix it, and says so (its exit code agrees with verify's)
    code, plan, _ = run_json(run_cli, "backfill", *args[1:], "--dry-run", "--exit-code")
    assert code == 1 and plan["changes"] == []
    assert plan["conflicts"][0]["message"].startswith("HH125 not fixable by backfill")
    # a record naming a run the HPO scan leaves out (not an HPO run) is told apart from a missing one
    other = b.run(exp_id, "benchmark", {"code.stage": "benchmark"})
    b.client.set_tag(gen2.parent, "code.refit_run_id", other)
    code, doc, _ = run_json(run_cli, "verify", "--tracking-uri", b.uri, "-e", name, "--config-dir", cfg)
    (hh125,) = [f for f in doc["findings"] if f["code"] == "HH125"]
    assert hh125["message"].startswith(
        f"parent code.refit_run_id names run {other}, which is not a refit of this study"
    )
