"""A hostile or odd repository behind ``--config-dir``: git runs no one else's command, user settings
change nothing, unreadable history says why, and history is read within bounds.

Every "nothing ran" test has a control: the same repository makes *plain* git run the command (the
marker file appears), so the test proves the reader is what stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpohash.githistory import git_env, run_git
from hpohash.sources import ConfigSources, SourceError

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

DATES = ("2024-01-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00")


@pytest.fixture(autouse=True)
def own_git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME and global git config of the test's own, empty unless a test writes to it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("SUDO_UID", raising=False)
    return home


def git(repo: Path, *args: str, date: str | None = None, input_: bytes | None = None, check: bool = True) -> str:
    """Plain git as a user would run it (the repository's config applies): for set-up and controls."""
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE")}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(repo), *args],
        input=input_,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr.decode())
    return proc.stdout.decode().strip()


def make_repo(root: Path, *, versions: int = 3) -> Path:
    """A repository whose ``config/`` holds data/hpo/train; ``data.yaml`` changes in every commit."""
    repo = root
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "config").mkdir()
    (repo / "config" / "hpo.yaml").write_text("search_space: {lr: [0.1, 0.2]}\n")
    (repo / "config" / "train.yaml").write_text("epochs: 1\n")
    for k in range(versions):
        (repo / "config" / "data.yaml").write_text(f"version: '{k}'\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"v{k}", date=DATES[k % len(DATES)])
    return repo


def commits_of(repo: Path) -> dict[str, str]:
    out = git(repo, "log", "--format=%H %cI")
    return dict(line.split(" ", 1) for line in out.splitlines())


def summary(s: ConfigSources) -> list[tuple[tuple[str, str, str, str | None], list[tuple[str | None, str | None]]]]:
    return [(c.key, [(r.commit, r.date) for r in c.revisions]) for c in s.candidates]


# ------------------------------------------------------------------ repository-configured commands


def _signed_commit(repo: Path, signature: str) -> str:
    """A commit that changes ``config/data.yaml`` and carries a ``gpgsig`` header, made by hand."""
    (repo / "config" / "data.yaml").write_text("version: 'signed'\n")
    git(repo, "add", "-A")
    tree = git(repo, "write-tree")
    sig = "\n".join(" " + line for line in signature.splitlines())
    body = (
        f"tree {tree}\nparent {git(repo, 'rev-parse', 'HEAD')}\n"
        "author T <t@example.invalid> 1710000000 +0000\ncommitter T <t@example.invalid> 1710000000 +0000\n"
        f"gpgsig{sig}\n\nsigned\n"
    )
    commit = git(repo, "hash-object", "-t", "commit", "-w", "--stdin", input_=body.encode())
    git(repo, "update-ref", "HEAD", commit)
    return commit


def _hostile(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A marker path and an executable that creates it (and fails, as a signature or transport would)."""
    marker = tmp_path / f"ran-{name}"
    script = tmp_path / f"evil-{name}.sh"
    script.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    script.chmod(0o755)
    return marker, script


PGP = "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEEforged\n-----END PGP SIGNATURE-----"
SSH = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHforged\n-----END SSH SIGNATURE-----"


@pytest.mark.parametrize(
    ("settings", "signature"),
    [
        ({"log.showSignature": "true", "gpg.program": "{script}"}, PGP),
        (
            {
                "log.showSignature": "true",
                "gpg.format": "ssh",
                "gpg.ssh.program": "{script}",
                "gpg.ssh.allowedSignersFile": "{script}",  # ssh verification starts only with one
            },
            SSH,
        ),
    ],
    ids=["gpg.program", "gpg.ssh.program"],
)
def test_signature_programs_never_run(tmp_path: Path, settings: dict[str, str], signature: str) -> None:
    repo = make_repo(tmp_path / "repo")
    _signed_commit(repo, signature)
    marker, script = _hostile(tmp_path, "sig")
    for key, value in settings.items():
        git(repo, "config", key, value.format(script=script))
    s = ConfigSources.read([str(repo / "config")])
    assert not marker.exists()
    assert len(s.candidates) == 4  # the work tree (= the signed commit) and the three older data versions
    # control: plain git in this repository runs the program
    git(repo, "log", "--format=%H", "--", "config", check=False)
    assert marker.exists()


def _partial_clone(tmp_path: Path) -> tuple[Path, str]:
    src = make_repo(tmp_path / "src")
    git(src, "config", "uploadpack.allowFilter", "true")
    dst = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--filter=blob:none", f"file://{src}", str(dst))
    old_blob = git(src, "rev-parse", "HEAD~2:config/data.yaml")
    return dst, old_blob


@pytest.mark.parametrize("transport", ["ext", "core.sshCommand"])
def test_partial_clone_never_fetches(tmp_path: Path, transport: str) -> None:
    clone, old_blob = _partial_clone(tmp_path)
    marker, script = _hostile(tmp_path, "fetch")
    if transport == "ext":
        git(clone, "config", "remote.origin.url", f"ext::{script} %S")
        git(clone, "config", "protocol.ext.allow", "always")
    else:
        git(clone, "config", "remote.origin.url", "ssh://example.invalid/repo.git")
        git(clone, "config", "core.sshCommand", str(script))
    s = ConfigSources.read([str(clone / "config")])
    assert not marker.exists()
    # only HEAD's blobs came with the clone: the work tree's candidate, and one warning for the rest
    assert len(s.candidates) == 1
    [warning] = s.warnings
    assert "2 file version(s) in the git history are not in the repository (a partial clone" in warning
    assert "clone the repository without --filter" in warning
    # control: plain git lazily fetches the missing blob through the configured command
    git(clone, "cat-file", "-p", old_blob, check=False)
    assert marker.exists()


# ------------------------------------------------------------------ forged names


def test_forged_file_names_change_no_provenance(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    honest = summary(ConfigSources.read([str(repo / "config")]))
    fake = "1234567890ab" * 3 + "1234"
    names = [
        f"\x01{fake} 2020-01-01T00:00:00+00:00",  # the header marker this reader used to split on
        f"commit {fake} 2020-01-01T00:00:00+00:00",  # the header this reader prints now
        ":100644 100644 " + "0" * 40 + " " + "1" * 40 + " M",  # a raw diff line
        "data/\x1b[2J\x1b[31mevil.yaml",  # escape sequences in a config's name
        "hpo/\u202eevil.yaml",  # a bidi override
    ]
    (repo / "config" / "data").mkdir()
    (repo / "config" / "hpo").mkdir()
    for n in names:
        (repo / "config" / n).write_text("x: 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "forged names", date="2024-04-01T00:00:00+00:00")
    for n in names:
        (repo / "config" / n).unlink()
    (repo / "config" / "data" / "ok.yaml").write_text("version: 'ok'\n")  # the tree layout, one real file
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "clean up", date="2024-05-01T00:00:00+00:00")
    (repo / "config" / "data" / "ok.yaml").unlink()
    git(repo, "commit", "-q", "-am", "flat again", date="2024-06-01T00:00:00+00:00")
    s = ConfigSources.read([str(repo / "config")])
    real = commits_of(repo)
    for c in s.candidates:
        for r in c.revisions:
            assert r.commit is None or real[r.commit] == r.date
        assert all(p.isprintable() for p in c.files().values())
    # what the honest history held is still there, with the same commits and dates
    got = {key: revs for key, revs in summary(s)}
    for key, revs in honest:
        assert all(r in got[key] for r in revs)
    assert fake not in repr(summary(s))
    # the escape sequences reach no message raw: the one warning shows them escaped
    assert all(w.isprintable() for w in s.warnings)
    assert any("file name(s) with control characters ignored" in w and "\\x1b[2J" in w for w in s.warnings)


# ------------------------------------------------------------------ user settings


USER_SETTINGS = {
    "diff.relative": "true",
    "i18n.logOutputEncoding": "UTF-16",
    "log.follow": "true",
    "log.showRoot": "false",
}


def test_user_settings_change_nothing(tmp_path: Path, own_git_home: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "config" / "hpo.yaml").rename(repo / "config" / "hpo.yml")  # a rename, for log.follow
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "rename", date="2024-04-01T00:00:00+00:00")
    clean = summary(ConfigSources.read([str(repo / "config")]))

    def plain_log() -> bytes:
        cmd = ["git", "-C", str(repo / "config"), "log", "--raw", "--format=%H", "--", "."]
        return subprocess.run(cmd, capture_output=True, check=True).stdout

    before = plain_log()
    for key, value in USER_SETTINGS.items():
        git(repo, "config", "--global", key, value)
    assert plain_log() != before  # control: the settings do change what plain git prints
    assert summary(ConfigSources.read([str(repo / "config")])) == clean
    # in the repository's own config too: the overrides win there as well
    for key, value in USER_SETTINGS.items():
        git(repo, "config", key, value)
    assert summary(ConfigSources.read([str(repo / "config")])) == clean
    # three data versions; the newest in the work tree, the rename commit and its own; the root commit's kept
    assert [len(revs) for _, revs in clean] == [3, 1, 1]


def test_git_environment_is_fixed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_SSH_COMMAND", "touch x")
    env = git_env()
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_NO_LAZY_FETCH"] == "1" and env["GIT_ALLOW_PROTOCOL"] == "none"
    assert "GIT_DIR" not in env and "GIT_SSH_COMMAND" not in env
    repo = make_repo(tmp_path / "repo")
    assert run_git(repo, "rev-parse", "--is-inside-work-tree").strip() == b"true"  # GIT_DIR was dropped


# ------------------------------------------------------------------ unreadable history


def _dubious(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a repository owned by someone else needs root")
    repo = make_repo(tmp_path / "repo")
    subprocess.run(["chown", "-R", "65534", str(repo)], check=True)
    return repo


def _dotgit_file(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text(f"gitdir: {tmp_path / 'gone'}\n")
    return repo


def _bad_head(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / ".git" / "HEAD").write_text("garbage\n")
    return repo


def _bad_ref(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / ".git" / "refs" / "heads" / "main").write_text("0123456789" * 4 + "\n")
    return repo


def _shallow(tmp_path: Path) -> Path:
    src = make_repo(tmp_path / "src")
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{src}", str(tmp_path / "repo"))
    return tmp_path / "repo"


def _missing_object(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    blob = git(repo, "rev-parse", "HEAD~1:config/data.yaml")
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    return repo


UNREADABLE = {
    "dubious ownership": (_dubious, ["owned by someone else", "git config --global --add safe.directory"]),
    ".git file pointing nowhere": (_dotgit_file, ["is a .git file that points to no repository", "fix or remove"]),
    "bad HEAD": (_bad_head, ["is not a readable repository, its HEAD or config is broken", "git fsck"]),
    "HEAD naming a missing commit": (_bad_ref, ["HEAD or an object it needs is missing or broken", "git fsck"]),
    "shallow clone": (_shallow, ["git history is partial (a shallow clone)", "git fetch --unshallow"]),
    "missing objects": (_missing_object, ["1 file version(s) in the git history are not in the repository", "fsck"]),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_history_says_why_once(tmp_path: Path, case: str) -> None:
    build, words = UNREADABLE[case]
    repo = build(tmp_path)
    s = ConfigSources.read([str(repo / "config")])
    [warning] = s.warnings
    assert warning.startswith(f"--config-dir {repo / 'config'}: ")
    for w in words:
        assert w in warning
    assert s.candidates  # the work tree is still searched
    if case == "dubious ownership":
        assert f"safe.directory {repo}" in warning
        git(repo, "config", "--global", "--add", "safe.directory", str(repo))  # the fix it names works
        fixed = ConfigSources.read([str(repo / "config")])
        assert fixed.warnings == [] and len(fixed.candidates[0].revisions) == 2


def test_config_rev_in_unreadable_repository_is_a_usage_error(tmp_path: Path) -> None:
    repo = _dotgit_file(tmp_path)
    with pytest.raises(SourceError, match=r"^config_rev HEAD: .*points to no repository"):
        ConfigSources.read([str(repo / "config")], rev="HEAD")
    with pytest.raises(SourceError, match=r"^config_rev -x: not a revision"):
        ConfigSources.read([str(make_repo(tmp_path / "ok") / "config")], rev="-x")


# ------------------------------------------------------------------ bounds


BOMB = """
import resource, sys, time
sys.path.insert(0, {root!r})
from hpohash.sources import ConfigSources, Evidence
t0 = time.perf_counter()
s = ConfigSources.read([{tree!r}], max_history_mib={mib})
found = s.discover(Evidence(stored="0" * 64, schema_tag="2.0", model="m"))  # matches none: all are hashed
assert found.candidate is None and found.examined == len(s.candidates)
print("candidates", len(s.candidates))
print("seconds", round(time.perf_counter() - t0, 2))
for w in s.warnings:
    print("warning", w)
print("maxrss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
print("git_maxrss_mib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


def run_bomb(tree: Path, mib: int = 64) -> tuple[int, dict[str, list[str]]]:
    """Read ``tree`` in a fresh process started by the benchmarks' launcher (so its peak RSS is its
    own, not inherited from this test process); (peak RSS MiB, what it printed)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("benchmarks_common", root / "benchmarks" / "_common.py")
    assert spec is not None and spec.loader is not None
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    _, peak_mib, stdout = common.timed([sys.executable, "-c", BOMB.format(root=str(root), tree=str(tree), mib=mib)])
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition(" ")
        out.setdefault(key, []).append(value)
    return peak_mib, out


def fast_import(repo: Path, commits: Iterator[bytes]) -> None:
    """Stream commits into a new repository (no 1 GB of bytes held here), then check out main."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "-c", "pack.compression=1", "fast-import", "--quiet"], stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    for chunk in commits:
        proc.stdin.write(chunk)
    proc.stdin.close()
    assert proc.wait() == 0
    git(repo, "checkout", "-q", "main")


def blob_bomb(root: Path, blobs: int = 1000, size: int = 1000 * 1024) -> Path:
    """``blobs`` distinct ~1 MiB versions of ``data.yaml``, one per commit."""
    filler = b"# " + b"x" * (size - 40) + b"\n"

    def commits() -> Iterator[bytes]:
        for k in range(blobs):
            body = b"version: '%d'\n" % k + filler
            out = b"commit refs/heads/main\ncommitter t <t@example.invalid> %d +0000\ndata 1\nx\n" % (1_700_000_000 + k)
            if k == 0:
                for name, text in ((b"hpo.yaml", b"a: 1\n"), (b"train.yaml", b"b: 1\n")):
                    out += b"M 100644 inline config/%s\ndata %d\n%s\n" % (name, len(text), text)
            yield out + b"M 100644 inline config/data.yaml\ndata %d\n%s\n" % (len(body), body)

    fast_import(root / "blobs", commits())
    return root / "blobs" / "config"


def combination_bomb(root: Path, n: int = 200, benches: int = 25, commits: int = 20) -> Path:
    """``n`` data × ``n`` hpo × ``benches`` benchmark files (one train.yaml), edited over ``commits``."""

    def stream() -> Iterator[bytes]:
        for k in range(commits):
            out = b"commit refs/heads/main\ncommitter t <t@example.invalid> %d +0000\ndata 1\nx\n" % (1_700_000_000 + k)
            files = [(b"train.yaml", b"epochs: %d\n" % k)]
            if k == 0:
                files += [(b"data/d%d.yaml" % i, b"i: %d\n" % i) for i in range(n)]
                files += [(b"hpo/h%d.yaml" % i, b"i: %d\n" % i) for i in range(n)]
                files += [(b"benchmark/b%d.yaml" % i, b"i: %d\n" % i) for i in range(benches)]
            else:
                files += [(b"data/d%d.yaml" % (k % n), b"i: %d\nk: %d\n" % (k % n, k))]
            for name, text in files:
                out += b"M 100644 inline config/%s\ndata %d\n%s\n" % (name, len(text), text)
            yield out

    fast_import(root / "combos", stream())
    return root / "combos" / "config"


def test_blob_bomb_stops_at_the_byte_bound(tmp_path: Path) -> None:
    peak_mib, out = run_bomb(blob_bomb(tmp_path))
    [warning] = out["warning"]
    # HEAD's data.yaml is the work tree's (read from disk); 65 older ~1 MiB versions fit in 64 MiB
    assert "config history read back to 66 commits only" in warning
    assert "the bound of 64 MiB read; raise --max-history-mib (now 64) to read more" in warning
    assert out["candidates"] == ["66"]
    assert peak_mib <= 500 and int(out["git_maxrss_mib"][0]) <= 500


def test_combination_bomb_stops_at_the_candidate_bound(tmp_path: Path) -> None:
    peak_mib, out = run_bomb(combination_bomb(tmp_path))
    [warning] = out["warning"]
    assert "more than 4,096 data × hpo × train combinations" in warning
    assert "raise --max-history-mib (now 64) to read more" in warning
    assert out["candidates"] == ["4096"]
    assert peak_mib <= 500


def test_a_smaller_bound_reads_less(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert len(ConfigSources.read([str(repo / "config")], max_history_mib=1).candidates) == 3
    with pytest.raises(SourceError, match="max_history_mib must be at least 1"):
        ConfigSources.read([str(repo / "config")], max_history_mib=0)


def test_verify_past_the_bound_warns_and_reports_the_rest(run_cli, builder, tmp_path: Path) -> None:
    """End to end: newer commits holding ~600 KiB configs push the older studies' commits past a
    1 MiB bound; verify names the bound and the option once, and reports those studies as HH142."""
    import json

    from tests.pipeline import build_pipeline_store
    from tests.pipeline import git as pipeline_git

    _, name, repo, st = build_pipeline_store(builder, tmp_path)
    big = repo / "config" / "data" / "big.yaml"
    for k in range(2):
        big.write_text(f"version: '{k}'\n" + "# " + "x" * 600_000 + "\n")
        pipeline_git(repo, "add", "-A")
        pipeline_git(repo, "commit", "-q", "-m", f"big {k}", date=f"2026-06-0{k + 1}T00:00:00+00:00")
    big.unlink()
    pipeline_git(repo, "commit", "-q", "-am", "no big", date="2026-06-03T00:00:00+00:00")
    base = ["verify", "--tracking-uri", builder.uri, "-e", name, "--config-dir", str(repo / "config")]
    r = run_cli([*base, "--format", "json"])
    assert r.err == "" and {s["recomputed_study_key_hash"] for s in json.loads(r.out)["studies"]} >= {
        st["legacy"].v2,
        st["gen1"].v2,
    }
    r = run_cli([*base, "--max-history-mib", "1", "--format", "json"])
    assert r.code == 1
    assert r.err == (
        f"hpohash: warning: --config-dir {repo / 'config'}: config history read back to 2 commits only: older "
        "file versions would pass the bound of 1 MiB read; raise --max-history-mib (now 1) to read more\n"
    )
    doc = json.loads(r.out)
    hh142 = {f["run_id"] for f in doc["findings"] if f["code"] == "HH142"}
    assert hh142 == {st["legacy"].parent, st["gen1"].parent}
    gen2 = next(s for s in doc["studies"] if s["parent_run_id"] == st["gen2"].parent)
    assert gen2["recomputed_study_key_hash"] == st["gen2"].v2  # the work tree's study is still found
    import hpohash

    report = hpohash.verify(
        tracking_uri=builder.uri, experiments=[name], config_dirs=[str(repo / "config")], max_history_mib=1
    )
    assert {f.run_id for f in report.findings if f.code == "HH142"} == hh142  # the library call agrees
    bad = run_cli([*base, "--max-history-mib", "0"])
    assert bad.code == 2 and "--max-history-mib" in bad.err and "Traceback" not in bad.err


def test_bound_on_file_versions(tmp_path: Path) -> None:
    """Each commit replays the tree's 3 files: a bound of 10 versions keeps 3 commits, one warning."""
    from hpohash.candidates import CandidateSet
    from hpohash.githistory import HistoryBounds

    repo = make_repo(tmp_path / "repo", versions=6)
    s = CandidateSet.read([str(repo / "config")], bounds=HistoryBounds(64 * 2**20, 10, 10**6))
    assert [w.split(": ", 1)[1] for w in s.warnings] == [
        "config history read back to 3 commits only: more file versions than the bound of 10; "
        "raise --max-history-mib (now 64) to read more"
    ]
    assert len(s.candidates) == 3


def test_git_messages_reach_no_terminal_raw(tmp_path: Path) -> None:
    """A ``.git`` file's target is the repository's choice, and git quotes it in its error (git 2.39
    itself turns control characters into ``?``; the reader escapes whatever a git lets through)."""
    repo = make_repo(tmp_path / "repo")
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text("gitdir: /nowhere/\x1b[2J\x1b]8;;x\x07red\n")
    [warning] = ConfigSources.read([str(repo / "config")]).warnings
    assert warning.isprintable() and "\x1b" not in warning and "red)" in warning


def test_bound_on_combinations_repeated_over_commits(tmp_path: Path) -> None:
    """The same few combinations in many commits still cost a look each: that count is bounded too."""
    from hpohash.candidates import CandidateSet
    from hpohash.githistory import HistoryBounds

    repo = make_repo(tmp_path / "repo")
    for k in range(6):
        (repo / "config" / "train.yaml").write_text(f"epochs: {k % 2}\n")  # flips back and forth
        git(repo, "commit", "-q", "-am", f"train {k}", date="2024-05-01T00:00:00+00:00")
    # looked at: the work tree (new), HEAD (the same), HEAD~1 (new), HEAD~2 (the same), HEAD~3: the 5th
    s = CandidateSet.read([str(repo / "config")], bounds=HistoryBounds(64 * 2**20, 10**6, 100, 4))
    assert [w.split(": ", 1)[1] for w in s.warnings] == [
        "more than 4 data × hpo × train combinations in all its commits: the rest (from commit "
        f"{git(repo, 'rev-parse', 'HEAD~3')[:12]} (2024-05-01) back) are not searched; "
        "raise --max-history-mib (now 64) to read more"
    ]
    assert len(s.candidates) == 2
