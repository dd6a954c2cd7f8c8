"""Output a person can act on at 80 columns, and CI formats read natively (issue 11), on the real demo store.

The demo is written once per module by the real ``hpohash demo`` into MLflow's default store
(``./mlflow.db`` in a temp dir), exactly as ``make demo`` does; verify then runs as a subprocess
where the capture must be byte-true (pipes, ``COLUMNS``), in-process elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from hpohash.audit import SEVERITY
from hpohash.selection import CODES
from tests.conftest import assert_one_error_line

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = "16 errors (16 fixable) in 7 runs of 2 studies"
FIX = "fix: hpohash backfill -e hpohash-demo --dry-run"


def hpohash(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The console script as a user runs it: a subprocess, stdout a pipe, MLflow's default store in ``cwd``."""
    base = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "COLUMNS", "GITHUB_STEP_SUMMARY")}
    return subprocess.run(
        [sys.executable, "-m", "hpohash", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """(directory holding mlflow.db, its URI, verify's JSON report) of a freshly written demo."""
    d = tmp_path_factory.mktemp("demo")
    p = hpohash(["demo"], d)
    assert p.returncode == 0, p.stderr
    p = hpohash(["verify", "-e", "hpohash-demo", "--format", "json"], d)
    assert p.returncode == 1, p.stderr
    return d, f"sqlite:///{d / 'mlflow.db'}", json.loads(p.stdout)


def ids(report: dict, code: str) -> list[str]:
    return [f["run_id"] for f in report["findings"] if f["code"] == code]


# ------------------------------------------------------------------------------------------ verify text


def test_demo_piped_at_80_columns(demo) -> None:
    d, _, report = demo
    p = hpohash(["verify", "-e", "hpohash-demo"], d, COLUMNS="80")
    assert p.returncode == 1 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for f in report["findings"]:  # every run id whole on a line, as the header of its findings
        assert f"  {f['run_id']} {f['stage']}" in lines
    assert lines[-2:] == [SUMMARY, FIX]
    assert sum(1 for line in lines if re.match(r"    HH1\d\d ", line)) == 16  # one line starts each finding
    refit = ids(report, "HH121")[0]
    actual = next(f["actual"] for f in report["findings"] if f["run_id"] == refit and f["code"] == "HH120")
    at = lines.index(f"  {refit} refit")
    assert lines[at + 1 : at + 5] == [
        f"    HH120 study_key_hash {actual[:8]}… ≠ parent v2 (cause v1) [fixable]",
        "    HH121 has no code.refit.of_trial_run_id [fixable]",
        "    HH123 trial_key_hash differs from the trial key of its own hyperparameters",
        "          (cause folder8) [fixable]",
    ]
    first = report["studies"][0]
    at = lines.index(f"study {first['study_key_hash'][:12]} · parent {first['parent_run_id']} · model distilbert")
    assert lines[at - 1] == "" and lines[at + 1] == "  3 trials, 1 refit: 8 errors"
    # the README's 80-column capture is this output (run ids and the store path differ per run)
    readme = (ROOT / "README.md").read_text(encoding="utf-8").split("<!-- verify-80-columns")[1]
    capture = readme.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert max(len(line) for line in capture) <= 80
    assert _from_first_study(capture) == _from_first_study(lines)


def _from_first_study(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith("study "))
    return [re.sub(r"\b[0-9a-f]{32}\b", "<run id>", line) for line in lines[start:]]


def test_demo_piped_without_columns_is_one_line_per_finding(demo) -> None:
    d, _, report = demo
    p = hpohash(["verify", "-e", "hpohash-demo"], d)
    lines = p.stdout.splitlines()
    finding_lines = [line for line in lines if re.match(r"[0-9a-f]{32} HH1\d\d ", line)]
    assert [line.split()[:2] for line in finding_lines] == [[f["run_id"], f["code"]] for f in report["findings"]]
    refit = ids(report, "HH121")[0]
    assert f"{refit} HH121 refit  has no code.refit.of_trial_run_id [fixable]" in lines
    assert lines[-2:] == [SUMMARY, FIX]


def test_statistics_select_ignore_change_findings_and_exit_code(run_cli, demo) -> None:
    _, uri, _ = demo
    base = ["verify", "--tracking-uri", uri, "-e", "hpohash-demo"]

    r = run_cli([*base, "--statistics", "--ignore", "HH13"])
    assert r.code == 1
    assert r.out.splitlines()[-7:] == [
        "5 HH110 5 fixable  trial study_key_hash is not the study's v2 hash",
        "5 HH112 5 fixable  trial trial_key_hash is not its v2 trial key",
        "2 HH120 2 fixable  refit study_key_hash is not the study's v2 hash",
        "1 HH121 1 fixable  refit has no link to its trial",
        "2 HH123 2 fixable  refit trial_key_hash differs from its trial's",
        "15 errors (15 fixable) in 7 runs of 2 studies",
        f"fix: hpohash backfill --tracking-uri {uri} -e hpohash-demo --dry-run",
    ]

    def codes(*args: str) -> tuple[int, list[str]]:
        r = run_cli([*base, "--format", "json", *args])
        return r.code, [f["code"] for f in json.loads(r.out)["findings"]]

    assert codes("--select", "HH110") == (1, ["HH110"] * 5)
    assert codes("--select", "HH12", "--ignore", "HH123") == (1, ["HH120", "HH120", "HH121"])
    assert codes("--select", "HH121,HH13") == (1, ["HH121", "HH130"])
    assert codes("--ignore", "HH11", "--select", "HH110", "--ignore", "HH12,HH13") == (1, ["HH110"] * 5)
    assert codes("--select", "HH124") == (0, [])
    assert codes("--ignore", "HH1") == (0, [])
    r = run_cli([*base, "--select", "HH124"])
    assert r.code == 0 and r.out.splitlines()[-1] == "no findings: 9 runs of 2 studies checked"
    assert_one_error_line(run_cli([*base, "--select", "HH9"]), 2, "--select HH9: no finding code starts with it")


def test_every_finding_code_has_a_title() -> None:
    assert set(SEVERITY) <= set(CODES)


def test_next_step_when_nothing_is_fixable(run_cli, builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.client.set_tag(s.refit, "code.artifact.available", "false")
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name])
    assert r.code == 1
    assert r.out.splitlines()[-2:] == [
        "1 error (0 fixable) in 1 run of 1 study",
        "HH124 ×1 not fixable by backfill: the refit has no checkpoint; backfill never sets code.artifact.available",
    ]


# ------------------------------------------------------------------------------------------ CI formats


def test_github_annotations_and_step_summary(run_cli, demo, tmp_path: Path, monkeypatch) -> None:
    _, uri, report = demo
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "hpohash-demo", "--format", "github"])
    assert r.code == 1
    lines = r.out.splitlines()
    annotations = [line for line in lines if line.startswith("::")]
    assert len(annotations) == len(report["findings"]) == 16
    for line, f in zip(annotations, report["findings"], strict=True):
        assert line.startswith(f"::error title={f['code']}::{f['stage']} {f['run_id']}: ")
        assert "(cause" in line or f["cause"] is None
    refit = ids(report, "HH121")[0]
    assert (
        f"::error title=HH121::refit {refit}: refit has no code.refit.of_trial_run_id (fixable by hpohash backfill)"
        in annotations
    )
    assert lines[-2:] == [SUMMARY, f"fix: hpohash backfill --tracking-uri {uri} -e hpohash-demo --dry-run"]
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## hpohash verify — ❌ 16 error(s)")
    assert f"**{SUMMARY}**  \nfix: `hpohash backfill --tracking-uri {uri} -e hpohash-demo --dry-run`" in text


def test_github_escapes_workflow_command_data() -> None:
    from hpohash.audit import Finding
    from hpohash.render.github import annotation

    f = Finding("HH141", "error", "r1", "parent", None, "config data.yaml is malformed: 100% bad\nline 2")
    assert annotation(f) == (
        "::error title=HH141::parent r1: config data.yaml is malformed: 100%25 bad%0Aline 2 (not fixable by backfill)"
    )


def test_junit_file_one_case_per_run_one_failure_per_error(demo, tmp_path: Path) -> None:
    d, _, report = demo
    out = tmp_path / "r.xml"
    p = hpohash(["verify", "-e", "hpohash-demo", "--format", "junit", "-o", str(out)], d, COLUMNS="80")
    assert p.returncode == 1
    assert p.stdout.splitlines() == [SUMMARY, FIX]  # the terminal still gets the summary
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "9" and root.get("failures") == "7"
    cases = root.findall("./testsuite/testcase")
    checked = {f"{st}" for st in ("parent", "trial", "refit")}
    assert len(cases) == 9 and {c.get("name").split()[0] for c in cases} == checked
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == report["summary"]["errors"] == 16
    by_case = sorted((c.get("name").split()[1], f.get("type")) for c in cases for f in c.findall("failure"))
    assert by_case == sorted((f["run_id"], f["code"]) for f in report["findings"])
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        f"study {st['parent_run_id']} ({st['model']})" for st in report["studies"]
    ]


def test_junit_warnings_fail_only_with_strict(run_cli, builder, tmp_path: Path) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.client.set_tag(s.trials[0], "code.output_dir", "/out/hpo/local/distilbert/study-00000000")
    base = ["verify", "--tracking-uri", builder.uri, "-e", name, "--format", "junit"]
    r = run_cli(base)
    root = ET.fromstring(r.out)
    assert r.code == 0 and root.findall(".//failure") == []
    assert "HH160 (warning)" in root.find(".//system-out").text
    r = run_cli([*base, "--strict"])
    assert r.code == 1 and [f.get("type") for f in ET.fromstring(r.out).findall(".//failure")] == ["HH160"]


def test_output_file_for_every_format(run_cli, demo, tmp_path: Path) -> None:
    _, uri, _ = demo
    for fmt in ("table", "json", "markdown", "github", "junit"):
        path = tmp_path / f"report.{fmt}"
        r = run_cli(["verify", "--tracking-uri", uri, "-e", "hpohash-demo", "--format", fmt, "-o", str(path)])
        assert r.code == 1 and r.out.splitlines()[0] == SUMMARY, fmt
        assert path.stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["errors"] == 16
    assert "HH121" in (tmp_path / "report.table").read_text()
    r = run_cli(["verify", "--tracking-uri", uri, "-e", "hpohash-demo", "-o", str(tmp_path / "no" / "x.xml")])
    assert_one_error_line(r, 2, "not a file in an existing directory")


def _run_steps(doc_steps: list[dict], cwd: Path, env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Run a CI file's shell steps as the runner would (bash -e), skipping the install (done in .venv)."""
    done = []
    for step in doc_steps:
        script = step.get("run") or step.get("script")
        if not script or "pip install" in script:
            continue
        done.append(
            subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        )
    return done


def test_github_actions_example_works_as_written(demo, tmp_path: Path) -> None:
    d, uri, _ = demo
    workflow = yaml.safe_load((ROOT / "examples/ci/github-actions-verify.yml").read_text())
    steps = workflow["jobs"]["verify"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert uses[0].startswith("actions/checkout@") and any(u.startswith("actions/setup-python@") for u in uses)
    assert any(s.get("run", "").strip() == "pip install ." for s in steps)
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": "hpohash-demo",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    (verify,) = _run_steps(steps, d, env)
    assert verify.returncode == 1  # the gate: errors fail the job
    assert sum(line.startswith("::error title=HH1") for line in verify.stdout.splitlines()) == 16
    assert "## hpohash verify" in summary.read_text()


def test_azure_pipelines_example_publishes_junit(demo, tmp_path: Path) -> None:
    d, uri, _ = demo
    pipeline = yaml.safe_load((ROOT / "examples/ci/azure-pipelines-verify.yml").read_text())
    steps = pipeline["steps"]
    publish = next(s for s in steps if s.get("task", "").startswith("PublishTestResults@"))
    assert publish["inputs"]["testResultsFormat"] == "JUnit"
    assert publish["condition"] == "succeededOrFailed()"
    staging = tmp_path / "staging"
    staging.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": "hpohash-demo",
        "BUILD_ARTIFACTSTAGINGDIRECTORY": str(staging),
    }
    (verify,) = _run_steps(steps, d, env)
    assert verify.returncode == 1
    result = publish["inputs"]["testResultsFiles"].replace("$(Build.ArtifactStagingDirectory)", str(staging))
    assert len(ET.parse(result).getroot().findall(".//failure")) == 16


# ------------------------------------------------------------------------------------------ MLflow conventions


def test_mlflow_experiment_env_vars_are_the_default(run_cli, demo, monkeypatch) -> None:
    _, uri, _ = demo
    from mlflow import MlflowClient

    exp_id = MlflowClient(tracking_uri=uri).get_experiment_by_name("hpohash-demo").experiment_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hpohash-demo")
    r = run_cli(["verify", "--format", "json"])
    assert r.code == 1 and json.loads(r.out)["experiments"] == ["hpohash-demo"]
    r = run_cli(["verify"])
    assert r.out.splitlines()[-2:] == [SUMMARY, FIX]
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", exp_id)
    r = run_cli(["verify", "--format", "json"])
    assert r.code == 1 and json.loads(r.out)["experiments"] == ["hpohash-demo"]
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "no-such-experiment")
    assert_one_error_line(run_cli(["verify"]), 2, "'no-such-experiment' not found")
    assert "MLFLOW_EXPERIMENT_NAME" in run_cli(["verify"]).err
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    r = run_cli(["verify"])
    assert_one_error_line(r, 2, "or set MLFLOW_EXPERIMENT_NAME or MLFLOW_EXPERIMENT_ID")


def test_check_all_without_experiments_checks_every_experiment(run_cli, demo) -> None:
    _, uri, _ = demo
    r = run_cli(["verify", "--tracking-uri", uri, "--check-all", "--format", "json"])
    assert r.code == 1 and set(json.loads(r.out)["experiments"]) == {"Default", "hpohash-demo"}
    r = run_cli(["verify", "--tracking-uri", uri, "--check-all"])
    assert r.out.splitlines()[-1] == f"fix: hpohash backfill --tracking-uri {uri} -e hpohash-demo --dry-run"
    assert_one_error_line(
        run_cli(["verify", "--tracking-uri", uri, "--check-all", "--parent-run-id", "x"]), 2, "exclude each other"
    )


def test_version_and_help_sections(run_cli) -> None:
    r = run_cli(["-V"])
    assert r.code == 0 and r.out.startswith("hpohash, version ")
    r = run_cli(["verify", "--help"])
    heads = [line for line in r.out.splitlines() if line.endswith("options:")]
    assert heads == ["Scope options:", "Config options:", "Output options:", "Other options:"]
    out = r.out
    assert out.index("--parent-run-id") < out.index("Config options:") < out.index("--config-dir")
    assert out.index("Output options:") < out.index("  --select CODES") < out.index("  --format [")
    r = run_cli(["backfill", "--help"])
    assert r.out.index("Config options:") < r.out.index("Backfill options:") < r.out.index("  --dry-run ")
    r = run_cli(["hash", "--help"])  # hash's own --config-dir (a tree or flat folder) is a Config option too
    assert r.out.index("Config options:") < r.out.index("  --config-dir ") < r.out.index("Trial options:")


def test_shell_completion_of_experiment_names(demo) -> None:
    d, _, _ = demo
    p = hpohash([], d, _HPOHASH_COMPLETE="bash_complete", COMP_WORDS="hpohash verify -e hpo", COMP_CWORD="3")
    assert p.returncode == 0 and p.stdout.splitlines() == ["plain,hpohash-demo"]


# ------------------------------------------------------------------------------------------ backfill, hash


def test_backfill_plan_at_80_columns_grouped_by_run(demo) -> None:
    d, _, report = demo
    p = hpohash(["backfill", "-e", "hpohash-demo", "--dry-run"], d, COLUMNS="80")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    refit = ids(report, "HH121")[0]
    champion = ids(report, "HH130")[0]
    at = lines.index(f"  {refit} refit")
    assert lines[at + 1].startswith("    code.legacy.study_key_hash: ∅ → ")
    assert lines[at + 1 :].index(f"    code.refit.of_trial_run_id: ∅ → {champion} (refit") >= 0
    assert sum(1 for line in lines if re.fullmatch(r"  [0-9a-f]{32} (trial|refit)", line)) == 7
    assert lines[-2:] == [
        "dry run: 35 tags on 7 runs would change · 0 conflicts · 0 failed",
        "apply: hpohash backfill -e hpohash-demo --yes",
    ]


def test_hash_key_value_lines_keep_hashes_whole(run_cli, c01_dir: Path, monkeypatch) -> None:
    from tests.builders import EXPECTED

    exp = EXPECTED["c01_realistic.yaml"]
    monkeypatch.setenv("COLUMNS", "80")
    r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "distilbert"])
    lines = r.out.splitlines()
    assert r.code == 0 and max(len(line) for line in lines) <= 80
    assert lines[:2] == ["model: distilbert", f"study_key_hash: {exp['study_key_hash_v2']}"]
    assert lines[lines.index("data_fingerprint:") + 1] == f"  {exp['data_fingerprint']}"
    monkeypatch.delenv("COLUMNS")
    r = run_cli(["hash", "--config-dir", str(c01_dir), "--model", "distilbert"])
    assert f"data_fingerprint: {exp['data_fingerprint']}" in r.out.splitlines()


def test_diff_and_undo_keep_run_ids_whole_at_80_columns(run_cli, builder, tmp_path: Path, monkeypatch) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.make_legacy(s)
    monkeypatch.setenv("COLUMNS", "80")
    r = run_cli(["diff", "--tracking-uri", builder.uri, s.refit])
    lines = r.out.splitlines()
    assert r.code == 1 and max(len(line) for line in lines) <= 80
    assert lines[1:3] == [f"a: run {s.refit}", f"b: parent {s.parent}"]
    journal = tmp_path / "j.jsonl"
    r = run_cli(["backfill", "--tracking-uri", builder.uri, "-e", name, "--yes", "--journal", str(journal)])
    assert r.code == 0 and r.out.splitlines()[-3:] == [
        "wrote 4 of 4 runs (20 tags) · 0 conflicts · 0 failed",
        f"journal: {journal}",
        f"undo: hpohash undo --tracking-uri {builder.uri} {journal}",
    ]
    r = run_cli(["undo", "--tracking-uri", builder.uri, str(journal), "--dry-run"])
    lines = r.out.splitlines()
    assert r.code == 0 and lines[0] == "tags to restore:"
    headers = [line.strip() for line in lines if re.fullmatch(r"  [0-9a-f]{32}", line)]
    assert len(headers) == 4 and set(headers) <= {s.parent, *s.trials, s.refit}
    assert lines[-2:] == ["dry run: 20 tags on 4 runs would be restored · skipped 0 · missing runs 0", "  failed 0"]


def test_next_step_explains_a_hash_of_unknown_provenance(run_cli, builder) -> None:
    exp, name = builder.experiment()
    s = builder.study(exp)
    builder.client.set_tag(s.trials[0], "code.study_key_hash", "ab" * 32)
    r = run_cli(["verify", "--tracking-uri", builder.uri, "-e", name])
    assert r.code == 1
    assert r.out.splitlines()[-3:] == [
        "1 error (0 fixable) in 1 run of 1 study",
        "HH110 ×1 not fixable by backfill: stored hash of unknown provenance: check it, then backfill --force",
        f"explain: hpohash diff --tracking-uri {builder.uri} {s.trials[0]}",
    ]
