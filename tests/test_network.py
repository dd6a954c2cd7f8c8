"""Bounds on the network (hpohash/network.py): raw-socket fault servers on 127.0.0.1 (tests/faulty.py)
with deadlines of seconds passed through BackendSettings, exact exit codes and stderr lines."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from hpohash import configs as cfg
from hpohash.errors import BackendError, UsageError
from hpohash.network import ThrottledError
from hpohash.records import RunRecord
from hpohash.settings import BackendSettings
from hpohash.tracking import Tracking
from tests.builders import Builder
from tests.faulty import faulty
from tests.server import free_port

FAST = BackendSettings(deadline_s=2, connect_timeout_s=2)


def no_answer(port: int, what: str = "get experiment by name") -> str:
    return (
        f"{what}: tracking backend failed: no answer from 127.0.0.1:{port} within 2 s; is the store overloaded? "
        "(--timeout sets the limit)"
    )


def waiting(port: int, what: str = "get experiment by name") -> str:
    return f"hpohash: waiting for 127.0.0.1:{port}: no answer to {what} yet; giving up after 2 s\n"


# ------------------------------------------------------------------ deadlines


@pytest.mark.parametrize("mode", ["silent", "trickle"])
def test_a_server_that_never_answers_or_trickles_fails_within_the_deadline(
    mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with faulty(mode, interval=0.5) as server:
        tracking = Tracking(server.uri, settings=FAST)
        with pytest.raises(BackendError) as caught:
            tracking.resolve_experiments(["x"], [])
        assert server.requests == 1
    assert caught.value.exit_code == 3
    assert str(caught.value) == no_answer(server.port)
    assert capsys.readouterr().err == waiting(server.port)  # one line while waiting, then the error
    # the call given up on may still be blocked: on a daemon thread, which never holds the process
    left = [t for t in threading.enumerate() if t.name.endswith(":get_experiment_by_name")]
    assert all(t.daemon for t in left)


def test_the_cli_says_it_waits_then_exits_3(run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through ``hpohash verify``, the deadline given by ``--timeout``."""
    with faulty("trickle", interval=0.5) as server:
        r = run_cli(["verify", "--tracking-uri", server.uri, "-e", "x", "--timeout", "2"])
    assert r.code == 3, r.err
    assert r.err == waiting(server.port) + f"hpohash: error: {no_answer(server.port)}\n"


def test_every_call_of_a_remote_store_is_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads and writes alike: the deadline is not a property of one method."""
    with faulty("silent") as server:
        tracking = Tracking(server.uri, settings=FAST)
        with pytest.raises(BackendError) as caught:
            tracking.set_tags("0" * 32, {"k": "v"})
    assert str(caught.value) == no_answer(server.port, "log batch")


def test_a_local_store_is_called_directly(sqlite_uri: str) -> None:
    tracking = Tracking(sqlite_uri, settings=FAST)
    assert not tracking.watch.endpoint.remote
    assert tracking.all_experiment_ids()  # the default experiment, without a thread per call


# ------------------------------------------------------------------ throttling


def test_retry_after_3600_fails_at_once_naming_the_wait(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # MLflow's loop honours Retry-After
    with faulty("throttle", retry_after=3600) as server:
        tracking = Tracking(server.uri)  # the default budget: 300 s
        with pytest.raises(ThrottledError) as caught:
            tracking.resolve_experiments(["x"], [])
    assert caught.value.exit_code == 3
    assert str(caught.value) == (
        f"get experiment by name: tracking backend failed: 127.0.0.1:{server.port} is throttling (HTTP 429) and "
        "asks to wait 3600 s (Retry-After), more than the 300 s left of the 300 s hpohash waits out"
    )
    assert capsys.readouterr().err == ""


def test_throttling_is_waited_out_within_the_budget_with_a_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Retry-After: 3 twice against a 4 s budget: the first wait is made (and said), the second
    would overrun the budget and fails; the server saw exactly the two requests."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    with faulty("throttle", retry_after=3) as server:
        tracking = Tracking(server.uri, settings=BackendSettings(deadline_s=4, max_throttle_wait_s=4))
        with pytest.raises(ThrottledError) as caught:
            tracking.resolve_experiments(["x"], [])
        assert server.requests == 2
    assert re.fullmatch(
        rf"get experiment by name: tracking backend failed: 127\.0\.0\.1:{server.port} is throttling \(HTTP 429\) "
        r"and asks to wait 3 s \(Retry-After\), more than the [01]\.\d s left of the 4 s hpohash waits out",
        str(caught.value),
    ), str(caught.value)
    assert capsys.readouterr().err == (
        f"hpohash: 127.0.0.1:{server.port} is throttling (HTTP 429): waiting 3 s as it asks (Retry-After) "
        "before retrying get experiment by name\n"
    )


def test_throttling_after_mlflows_retries_is_a_throttled_backend_failure() -> None:
    with faulty("throttle", retry_after=1) as server:  # the suite runs MLflow with 0 retries
        tracking = Tracking(server.uri, settings=FAST)
        with pytest.raises(ThrottledError) as caught:
            tracking.resolve_experiments(["x"], [])
    assert str(caught.value) == (
        f"get experiment by name: tracking backend failed: 127.0.0.1:{server.port} kept throttling (HTTP 429) "
        "past MLflow's retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES)"
    )


def test_throttled_writes_do_not_stop_backfill(
    run_cli, builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven throttled writes in a row (more than the five backend failures that stop a backfill):
    every other run is still attempted and written; a rerun finishes the seven."""
    from hpohash.tracking import Tracking as T

    exp, name = builder.experiment()
    hps = tuple(
        {"learning_rate": 1e-5 + i * 1e-7, "batch_size": 8, "dropout": 0.1, "weight_decay": 0.01} for i in range(12)
    )
    s = builder.study(exp, hps=hps, scores=tuple(0.5 + i / 100 for i in range(12)))
    builder.make_legacy(s)
    original = T.set_tags
    throttled: list[str] = []

    def first_seven_throttled(self: T, run_id: str, tags: dict) -> None:
        if len(throttled) < 7:
            throttled.append(run_id)
            raise ThrottledError(f"run {run_id}: tracking backend failed: 127.0.0.1:1 kept throttling (HTTP 429)")
        original(self, run_id, tags)

    monkeypatch.setattr(T, "set_tags", first_seven_throttled)
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--format", "json", "--workers", "1",
                 "--journal", str(tmp_path / "j1.jsonl")])  # fmt: skip
    monkeypatch.undo()
    assert r.code == 3, r.err
    doc = json.loads(r.out)
    errors = {f["run_id"]: f["error"] for f in doc["failures"]}
    assert set(errors) == set(throttled) and len(throttled) == 7
    assert not any("not attempted" in e for e in errors.values())
    assert doc["summary"]["runs_written"] == len({c["run_id"] for c in doc["changes"]}) - 7
    r = run_cli(
        ["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--journal", str(tmp_path / "j2.jsonl")]
    )
    assert r.code == 0, r.err
    assert run_cli(["verify", "--tracking-uri", builder.uri, "-e", name]).code == 0


# ------------------------------------------------------------------ reaching the host


def test_an_unresolvable_host_is_one_line_naming_it() -> None:
    tracking = Tracking("http://user:pw-S3CRET@hpohash-test.invalid:5000", settings=FAST)
    with pytest.raises(BackendError) as caught:
        tracking.resolve_experiments(["x"], [])
    text = str(caught.value)
    assert re.fullmatch(
        r"tracking backend failed: cannot reach hpohash-test\.invalid:5000: the host name hpohash-test\.invalid "
        r"(does not resolve \(.+\)|did not resolve within 2 s)",
        text,
    ), text
    assert "S3CRET" not in text


def test_a_closed_port_is_one_line_naming_it(run_cli) -> None:
    port = free_port()
    r = run_cli(["verify", "--tracking-uri", f"http://127.0.0.1:{port}", "-e", "x"])
    assert r.code == 3
    assert r.err == f"hpohash: error: tracking backend failed: cannot reach 127.0.0.1:{port}: Connection refused\n"


@pytest.fixture
def no_databricks_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CLIENT_ID"):
        monkeypatch.delenv(key, raising=False)
    cfg_file = tmp_path / "databrickscfg"
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg_file))
    return cfg_file


@pytest.mark.parametrize("uri", ["databricks", "databricks-uc"])
def test_databricks_store_names_reach_authentication_not_a_path_check(
    uri: str, run_cli, no_databricks_config: Path
) -> None:
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "x"])
    assert r.code == 3, r.err
    *waiting, last = r.err.splitlines()
    assert last == (
        f"hpohash: error: tracking backend failed: Databricks authentication for {uri} failed: no credentials "
        "found (set DATABRICKS_HOST and DATABRICKS_TOKEN, or use databricks://PROFILE with that profile in "
        "~/.databrickscfg)"
    )
    # the SDK may look for credentials for more than a few seconds (some MLflow releases): said once
    assert waiting in (
        [],
        [f"hpohash: waiting for {uri}: no answer to get experiment by name yet; giving up after 30 s"],
    )


def test_a_databricks_profile_whose_host_does_not_resolve(run_cli, no_databricks_config: Path) -> None:
    """The SDK would retry resolving it for minutes; hpohash reads the profile's host and tries it once."""
    no_databricks_config.write_text("[team]\nhost = https://hpohash-test.invalid\ntoken = dapi-S3CRET\n")
    r = run_cli(["verify", "--tracking-uri", "databricks://team", "-e", "x"])
    assert r.code == 3, r.err
    assert re.fullmatch(
        r"hpohash: error: tracking backend failed: cannot reach hpohash-test\.invalid \(databricks://team\): "
        r"the host name hpohash-test\.invalid (does not resolve \(.+\)|did not resolve within 30 s)\n",
        r.err,
    ), r.err


@pytest.mark.parametrize("uri", ["databricks://PROFILE", "azureml://hpohash-test.invalid/mlflow/v1.0/x", "uc"])
def test_only_paths_are_checked_as_paths(uri: str) -> None:
    Tracking._check_local(uri, create=False)  # no "no such directory"
    with pytest.raises(UsageError, match="no such directory"):
        Tracking._check_local("no-such-dir/mlruns", create=False)


# ------------------------------------------------------------------ artifact bodies


def test_an_endless_config_artifact_is_read_to_the_cap_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A listing without sizes, then a body that never ends: HH141's "larger than 1 MiB", the body
    read into memory up to the cap (no download to a file), the connection closed."""
    from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

    def no_download(*_: object, **__: object) -> None:
        raise AssertionError("an HTTP artifact must not be downloaded to a file")

    monkeypatch.setattr(HttpArtifactRepository, "_download_file", no_download)
    with faulty("endless") as server:
        tracking = Tracking(server.uri, settings=FAST)
        root = f"{server.uri}/api/2.0/mlflow-artifacts/artifacts/1/{'a' * 32}/artifacts"
        run = RunRecord("a" * 32, "1", "r", root, "active", "FINISHED", 0, {}, {}, {})
        out = tracking.fetch_configs(run)
    assert list(out) == ["hpo"]
    error = out["hpo"]
    assert isinstance(error, cfg.ConfigError)
    assert (error.where, error.reason) == (f"run {'a' * 32} artifact config/hpo.yaml", "larger than 1 MiB")
    assert server.sent < 64 * cfg.MAX_BYTES  # what the sockets buffered, not an endless stream
