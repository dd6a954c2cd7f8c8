"""Markdown renderer: plain GitHub-flavoured tables for CI job summaries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from hpohash.render import BackfillContext, VerifyContext
from hpohash.render.text import code_counts, compact, diff_rows, diff_verdict, summary_lines
from hpohash.rules import RULES
from hpohash.text import shorten

if TYPE_CHECKING:
    from hpohash.reports import BackfillReport, DiffReport, UndoReport, VerifyReport
    from hpohash.rules import Rule


def _md_cell(value: Any) -> str:
    """A table cell: a ``|`` in data must not end the cell, a newline not the row."""
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _document(text: str) -> str:
    return text.rstrip("\n") + "\n"


def format_hash(report: dict[str, Any], *, show_key: bool = False) -> str:
    parts = ["## hpohash hash", ""]
    rows = [
        ("model", report["model"]),
        ("study_key_hash (v2)", f"`{report['study_key_hash']}`"),
        ("data_fingerprint", f"`{report['data_fingerprint']}`"),
        ("eval_fingerprint", f"`{report['eval_fingerprint']}`"),
    ]
    rows += [(f"study_key_hash_v1 ({s})", f"`{h}`") for s, h in report["study_key_hash_v1"].items()]
    rows += [(f"study_family_hash ({s})", f"`{h}`") for s, h in report["study_family_hash"].items()]
    parts.append(table(["field", "value"], rows))
    if report["trials"]:
        parts += [
            "",
            table(
                ["hyperparameters", "trial_key_hash"],
                [
                    (json.dumps(t["hyperparameters"], sort_keys=True), f"`{t['trial_key_hash']}`")
                    for t in report["trials"]
                ],
            ),
        ]
    if show_key:
        parts += ["", "```json", json.dumps(report["study_key"], sort_keys=True, separators=(",", ":")), "```"]
    return _document("\n".join(parts))


def format_verify(report: VerifyReport, ctx: VerifyContext, *, quiet: bool = False) -> str:
    return _document(verify_markdown(report, ctx))


def verify_markdown(report: VerifyReport, ctx: VerifyContext) -> str:
    """The report as GitHub-flavoured Markdown (a job summary), ending with the summary and next step."""
    s = report.summary
    status = "✅ no errors" if s.ok else f"❌ {s.errors} error(s)"
    parts = [
        f"## hpohash verify — {status}",
        "",
        f"Experiments: {', '.join(report.experiments)} · studies {s.studies} · trials {s.trials} · "
        f"refits {s.refits} · errors {s.errors} · warnings {s.warnings}"
        + (f" · studies skipped (no run since --since) {s.studies_skipped}" if s.studies_skipped is not None else ""),
        "",
    ]
    if report.studies:
        parts.append(
            table(
                ["parent", "model", "trials", "refits", "stored study hash", "recomputed", "configs"]
                + ["errors", "warnings"],
                [
                    (
                        st.parent_run_id,
                        st.model,
                        st.trials,
                        st.refits,
                        _short(st.study_key_hash),
                        _short(st.recomputed_study_key_hash),
                        st.config_source.describe() if st.config_source else "no configs",
                        st.errors,
                        st.warnings,
                    )
                    for st in report.studies
                ],
            )
        )
        parts.append("")
    if report.findings:
        parts.append(
            table(
                ["code", "severity", "run", "stage", "message", "fixable"],
                [
                    (f.code, f.severity, f.run_id, f.stage, f.message, "yes" if f.fixable else "no")
                    for f in report.findings
                ],
            )
        )
        parts.append("")
    if ctx.statistics and report.findings:
        rows = [(code, n, fixable, RULES[code].short) for code, n, fixable in code_counts(report.findings)]
        parts += [table(["code", "findings", "fixable", "what"], rows), ""]
    for i, line in enumerate(summary_lines(report, ctx)):
        head, sep, command = line.partition(": hpohash ")
        if sep:
            parts.append(f"{head}: `hpohash {command}`  ")
        else:
            parts.append(f"**{line}**  " if i == 0 else f"{line}  ")
    return "\n".join(parts)


def _short(h: str | None) -> str:
    return f"`{shorten(h)}`" if h else "—"


def format_demo(created: dict[str, Any]) -> str:
    return _document(demo_text(created))


def demo_text(created: dict[str, Any]) -> str:
    """What the demo wrote and what to run next (the table format prints the same)."""
    studies = created["studies"]
    trials = sum(len(s["trials"]) for s in studies)
    return (
        f"Wrote experiment '{created['experiment']}' ({len(studies)} studies, {trials} trials, "
        f"{len(studies)} refits) into {created['tracking_uri']}.\n"
        f"Next: hpohash verify -e {created['experiment']}"
    )


def format_backfill(report: BackfillReport, ctx: BackfillContext, *, preview: bool = False) -> str:
    if preview:
        return ""
    s = report.summary
    mode = "dry run" if report.dry_run else "applied"
    journal = report.journal
    parts = [
        f"## hpohash backfill ({mode})",
        "",
        f"runs planned {s.runs_planned} · tags planned {s.tags_planned} · written {s.runs_written} · "
        f"failed {s.runs_failed} · conflicts {s.conflicts}" + (f" · journal `{journal}`" if journal else ""),
        "",
    ]
    if report.plan.changes:
        parts += [
            table(
                ["run", "stage", "key", "old", "new", "reason"],
                [(c.run_id, c.stage, c.key, c.old or "∅", c.new, c.reason) for c in report.plan.changes],
            ),
            "",
        ]
    if report.plan.conflicts:
        parts += [
            "### conflicts",
            "",
            table(
                ["run", "stage", "key", "current", "message"],
                [(c.run_id, c.stage, c.key, c.current, c.message) for c in report.plan.conflicts],
            ),
            "",
        ]
    if report.failures:
        parts += ["### failed writes", "", table(["run", "error"], [(f.run_id, f.error) for f in report.failures])]
    return _document("\n".join(parts))


def format_undo(report: UndoReport, *, preview: bool = False) -> str:
    if preview:
        return ""
    s = report.summary
    parts = [
        f"## hpohash undo ({'dry run' if report.dry_run else 'applied'})",
        "",
        f"runs {s.runs_planned} · tags {s.tags_planned} · written {s.runs_written} · "
        f"failed {s.runs_failed} · skipped {s.skipped}",
        "",
    ]
    changes = report.changes
    if changes:
        parts.append(
            table(
                ["run", "key", "now", "restored to"],
                [(c.run_id, c.key, c.old, c.new if c.new is not None else "(deleted)") for c in changes],
            )
        )
    if report.plan.cut:
        parts += ["", "### cut journal lines", "", "\n".join(f"- {c['message']}" for c in report.plan.cut)]
    return _document("\n".join(parts))


def format_diff(report: DiffReport) -> str:
    verdict = ", ".join(words for _, words in diff_verdict(report))
    rows = diff_rows(report, _short)
    parts = [f"## hpohash diff — {verdict}", "", table(["", report.a.label, report.b.label], rows), ""]
    if report.differences:
        parts.append(
            table(["field", "a", "b"], [(f"`{d.path}`", compact(d.a), compact(d.b)) for d in report.differences])
        )
    parts += [f"- {n}" for n in report.notes]
    return _document("\n".join(parts))


def format_rules(rules: Iterable[Rule], *, detail: bool = False) -> str:
    """The code table (as in the README), or one code's whole entry."""
    from hpohash.rules import markdown_table

    if not detail:
        return _document(markdown_table({r.code: r for r in rules}))
    parts = []
    for r in rules:
        parts += [
            f"### {r.code} ({r.severity})",
            "",
            r.title,
            "",
            r.explanation,
            "",
            f"Fixed by backfill: {r.fix}" if r.fix else "Not fixable by backfill.",
            "",
            f"Example: {r.example}",
        ]
    return _document("\n".join(parts))
