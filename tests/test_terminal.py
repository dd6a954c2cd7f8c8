"""At a real terminal (a pseudo-terminal): the confirmation prompt and the progress bar."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.builders import Builder


def run_in_pty(args: list[str], cwd: Path, answer: str | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run hpohash with stdin/stdout/stderr on a pty; type ``answer`` when the prompt appears."""
    master, slave = os.openpty()
    env = dict(os.environ, COLUMNS="200", TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpohash", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if answer is not None and not answered and b"[y/N]" in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, out.decode(errors="replace")


def test_prompt_declined_writes_nothing_then_accepted(builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    before = builder.tags(s.trials[0])
    code, out = run_in_pty(["backfill", "--tracking-uri", builder.uri, "-e", name], tmp_path, answer="n")
    assert code == 1, out
    assert "Write 20 tags on 4 runs" in out and "aborted: nothing written" in out
    assert builder.tags(s.trials[0]) == before
    assert not (tmp_path / ".hpohash").exists()
    code, out = run_in_pty(["backfill", "--tracking-uri", builder.uri, "-e", name], tmp_path, answer="y")
    assert code == 0, out
    assert "wrote 4 of 4 runs (20 tags)" in out
    assert len(list((tmp_path / ".hpohash").glob("journal-*.jsonl"))) == 1


def test_verify_at_a_terminal_shows_tables(builder: Builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    builder.study(exp)
    code, out = run_in_pty(["verify", "--tracking-uri", builder.uri, "-e", name], tmp_path)
    assert code == 0, out
    assert "hpohash verify" in out and "no findings: 5 runs of 1 study checked" in out


def test_verify_at_a_wide_terminal_draws_tables_with_whole_run_ids(builder: Builder, tmp_path: Path) -> None:
    import re

    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    code, out = run_in_pty(["verify", "--tracking-uri", builder.uri, "-e", name], tmp_path)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r", "")
    assert code == 1, plain
    assert re.search(r"^run +┃ code +┃ stage +┃ message +┃ fixable", plain, re.M), plain
    for rid in (*s.trials, s.refit):
        assert re.search(rf"^{rid} +│ HH1\d\d", plain, re.M), rid
    assert plain.rstrip().splitlines()[-1].startswith("fix: hpohash backfill --tracking-uri ")
