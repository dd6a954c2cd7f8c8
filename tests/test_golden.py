"""Golden outputs: what every command prints, byte for byte, on the demo store and on the
pipeline-shaped store (tests/pipeline.py), run through ``hpohash.cli.main`` in-process.

Every JSON output (verify, backfill plan and apply, undo plan and apply, diff, hash, rules, demo) is
held, and the human formats (table, markdown, github, junit) of the same reports beside them, so a
reshaping of reports and renderers is shown to change no byte anyone reads.

A JSON output is kept as the parsed object (a readable diff when it changes) and compared as bytes:
stdout must equal ``json.dumps(golden, ensure_ascii=False) + "\\n"``, the one-line form hpohash
writes off a terminal. Other formats are kept as their lines.

Normalised, and only these, because they differ from one run of the test to the next:
- each run id (32 hex, made by MLflow) becomes ``<run:NAME>``, NAME its run name;
- the test's tmp directory becomes ``<tmp>`` (tracking URIs, journal and config paths);
- the pipeline experiment's random name suffix becomes ``pipeline-<exp>``.
Nothing else is: hashes, commits (fixed dates and authors), messages and order are compared as made.

After a deliberate change of output: ``HPOHASH_REGOLD=1 pytest tests/test_golden.py`` rewrites
tests/golden/*.json; review their diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from hpohash.cli import main
from tests.builders import Builder
from tests.conftest import write_case_dir

GOLDEN = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parent.parent
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")


class Golden:
    """Runs commands and records (or checks) their normalised output under a name."""

    def __init__(self, name: str, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.path = GOLDEN / f"{name}.json"
        self.tmp = str(tmp)
        self.capsys = capsys
        self.names: dict[str, str] = {}
        self.replacements: list[tuple[str, str]] = []
        self.seen: dict[str, Any] = {}

    def learn_runs(self, uri: str) -> None:
        """Every run of the store by id → its run name (names are unique in these stores)."""
        client = MlflowClient(tracking_uri=uri)
        exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
        names = {
            r.info.run_id: r.info.run_name
            for r in client.search_runs(exps, run_view_type=ViewType.ALL, max_results=1000)
        }
        assert len(set(names.values())) == len(names), "run names must be unique to normalise by them"
        self.names.update(names)

    def normalise(self, text: str) -> str:
        text = text.replace(self.tmp, "<tmp>")
        for old, new in self.replacements:
            text = text.replace(old, new)
        return _RUN_ID.sub(
            lambda m: f"<run:{self.names[m.group(0)]}>" if m.group(0) in self.names else m.group(0), text
        )

    def run(self, key: str, *args: str) -> tuple[int, str]:
        """Run ``hpohash ARGS`` and record (exit code, stdout) under ``key``; stderr must be empty."""
        self.capsys.readouterr()
        code = main(list(args))
        captured = self.capsys.readouterr()
        assert captured.err == "", (key, captured.err)
        self.record(
            key, code, captured.out, json_output="--format" in args and args[args.index("--format") + 1] == "json"
        )
        return code, captured.out

    def record(self, key: str, code: int, out: str, *, json_output: bool) -> None:
        assert key not in self.seen, key
        text = self.normalise(out)
        self.seen[key] = (
            {"exit": code, "json": json.loads(text)} if json_output else {"exit": code, "lines": text.split("\n")}
        )

    def check(self) -> None:
        if os.environ.get("HPOHASH_REGOLD"):
            GOLDEN.mkdir(exist_ok=True)
            self.path.write_text(json.dumps(self.seen, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            return
        golden = json.loads(self.path.read_text(encoding="utf-8"))
        assert list(self.seen) == list(golden), "the commands run differ from the golden file's"
        differ = []
        for key, want in golden.items():
            got = self.seen[key]
            if "json" in want:
                # byte for byte: hpohash's one-line JSON is json.dumps with these settings
                same = json.dumps(got.get("json"), ensure_ascii=False) == json.dumps(want["json"], ensure_ascii=False)
            else:
                same = got.get("lines") == want["lines"]
            if not same or got["exit"] != want["exit"]:
                differ.append(key)
        assert differ == [], f"output differs from {self.path.name} for: {differ}"


@pytest.fixture
def golden_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output that depends on nothing of the machine: no terminal width, colours or CI variables."""
    for var in (
        "COLUMNS",
        "LINES",
        "FORCE_COLOR",
        "NO_COLOR",
        "TTY_COMPATIBLE",
        "TTY_INTERACTIVE",
        "GITHUB_STEP_SUMMARY",
    ):
        monkeypatch.delenv(var, raising=False)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)


def _raw_json_is_one_line(out: str) -> None:
    """The byte form the golden comparison assumes: one ``json.dumps(..., ensure_ascii=False)`` line."""
    assert out == json.dumps(json.loads(out), ensure_ascii=False) + "\n"


FORMATS_ALL = ("json", "table", "markdown")


def _each_format(g: Golden, key: str, *args: str, formats: tuple[str, ...] = FORMATS_ALL) -> None:
    for fmt in formats:
        code, out = g.run(f"{key} [{fmt}]", *args, "--format", fmt)
        if fmt == "json":
            _raw_json_is_one_line(out)


def test_golden_store_free(golden_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``rules`` and ``hash``: no store, the same bytes wherever they run."""
    g = Golden("store_free", tmp_path, capsys)
    _each_format(g, "rules", "rules")
    _each_format(g, "rules HH120", "rules", "HH120")
    _each_format(g, "rules HH124", "rules", "hh124")
    c01 = tmp_path / "c01"
    write_case_dir("c01_realistic.yaml", c01)
    hp = [
        '{"learning_rate": 2.33e-05, "batch_size": 16, "dropout": 0.1733, "weight_decay": 0.0042}',
        '{"lr": 1e-3, "name": "ä|x"}',
    ]
    _each_format(g, "hash c01", "hash", "--config-dir", str(c01), "--model", "distilbert-base-uncased")
    _each_format(
        g,
        "hash c01 trials v1 --show-key",
        "hash",
        "--config-dir",
        str(c01),
        "--model",
        "distilbert-base-uncased",
        "--hyperparameters",
        hp[0],
        "--hyperparameters",
        hp[1],
        "--trial-key-schema",
        "1.0",
        "--show-key",
    )
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "examples" / "pipeline" / "config", tree)
    _each_format(
        g, "hash tree stage", "hash", "--config-dir", str(tree), "--model", "distilbert", "--hyperparameters", hp[0]
    )
    g.check()


def test_golden_demo_store(golden_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo: verify, plan, apply, verify, undo (plan and apply), verify; diff of its runs."""
    g = Golden("demo", tmp_path, capsys)
    uri = f"sqlite:///{tmp_path / 'demo.db'}"
    store = ("--tracking-uri", uri)
    scope = (*store, "-e", "hpohash-demo")
    for fmt in ("json", "table"):
        uri_fmt = f"sqlite:///{tmp_path / f'demo-{fmt}.db'}" if fmt != "json" else uri
        capsys.readouterr()
        code = main(["demo", "--tracking-uri", uri_fmt, "--format", fmt])
        out = capsys.readouterr()
        assert out.err == ""
        g.learn_runs(uri_fmt)  # run ids exist only once the demo has written them
        g.record(f"demo [{fmt}]", code, out.out, json_output=fmt == "json")
    ids = {run.info.run_name: run.info.run_id for run in _runs(uri)}

    _each_format(g, "verify", "verify", *scope, formats=("json", "table", "markdown", "github", "junit"))
    g.run("verify --statistics [table]", "verify", *scope, "--statistics", "--format", "table")
    g.run(
        "verify --select HH12 --ignore HH123 [json]",
        "verify",
        *scope,
        "--select",
        "HH12",
        "--ignore",
        "HH123",
        "--format",
        "json",
    )
    g.run(
        "verify --parent-run-id [json]", "verify", *store, "--parent-run-id", ids["hpo_distilbert"], "--format", "json"
    )
    _each_format(g, "backfill --dry-run", "backfill", *scope, "--dry-run")
    g.run("backfill --dry-run --exit-code [json]", "backfill", *scope, "--dry-run", "--exit-code", "--format", "json")
    _each_format(g, "diff trial", "diff", *store, ids["hpo_distilbert_trial_0"])
    _each_format(g, "diff refit", "diff", *store, ids["hpo_distilbert_refit"])
    others = sorted(n for n in ids if n.endswith("_refit") and n != "hpo_distilbert_refit")
    parents = sorted(n for n in ids if n.startswith("hpo_") and n.count("_") == 1)
    assert len(parents) == 2 and others
    _each_format(g, "diff parents", "diff", *store, ids[parents[0]], ids[parents[1]])
    _each_format(
        g, "diff trials of two studies", "diff", *store, ids[parents[0] + "_trial_0"], ids[parents[1] + "_trial_0"]
    )

    journal = tmp_path / "backfill.jsonl"
    g.run("backfill --yes [json]", "backfill", *scope, "--yes", "--journal", str(journal), "--format", "json")
    _each_format(g, "verify after backfill", "verify", *scope)
    _each_format(g, "diff refit after backfill", "diff", *store, ids["hpo_distilbert_refit"])
    _each_format(g, "undo --dry-run", "undo", *store, str(journal), "--dry-run")
    g.run(
        "undo --yes [json]",
        "undo",
        *store,
        str(journal),
        "--yes",
        "--journal",
        str(tmp_path / "undo.jsonl"),
        "--format",
        "json",
    )
    g.run("verify after undo [json]", "verify", *scope, "--format", "json")
    g.run("undo again (nothing to restore) [json]", "undo", *store, str(journal), "--yes", "--format", "json")
    journal2 = tmp_path / "backfill2.jsonl"
    g.run("backfill --yes [table]", "backfill", *scope, "--yes", "--journal", str(journal2), "--format", "table")
    g.run(
        "undo --yes [markdown]",
        "undo",
        *store,
        str(journal2),
        "--yes",
        "--journal",
        str(tmp_path / "u2.jsonl"),
        "--format",
        "markdown",
    )
    g.run(
        "backfill --yes [markdown]",
        "backfill",
        *scope,
        "--yes",
        "--journal",
        str(tmp_path / "b3.jsonl"),
        "--format",
        "markdown",
    )
    g.run(
        "undo --yes [table]",
        "undo",
        *store,
        str(tmp_path / "b3.jsonl"),
        "--yes",
        "--journal",
        str(tmp_path / "u3.jsonl"),
        "--format",
        "table",
    )
    g.check()


def _runs(uri: str) -> list[Any]:
    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(exps, max_results=1000))


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed on this machine")
def test_golden_pipeline_store(golden_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pipeline-shaped store with its config tree's git history: every command's output."""
    from tests.pipeline import build_pipeline_store

    uri = f"sqlite:///{tmp_path / 'pipeline.db'}"
    b = Builder(uri, artifact_root=(tmp_path / "artifacts").as_uri())
    _, name, repo, st = build_pipeline_store(b, tmp_path)
    g = Golden("pipeline", tmp_path, capsys)
    g.replacements.append((name, "pipeline-<exp>"))
    g.learn_runs(uri)
    store = ("--tracking-uri", uri)
    cfg = ("--config-dir", str(repo / "config"))
    scope = (*store, "-e", name, *cfg)
    legacy, gen1, gen2 = st["legacy"], st["gen1"], st["gen2"]

    _each_format(g, "verify", "verify", *scope, formats=("json", "table", "markdown", "github", "junit"))
    g.run("verify --strict --statistics [table]", "verify", *scope, "--strict", "--statistics", "--format", "table")
    _each_format(g, "verify without configs", "verify", *store, "-e", name)
    _each_format(g, "verify --no-config-history", "verify", *scope, "--no-config-history", formats=("json", "table"))
    g.run("verify --config-rev [json]", "verify", *scope, "--config-rev", gen1.version.commit, "--format", "json")
    _each_format(g, "backfill --dry-run", "backfill", *scope, "--dry-run")
    _each_format(
        g, "backfill --dry-run without configs", "backfill", *store, "-e", name, "--dry-run", formats=("json",)
    )
    _each_format(g, "diff legacy refit", "diff", *store, *cfg, legacy.refit)
    _each_format(g, "diff trial", "diff", *store, *cfg, gen2.trials[0])
    _each_format(g, "diff parents", "diff", *store, *cfg, legacy.parent, gen2.parent)
    _each_format(g, "diff parent against disk", "diff", *store, *cfg, gen1.parent)
    _each_format(g, "diff trial against disk", "diff", *store, *cfg, gen1.trials[1], "--against-config-dir")

    journal = tmp_path / "backfill.jsonl"
    _each_format(g, "backfill --yes", "backfill", *scope, "--yes", "--journal", str(journal), formats=("json",))
    _each_format(g, "verify after backfill", "verify", *scope, formats=("json",))
    _each_format(g, "undo --dry-run", "undo", *store, str(journal), "--dry-run")
    g.run(
        "undo --yes [json]",
        "undo",
        *store,
        str(journal),
        "--yes",
        "--journal",
        str(tmp_path / "undo.jsonl"),
        "--format",
        "json",
    )
    g.run("verify after undo [json]", "verify", *scope, "--format", "json")
    g.check()
