"""Backends that speak narrower dialects than the open-source server (issue 18): every command through
a restricted-dialect proxy (tests/proxy.py) in front of the suite's real `mlflow server` gives the
direct path's findings, plan, writes and undo; probing costs one request per filter form; a change a
backend would refuse is a planned conflict; where tags cannot be deleted, the dry run says so and undo
names what it could not remove."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow.entities import ViewType

from hpohash import tracking as tr
from hpohash.capabilities import FORMS, Clause, family_of, for_family
from tests.builders import Builder
from tests.pipeline import build_pipeline_store
from tests.proxy import AZURE_ML, DATABRICKS, RestrictedProxy

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed on this machine")


@pytest.fixture(scope="session")
def proxies(sqlite_mlflow_server) -> Iterator[dict[str, RestrictedProxy]]:
    """One proxy per profile in front of the session's server, on free 127.0.0.1 ports."""
    out = {p.name: RestrictedProxy(sqlite_mlflow_server.uri, p) for p in (AZURE_ML, DATABRICKS)}
    for proxy in out.values():
        proxy.start()
    try:
        yield out
    finally:
        for proxy in out.values():
            proxy.stop()


def snapshot(b: Builder, exp_id: str) -> dict[str, dict[str, str]]:
    runs = b.client.search_runs([exp_id], run_view_type=ViewType.ALL, max_results=1000)
    return {r.info.run_id: dict(r.data.tags) for r in runs}


# ------------------------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("uri", "family"),
    [
        ("sqlite:///mlflow.db", "sql"),
        ("postgresql+psycopg2://u:p@h/db", "sql"),
        ("mysql://h/db", "sql"),
        ("mssql://h/db", "sql"),
        ("mlruns", "file"),
        ("file:///tmp/mlruns", "file"),
        ("C:\\mlruns", "file"),
        ("http://127.0.0.1:5000", "http"),
        ("https://mlflow.example", "http"),
        ("azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/x", "azureml"),
        ("databricks", "databricks"),
        ("databricks-uc", "databricks"),
        ("databricks://PROFILE", "databricks"),
        ("custom-plugin://somewhere", "plugin"),
    ],
)
def test_family_from_the_uri_scheme(uri: str, family: str) -> None:
    assert family_of(uri) == family


def test_families_know_their_limits() -> None:
    azure, databricks, sql = for_family("azureml"), for_family("databricks"), for_family("sql")
    assert (azure.tag_ilike, azure.offset_tokens, azure.max_tags_per_run, azure.max_key_length) == (
        False,
        False,
        50,
        100,
    )
    assert azure.max_value_length == 1000 and azure.tags_per_batch == 100
    assert (databricks.many_experiments, databricks.offset_tokens, databricks.max_tags_per_run) == (False, False, 1600)
    assert (sql.tag_ilike, sql.start_time, sql.offset_tokens, sql.delete_tags, sql.workers) == (
        True,
        True,
        True,
        True,
        1,
    )
    assert for_family("http").tag_ilike is None and for_family("http").delete_tags is None  # probed


class _Run:
    def __init__(self, run_id: str, tags: dict[str, str], start: int | None) -> None:
        self.info = type("Info", (), {"run_id": run_id, "start_time": start})()
        self.data = type("Data", (), {"tags": tags})()


def test_client_side_clauses_answer_as_the_server() -> None:
    run = _Run("r1", {"code.stage": "HPO_trial", "k": "a'b"}, 1000)
    assert Clause("tag", "ILIKE", "code.stage", "hpo%").matches(run)
    assert Clause("tag", "ILIKE", "code.stage", "hpo_trial").matches(run)  # case ignored, _ one character
    assert not Clause("tag", "ILIKE", "code.stage", "hpo").matches(run)
    assert not Clause("tag", "=", "code.stage", "hpo_trial").matches(run)
    assert Clause("tag", "IS NULL", "mlflow.parentRunId").matches(run)
    assert not Clause("tag", "IS NULL", "code.stage").matches(run)
    assert Clause("start_time", ">=", value=1000).matches(run) and not Clause("start_time", "<", value=1000).matches(
        run
    )
    assert not Clause("start_time", ">=", value=0).matches(_Run("r2", {}, None))
    assert Clause("run_id", "IN", value=("r0", "r1")).matches(run)
    assert Clause("tag", "ILIKE", "code.stage", "hpo%").text() == "tags.`code.stage` ILIKE 'hpo%'"


# ------------------------------------------------------------------------------------------ store names


@pytest.mark.parametrize("uri", ["databricks", "databricks-uc"])
def test_databricks_store_names_are_not_paths(
    run_cli, uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store name reaches Databricks authentication (none is configured here): never a path check."""
    for var in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "x", "--format", "json"])
    assert "no such directory" not in r.err and "no such SQLite file" not in r.err
    last = r.err.strip().splitlines()[-1]
    assert r.code == 3 and last.startswith("hpohash: error: ") and "databricks" in last.lower(), r.err
    assert "Traceback" not in r.err


# ------------------------------------------------------------------------------------------ through the proxy


def _json(run_cli, args: list[str], proxy: RestrictedProxy | None = None, direct: str = "") -> tuple[int, dict, str]:
    if proxy is not None:
        proxy.arm_burst(2)  # every command meets a short burst of 429s first
    r = run_cli([*args, "--format", "json"])
    text = r.out.replace(proxy.uri, direct) if proxy is not None else r.out
    return r.code, (json.loads(text) if text else {}), r.err


@needs_git
@pytest.mark.server
@pytest.mark.parametrize("profile", ["azureml", "databricks"])
def test_every_command_through_a_restricted_dialect_gives_the_direct_answer(
    run_cli, proxies, sqlite_mlflow_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    proxy = proxies[profile]
    # MLflow's own client waits out the 429 burst (Retry-After: 1) here
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    # pages of 4 runs: the direct path reads ahead with offset tokens, the proxy's opaque ones are followed
    monkeypatch.setattr(tr, "PAGE_SIZE", 4)
    direct = sqlite_mlflow_server.uri
    b = Builder(direct)
    exp_id, name, repo, studies = build_pipeline_store(b, tmp_path / profile)
    for i in range(11):  # more than 10 experiment ids in the lineage scan of --parent-run-id
        b.client.create_experiment(f"{name}-extra-{i}")
    cfg = str(repo / "config")
    legacy = studies["legacy"]
    before = snapshot(b, exp_id)
    commands = [
        ["verify", "-e", name, "--config-dir", cfg],
        ["verify", "-e", name, "--config-dir", cfg, "--since", "2026-01-05"],
        ["verify", "--parent-run-id", legacy.parent, "--config-dir", cfg],
        ["backfill", "-e", name, "--config-dir", cfg, "--dry-run"],
    ]
    for args in commands:
        want = _json(run_cli, [args[0], "--tracking-uri", direct, *args[1:]])
        got = _json(run_cli, [args[0], "--tracking-uri", proxy.uri, *args[1:]], proxy, direct)
        assert got[:2] == want[:2], args
        if "--since" in args:  # the legacy study started before: skipped, the two others read
            assert (want[0], want[1]["summary"]["studies_skipped"], want[1]["summary"]["studies"]) == (0, 1, 2)
        elif args[0] == "verify":
            assert want[0] == 1  # the legacy refit: something to find
        else:
            assert want[0] == 0 and want[1]["changes"]  # and to fix
    assert proxy.refused[{"azureml": "like", "databricks": "experiment_ids"}[profile]] >= 1
    assert proxy.refused["is_null"] == 1  # tried once, then evaluated here
    assert proxy.counts["429"] == 2 * len(commands)
    assert proxy.refused["page_token"] == 0 and proxy.refused["or"] == 0 and proxy.refused["not_equal"] == 0

    # --verbose says which forms were used
    r = run_cli(
        ["verify", "--tracking-uri", proxy.uri, "-e", name, "--config-dir", cfg, "--verbose", "--format", "json"]
    )
    if profile == "azureml":
        assert "hpohash: backend http: tag ILIKE: evaluated here; '=' sent per value" in r.err, r.err
    else:
        assert "hpohash: backend http: tag ILIKE: sent to the server" in r.err, r.err

    # backfill --yes through the proxy writes what the direct dry run plans; direct verify then passes
    plan = _json(run_cli, ["backfill", "--tracking-uri", direct, "-e", name, "--config-dir", cfg, "--dry-run"])[1]
    journal = tmp_path / f"{profile}.jsonl"
    code, done, err = _json(
        run_cli,
        ["backfill", "--tracking-uri", proxy.uri, "-e", name, "--config-dir", cfg, "--yes", "--journal", str(journal)],
        proxy,
        direct,
    )
    assert code == 0 and done["changes"] == plan["changes"] and done["summary"]["runs_failed"] == 0, done
    added = [(c["run_id"], c["key"]) for c in plan["changes"] if c["old"] is None]
    changed = [c for c in plan["changes"] if c["old"] is not None]
    assert added and changed
    if profile == "azureml":  # said before anything was written
        assert (
            f"hpohash: warning: this store cannot delete tags: undo could restore {len(changed)} changed value(s) "
            f"but not remove {len(added)} added tag(s)"
        ) in err
    else:
        assert "cannot delete tags" not in err
    code, doc, _ = _json(run_cli, ["verify", "--tracking-uri", direct, "-e", name, "--config-dir", cfg])
    assert code == 0 and doc["summary"]["errors"] == 0

    # undo through the proxy: every changed value restored; what cannot be deleted is named, exit 1
    code, undone, err = _json(
        run_cli,
        ["undo", str(journal), "--tracking-uri", proxy.uri, "--yes", "--journal", str(tmp_path / "u.jsonl")],
        proxy,
    )
    after = snapshot(b, exp_id)
    if profile == "azureml":
        assert code == 1, err
        assert sorted((x["run_id"], x["key"]) for x in undone["not_removed"]) == sorted(added)
        failures = {(f["run_id"], f["error"]) for f in undone["failures"]}
        for rid, key in added:
            assert any(r == rid and f"tag {key} could not be removed" in e for r, e in failures)
            del after[rid][key]
        assert after == before
    else:
        assert code == 0 and "not_removed" not in undone and after == before

    # probing cost: at most one request per filter form per process, one delete probe
    assert proxy.counts["probe"] <= len(FORMS)
    assert proxy.counts["delete_tag_probe"] <= 1


# ------------------------------------------------------------------------------------------ write caps


@needs_git
def test_a_write_beyond_the_backends_caps_is_a_planned_conflict(
    run_cli, builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Azure ML's limits (50 tags a run), a run that would carry more is held back in the dry run
    and never written; the other runs are written and the exit code says conflicts remain."""
    exp_id, name, repo, studies = build_pipeline_store(builder, tmp_path)
    cfg = str(repo / "config")
    refit = studies["legacy"].refit
    have = len(builder.client.get_run(refit).data.tags)
    for i in range(50 - have):
        builder.client.set_tag(refit, f"x.filler{i:02d}", "1")
    azure_limits = replace(for_family("sql"), max_tags_per_run=50, max_key_length=100, max_value_length=1000)
    monkeypatch.setitem(tr._LEARNED, builder.uri, azure_limits)
    code, doc, _ = _json(
        run_cli, ["backfill", "--tracking-uri", builder.uri, "-e", name, "--config-dir", cfg, "--dry-run"]
    )
    assert code == 1
    assert not [c for c in doc["changes"] if c["run_id"] == refit]
    held = [c for c in doc["conflicts"] if c["run_id"] == refit]
    assert len(held) == 1 and held[0]["message"].startswith("51 tags on the run, more than this backend keeps (50)")
    before = snapshot(builder, exp_id)
    code, done, _ = _json(
        run_cli,
        [
            "backfill",
            "--tracking-uri",
            builder.uri,
            "-e",
            name,
            "--config-dir",
            cfg,
            "--yes",
            "--journal",
            str(tmp_path / "j"),
        ],
    )
    assert code == 1 and done["summary"]["runs_failed"] == 0 and done["conflicts"] == doc["conflicts"]
    assert snapshot(builder, exp_id)[refit] == before[refit]  # never sent


def test_log_batch_is_split_at_the_backends_tags_per_call(builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    exp_id, _ = builder.experiment()
    run_id = builder.client.create_run(exp_id).info.run_id
    t = tr.Tracking(builder.uri)
    monkeypatch.setitem(tr._LEARNED, builder.uri, replace(for_family("sql"), tags_per_batch=100))
    calls: list[int] = []
    real = t.client.log_batch

    def counting(rid: str, **kw: object) -> None:
        calls.append(len(kw["tags"]))  # type: ignore[arg-type]
        real(rid, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(t.client, "log_batch", counting)
    t.set_tags(run_id, {f"k{i:03d}": str(i) for i in range(250)})
    assert calls == [100, 100, 50]
    assert len(builder.client.get_run(run_id).data.tags) >= 250


@pytest.mark.server
def test_a_refusal_wins_over_what_the_family_is_known_for(
    proxies, sqlite_mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend taken to accept ILIKE (its family's record, not a probe) that refuses it: the search is
    planned again with the form tried, and answers as the direct search does, case rules included."""
    proxy = proxies["azureml"]
    b = Builder(sqlite_mlflow_server.uri)
    exp_id, _ = b.experiment()
    stages = ["hpo", "HPO_trial", "hpo_refit", "train", "hpo_sweep", "cv_fold", "hpo"]
    for i, stage in enumerate(stages):
        b.client.create_run(exp_id, run_name=f"r{i}", tags={"code.stage": stage}, start_time=1000 + i)
    assumed = replace(for_family("http"), tag_ilike=True, decided={"tag_ilike": "known for this backend"})
    monkeypatch.setitem(tr._LEARNED, proxy.uri, assumed)
    hpo = (Clause("tag", "ILIKE", "code.stage", "hpo%", exact=("hpo", "hpo_refit", "hpo_sweep", "hpo_trial")),)
    direct = sorted(r.run_id for r in tr.Tracking(sqlite_mlflow_server.uri).scan([exp_id], clauses=hpo))
    refused = proxy.refused["like"]
    through = sorted(r.run_id for r in tr.Tracking(proxy.uri).scan([exp_id], clauses=hpo))
    assert len(direct) == 5  # "train" and "cv_fold" are not hpo%
    # '=' per exact value misses only the value written in another case ("HPO_trial")
    assert len(through) == 4 and set(through) < set(direct)
    assert proxy.refused["like"] == refused + 2  # the search, then the probe
    assert tr._LEARNED[proxy.uri].tag_ilike is False
    none = (Clause("tag", "ILIKE", "code.stage", "hpo%"),)  # no exact values: every run, filtered here
    assert sorted(r.run_id for r in tr.Tracking(proxy.uri).scan([exp_id], clauses=none)) == direct


@pytest.mark.parametrize(("where", "said"), [("always", True), ("never", False), ("", False), ("bogus", False)])
def test_the_cli_maps_the_server_filter_variable_and_verbose_says_the_forms(
    run_cli, builder: Builder, monkeypatch: pytest.MonkeyPatch, where: str, said: bool
) -> None:
    """``HPOHASH_SERVER_FILTER`` reaches the adapter as ``BackendSettings.server_filter`` (a local store
    filters on the client unless told ``always``); ``--verbose`` names each filter form used, once."""
    monkeypatch.setenv("HPOHASH_SERVER_FILTER", where)
    exp, name = builder.experiment()
    builder.study(exp)
    # through MLflow's search_runs (a SQLite store is otherwise read by SQL, where no filter form is asked)
    args = ["verify", "--tracking-uri", builder.uri, "-e", name, "--verbose", "--format", "json", "--read-via", "api"]
    r = run_cli(args)
    assert r.code == 0, r.err
    line = "hpohash: backend sql: tag ILIKE: sent to the server (known for this backend)"
    assert r.err.count(line) == (1 if said else 0), r.err
    quiet = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"])
    assert quiet.err == "" and quiet.out == r.out


# ------------------------------------------------------------------------------------------ faults on the way


@needs_git
@pytest.mark.server
def test_503s_are_waited_out_and_an_answer_cut_off_mid_body_loses_nothing(
    run_cli, proxies, sqlite_mlflow_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of 503s (Retry-After: 1) is waited out by MLflow's client: the direct answer. An answer
    cut off half-way is one line and exit 3, never a traceback; a write whose answer was lost (it
    landed) is in the journal, a rerun plans nothing for it, and the store ends repaired."""
    proxy = proxies["databricks"]
    proxy.reset_counts()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    direct = sqlite_mlflow_server.uri
    b = Builder(direct)
    _, name, repo, _ = build_pipeline_store(b, tmp_path / "faults")
    args = ["-e", name, "--config-dir", str(repo / "config"), "--format", "json"]
    want = run_cli(["verify", "--tracking-uri", direct, *args])
    assert want.code == 1

    proxy.arm_burst(3, 503)
    got = run_cli(["verify", "--tracking-uri", proxy.uri, *args])
    assert (got.code, json.loads(got.out.replace(proxy.uri, direct))) == (1, json.loads(want.out))
    assert proxy.counts["503"] == 3

    proxy.arm_drop(1, "/api/2.0/mlflow/runs/search")
    cut = run_cli(["verify", "--tracking-uri", proxy.uri, *args])
    assert proxy.counts["dropped"] == 1
    assert cut.code == 3 and cut.out == "" and "Traceback" not in cut.err, cut.err
    assert cut.err.startswith("hpohash: error: ") and cut.err.count("\n") == 1, cut.err

    plan = json.loads(run_cli(["backfill", "--tracking-uri", direct, *args, "--dry-run"]).out)
    journal = tmp_path / "cut.jsonl"
    proxy.arm_drop(1, "/api/2.0/mlflow/runs/log-batch")
    first = run_cli(
        ["backfill", "--tracking-uri", proxy.uri, *args, "--yes", "--workers", "1", "--journal", str(journal)]
    )
    assert proxy.counts["dropped"] == 2
    doc = json.loads(first.out)
    assert first.code == 3 and doc["summary"]["runs_failed"] == 1, first.err
    lost = doc["failures"][0]["run_id"]
    journaled = {json.loads(line).get("run_id") for line in journal.read_text().splitlines()[1:]}
    assert lost in journaled  # the journal line came first
    again = json.loads(run_cli(["backfill", "--tracking-uri", direct, *args, "--dry-run"]).out)
    assert lost not in {c["run_id"] for c in again["changes"]}  # its write had landed
    assert len(again["changes"]) < len(plan["changes"])
    run_cli(["backfill", "--tracking-uri", proxy.uri, *args, "--yes", "--journal", str(tmp_path / "rest.jsonl")])
    assert run_cli(["verify", "--tracking-uri", direct, *args]).code == 0
