"""Markdown renderer: plain GitHub-flavoured tables for CI job summaries."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from hpohash.render import VerifyContext, write_stdout
from hpohash.render.text import summary_lines
from hpohash.rules import RULES
from hpohash.sources import describe_source
from hpohash.text import shorten

if TYPE_CHECKING:
    from hpohash.reports import VerifyReport


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(text: str) -> None:
    write_stdout(text.rstrip("\n") + "\n")


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
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
    emit("\n".join(parts))


def render_verify(verify: VerifyReport, *, quiet: bool = False, ctx: VerifyContext | None = None) -> None:
    report = verify.as_dict()
    emit(verify_markdown(report, ctx or VerifyContext()))


def verify_markdown(report: dict[str, Any], ctx: VerifyContext) -> str:
    """The report as GitHub-flavoured Markdown (a job summary), ending with the summary and next step."""
    s = report["summary"]
    status = "✅ no errors" if s["ok"] else f"❌ {s['errors']} error(s)"
    parts = [
        f"## hpohash verify — {status}",
        "",
        f"Experiments: {', '.join(report['experiments'])} · studies {s['studies']} · trials {s['trials']} · "
        f"refits {s['refits']} · errors {s['errors']} · warnings {s['warnings']}"
        + (f" · studies skipped (no run since --since) {s['studies_skipped']}" if "studies_skipped" in s else ""),
        "",
    ]
    if report["studies"]:
        parts.append(
            table(
                ["parent", "model", "trials", "refits", "stored study hash", "recomputed", "configs"]
                + ["errors", "warnings"],
                [
                    (
                        st["parent_run_id"],
                        st["model"],
                        st["trials"],
                        st["refits"],
                        _short(st["study_key_hash"]),
                        _short(st["recomputed_study_key_hash"]),
                        describe_source(st.get("config_source")),
                        st["errors"],
                        st["warnings"],
                    )
                    for st in report["studies"]
                ],
            )
        )
        parts.append("")
    if report["findings"]:
        parts.append(
            table(
                ["code", "severity", "run", "stage", "message", "fixable"],
                [
                    (f["code"], f["severity"], f["run_id"], f["stage"], f["message"], "yes" if f["fixable"] else "no")
                    for f in report["findings"]
                ],
            )
        )
        parts.append("")
    if ctx.statistics and report["findings"]:
        counts = Counter(f["code"] for f in report["findings"])
        fixable = Counter(f["code"] for f in report["findings"] if f["fixable"])
        rows = [(code, counts[code], fixable[code], RULES[code].short) for code in sorted(counts)]
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


def render_demo(created: dict[str, Any]) -> None:
    emit(_demo_text(created))


def _demo_text(created: dict[str, Any]) -> str:
    studies = created["studies"]
    trials = sum(len(s["trials"]) for s in studies)
    return (
        f"Wrote experiment '{created['experiment']}' ({len(studies)} studies, {trials} trials, "
        f"{len(studies)} refits) into {created['tracking_uri']}.\n"
        f"Next: hpohash verify -e {created['experiment']}"
    )


def render_backfill(report: Any, *, preview: bool = False, ctx: Any = None) -> None:
    if preview:
        return
    r = report.as_dict()
    dry_run, journal = report.dry_run, report.journal
    s = r["summary"]
    mode = "dry run" if dry_run else "applied"
    parts = [
        f"## hpohash backfill ({mode})",
        "",
        f"runs planned {s['runs_planned']} · tags planned {s['tags_planned']} · written {s['runs_written']} · "
        f"failed {s['runs_failed']} · conflicts {s['conflicts']}" + (f" · journal `{journal}`" if journal else ""),
        "",
    ]
    if r["changes"]:
        parts += [
            table(
                ["run", "stage", "key", "old", "new", "reason"],
                [(c["run_id"], c["stage"], c["key"], c["old"] or "∅", c["new"], c["reason"]) for c in r["changes"]],
            ),
            "",
        ]
    if r["conflicts"]:
        parts += [
            "### conflicts",
            "",
            table(
                ["run", "stage", "key", "current", "message"],
                [(c["run_id"], c["stage"], c["key"], c["current"], c["message"]) for c in r["conflicts"]],
            ),
            "",
        ]
    if r["failures"]:
        parts += ["### failed writes", "", table(["run", "error"], [(f["run_id"], f["error"]) for f in r["failures"]])]
    emit("\n".join(parts))


def render_undo(report: Any, *, preview: bool = False) -> None:
    if preview:
        return
    r = report.as_dict()
    dry_run = report.dry_run
    s = r["summary"]
    parts = [
        f"## hpohash undo ({'dry run' if dry_run else 'applied'})",
        "",
        f"runs {s['runs_planned']} · tags {s['tags_planned']} · written {s['runs_written']} · "
        f"failed {s['runs_failed']} · skipped {s['skipped']}",
        "",
    ]
    if r["changes"]:
        parts.append(
            table(
                ["run", "key", "now", "restored to"],
                [
                    (c["run_id"], c["key"], c["old"], c["new"] if c["new"] is not None else "(deleted)")
                    for c in r["changes"]
                ],
            )
        )
    if r["cut_lines"]:
        parts += ["", "### cut journal lines", "", "\n".join(f"- {c['message']}" for c in r["cut_lines"])]
    emit("\n".join(parts))


def render_diff(report: dict[str, Any]) -> None:
    a, b = report["a"], report["b"]
    verdict = "same study" if report["same_study"] else "different studies"
    if report["same_trial"] is not None:
        verdict += ", same trial" if report["same_trial"] else ", different trials"
    rows = [
        ("study hash (claimed)", _short(a["study_key_hash"]), _short(b["study_key_hash"])),
        ("study hash (recomputed v2)", _short(a["recomputed_study_key_hash"]), _short(b["recomputed_study_key_hash"])),
        ("trial hash (claimed)", _short(a["trial_key_hash"]), _short(b["trial_key_hash"])),
        ("cause", a["cause"] or "—", b["cause"] or "—"),
    ]
    parts = [f"## hpohash diff — {verdict}", "", table(["", a["label"], b["label"]], rows), ""]
    if report["differences"]:
        parts.append(
            table(
                ["field", "a", "b"],
                [(f"`{d['path']}`", _compact(d["a"]), _compact(d["b"])) for d in report["differences"]],
            )
        )
    parts += [f"- {n}" for n in report["notes"]]
    emit("\n".join(parts))


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if not isinstance(value, str) else value


def render_rules(rules: Any, *, detail: bool = False) -> None:
    """The code table (as in the README), or one code's whole entry."""
    from hpohash.rules import markdown_table

    if not detail:
        emit(markdown_table({r.code: r for r in rules}))
        return
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
    emit("\n".join(parts))
