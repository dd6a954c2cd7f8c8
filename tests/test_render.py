"""Renderers are functions of a typed report: they return text and print nothing, the CLI writes what
they return (to stdout, or to ``-o FILE`` byte for byte), and a report made by the library renders to
what the CLI prints."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hpohash
from hpohash.audit import Finding
from hpohash.render import BackfillContext, VerifyContext, by_run
from hpohash.render.json_ import encode_findings
from tests.builders import Builder

VERIFY_FORMATS = ("table", "json_", "markdown", "github", "junit")


@pytest.fixture
def legacy(builder: Builder) -> tuple[Builder, str]:
    exp, name = builder.experiment()
    builder.make_legacy(builder.study(exp))
    return builder, name


def _text(rendered: object) -> str:
    return rendered if isinstance(rendered, str) else "".join(rendered)  # type: ignore[arg-type]


def test_renderers_return_text_and_print_nothing(legacy, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    b, name = legacy
    monkeypatch.delenv("COLUMNS", raising=False)
    report = hpohash.verify(tracking_uri=b.uri, experiments=[name])
    plan = hpohash.plan_backfill(tracking_uri=b.uri, experiments=[name])
    from hpohash.reports import BackfillReport

    capsys.readouterr()
    texts = {}
    for fmt in VERIFY_FORMATS:
        module = importlib.import_module(f"hpohash.render.{fmt}")
        texts[fmt] = _text(module.format_verify(report, VerifyContext()))
        if fmt not in ("github", "junit"):
            texts[fmt + " backfill"] = module.format_backfill(BackfillReport(plan, dry_run=True), BackfillContext())
    assert capsys.readouterr() == ("", "")
    assert all(texts.values()), [k for k, v in texts.items() if not v]
    assert json.loads(texts["json_"]) == json.loads(json.dumps(report.as_dict(), default=list))
    assert texts["junit"].startswith('<?xml version="1.0" encoding="utf-8"?>\n<testsuites')
    assert texts["markdown"].startswith("## hpohash verify — ❌ 10 error(s)")


def test_library_report_renders_as_the_cli_prints(legacy, run_cli, monkeypatch) -> None:
    """The same verify report, made by ``hpohash.verify`` and rendered, is what ``hpohash verify`` prints."""
    b, name = legacy
    monkeypatch.delenv("COLUMNS", raising=False)
    report = hpohash.verify(tracking_uri=b.uri, experiments=[name])
    for fmt, module in (("json", "json_"), ("markdown", "markdown"), ("junit", "junit")):
        r = run_cli(["verify", "--tracking-uri", b.uri, "-e", name, "--format", fmt])
        ctx = VerifyContext(
            backfill_command=f"hpohash backfill --tracking-uri {b.uri} -e {name} --dry-run",
            diff_command=f"hpohash diff --tracking-uri {b.uri}",
        )
        assert r.code == 1 and r.out == _text(
            importlib.import_module(f"hpohash.render.{module}").format_verify(report, ctx)
        )


@pytest.mark.parametrize("fmt", ["json", "markdown", "junit", "github", "table"])
def test_output_file_holds_what_stdout_would(legacy, run_cli, tmp_path: Path, fmt: str, monkeypatch) -> None:
    """``-o FILE`` writes the renderer's text as is (a file is not a terminal: no width, no colour)."""
    b, name = legacy
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    args = ["verify", "--tracking-uri", b.uri, "-e", name, "--format", fmt]
    out = tmp_path / "report.out"
    r = run_cli([*args, "-o", str(out)])
    assert r.code == 1 and r.err == ""
    assert r.out.splitlines()[-1].startswith("fix: hpohash backfill")  # the terminal gets the summary
    assert out.read_text(encoding="utf-8") == run_cli(args).out


def test_github_step_summary_is_appended_by_the_caller(legacy, run_cli, tmp_path: Path, monkeypatch) -> None:
    b, name = legacy
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = run_cli(["verify", "--tracking-uri", b.uri, "-e", name, "--format", "github"])
    assert r.code == 1 and r.out.startswith("::error title=HH1")
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## hpohash verify — ❌ 10 error(s)") and text.endswith("  \n\n")


def test_by_run_keeps_first_seen_order() -> None:
    rows = [("b", 1), ("a", 2), ("b", 3)]
    assert by_run(rows, lambda r: r[0]) == {"b": [("b", 1), ("b", 3)], "a": [("a", 2)]}
    assert list(by_run(rows, lambda r: r[0])) == ["b", "a"]


finding_text = st.none() | st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@given(
    st.lists(
        st.builds(
            Finding,
            code=st.sampled_from(["HH110", "HH112", "HH150"]),
            severity=st.sampled_from(["error", "warning"]),
            run_id=st.text(max_size=34),
            stage=st.sampled_from(["parent", "trial", "refit"]),
            parent_run_id=finding_text,
            # repeated messages too: the text around a finding's own values is made once per message
            message=st.one_of(st.sampled_from(["m", "trial hash is v1 \u2026"]), st.text(st.characters(codec="utf-8"))),
            expected=finding_text,
            actual=finding_text,
            cause=finding_text,
            fixable=st.booleans(),
        ),
        max_size=30,
    )
)
def test_findings_are_encoded_as_json_dumps_encodes_their_dicts(findings: list[Finding]) -> None:
    """The JSON renderer writes findings without making their dicts: the same bytes, every character
    (quotes, backslashes, control characters, non-ASCII as is), keys in ``as_dict``'s order."""
    assert encode_findings(findings) == json.dumps([f.as_dict() for f in findings], ensure_ascii=False)[1:-1]
