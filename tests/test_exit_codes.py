"""Bad input and a hostile environment get their documented exit code (SPEC §5), one line, no traceback."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.builders import Builder
from tests.conftest import assert_one_error_line


def _hpohash(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpohash", *args], stderr=subprocess.PIPE, text=True, timeout=120, **kwargs
    )  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("uri", "module", "package"),
    [
        ("mysql://u@127.0.0.1:9/db", "MySQLdb", "mysqlclient"),
        ("mysql+pymysql://u@127.0.0.1:9/db", "pymysql", "PyMySQL"),
        ("postgresql+pg8000://u@127.0.0.1:9/db", "pg8000", "pg8000"),
    ],
)
def test_a_missing_database_driver_is_a_usage_error_naming_the_package(
    run_cli, uri: str, module: str, package: str
) -> None:
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here")
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "x"])
    assert_one_error_line(r, 2, f"database driver '{module}', which is not installed: pip install {package}")


def test_an_output_name_the_os_refuses_is_exit_2_with_its_reason(run_cli, sqlite_uri: str) -> None:
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "x", "-o", "n" * 300])
    assert_one_error_line(r, 2, f"-o {'n' * 300}: File name too long")


def test_a_full_stdout_is_exit_2_with_the_os_reason(builder: Builder) -> None:
    exp, name = builder.experiment()
    builder.make_legacy(builder.study(exp))
    for fmt in ("json", "table"):
        with open("/dev/full", "w") as full:
            p = _hpohash("verify", "--tracking-uri", builder.uri, "-e", name, "--format", fmt, stdout=full)
        assert p.returncode == 2, (fmt, p.stderr)
        assert p.stderr == "hpohash: error: cannot write to stdout: No space left on device\n", (fmt, p.stderr)


def test_a_closed_stdout_is_exit_2_with_the_os_reason(sqlite_uri: str) -> None:
    p = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m hpohash rules >&-'], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr == "hpohash: error: cannot write to stdout: Bad file descriptor\n"


def test_the_process_ends_with_its_exit_code_whole_output_and_exit_handlers(builder: Builder) -> None:
    """``edge._exit`` skips freeing the heap, not the exit handlers, the buffered output or the code."""
    exp, name = builder.experiment()
    builder.make_legacy(builder.study(exp))
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('handler ran\\n'))\n"
        "from hpohash.cli import entry\n"
        "entry()\n"
    )
    args = ["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "json"]
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert p.stderr.endswith("handler ran\n"), p.stderr
    doc = json.loads(p.stdout)  # all of it: nothing left in a buffer
    assert doc["summary"]["errors"] > 0
    ok = subprocess.run([sys.executable, "-c", script, "rules", "HH120"], capture_output=True, text=True, timeout=120)
    assert (ok.returncode, ok.stderr) == (0, "handler ran\n")
    assert "HH120" in ok.stdout


def test_an_out_of_range_experiment_id_is_a_usage_error(run_cli, sqlite_uri: str) -> None:
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "--experiment-id", "9" * 23])
    assert_one_error_line(r, 2, f"--experiment-id {'9' * 23}: out of range")
    r = run_cli(["backfill", "--tracking-uri", sqlite_uri, "--experiment-id", "9" * 23, "--dry-run"])
    assert_one_error_line(r, 2, f"--experiment-id {'9' * 23}: out of range")


def test_only_the_verbose_option_shows_a_traceback(run_cli, sqlite_uri: str) -> None:
    """``-v`` before the command is no option of hpohash's; ``-e -v`` is an experiment named -v."""
    r = run_cli(["-v", "verify"])
    assert_one_error_line(r, 2, "No such option '-v'.")
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "-v"])
    assert_one_error_line(r, 2, f"experiment '-v' not found at {sqlite_uri}")
    r = run_cli(["verify", "--tracking-uri", sqlite_uri, "-e", "nope", "-v"])
    assert r.code == 2 and "Traceback" in r.err


@pytest.mark.parametrize("secret", ["true", "false", "null", "1234", "2.0", "0", "hpohash", "verify"])
def test_a_short_secret_never_corrupts_json(
    builder: Builder, monkeypatch: pytest.MonkeyPatch, run_cli, secret: str
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", secret)
    exp, name = builder.experiment()
    builder.make_legacy(builder.study(exp))
    for args, code in ((["verify"], 1), (["backfill", "--dry-run", "--exit-code"], 1), (["rules"], 0)):
        r = run_cli([*args, *(["--tracking-uri", builder.uri, "-e", name] if code else []), "--format", "json"])
        assert r.code == code, r.err
        doc = json.loads(r.out)
        assert isinstance(doc, list) or "schema" in doc  # parses; a secret inside a string may be masked there


def test_a_secret_is_still_masked_where_it_is_the_secret() -> None:
    from hpohash.redact import Redactor

    rd = Redactor()
    rd.add_secret("true")
    assert rd.redact('{"ok": true, "n": [1, true]}') == '{"ok": true, "n": [1, true]}'
    assert rd.redact("GET /api?user=u&password=true failed") == "GET /api?user=u&password=*** failed"
    assert rd.redact("http://u:true@host/") == "http://***@host/"
    assert rd.redact('{"error": "tok-true-x"}') == '{"error": "tok-***-x"}'
