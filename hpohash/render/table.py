"""Rich renderer: panels and tables for people at a terminal."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hpohash.render import BackfillContext, VerifyContext, silence_stdout, text
from hpohash.text import shorten

if TYPE_CHECKING:
    from hpohash.reports import VerifyReport


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich exits 1 here; hpohash drops the rest of the output and keeps its own exit code."""
        self.quiet = True
        silence_stdout()


def console(stderr: bool = False) -> Console:
    """A console sized like the terminal, else ``COLUMNS``; piped with neither, wide enough for 64-char hashes."""
    c = _Console(highlight=False, stderr=stderr)
    if not c.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        c = _Console(highlight=False, stderr=stderr, width=max(c.width, 160))
    return c


_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
_CODE = re.compile(r"\bHH1\d\d\b")


def _styled(line: str) -> Text:
    """Colour a plain line at a terminal; elsewhere Rich writes the same characters without codes."""
    styled = Text(line)
    styled.highlight_regex(_RUN_ID, "cyan")
    styled.highlight_regex(_CODE, "yellow" if "[warning]" in line else "bold red")
    styled.highlight_regex(re.compile(r"\[fixable\]"), "green")
    styled.highlight_regex(re.compile(r"^(fix|explain|apply|undo|journal):"), "bold")
    return styled


def print_lines(out: Console, lines: list[str]) -> None:
    """Our own line breaks only: Rich must not re-wrap (and so split) a run id or a hash."""
    for line in lines:
        out.print(_styled(line), soft_wrap=True)


def render_hash(report: dict[str, Any], *, show_key: bool = False) -> None:
    """``key: value`` lines; a value that does not fit goes whole on the next line (hashes stay copyable)."""
    width = text.output_width()
    pairs = [
        ("model", report["model"]),
        ("study_key_hash", report["study_key_hash"]),
        ("data_fingerprint", report["data_fingerprint"]),
        ("eval_fingerprint", report["eval_fingerprint"]),
        ("eval_config", json.dumps(report["eval_config"], sort_keys=True, ensure_ascii=False)),
    ]
    pairs += [(f"study_key_hash_v1[{s}]", h) for s, h in report["study_key_hash_v1"].items()]
    pairs += [(f"study_family_hash[{s}]", h) for s, h in report["study_family_hash"].items()]
    if report["trials"]:
        pairs.append(("trial_key_schema", report["trials"][0]["trial_key_schema"]))
    for i, trial in enumerate(report["trials"]):
        hp = json.dumps(trial["hyperparameters"], sort_keys=True, ensure_ascii=False)
        pairs += [(f"trials[{i}].hyperparameters", hp), (f"trials[{i}].trial_key_hash", trial["trial_key_hash"])]
    lines: list[str] = []
    for key, value in pairs:
        if width is None or len(key) + 2 + len(value) <= width:
            lines.append(f"{key}: {value}")
        else:
            lines.append(f"{key}:")
            lines += text.wrap(value, width, indent=2, hanging=2)
    if show_key:  # the canonical bytes, on one line whatever the width: they are what is hashed
        lines.append("study_key: " + json.dumps(report["study_key"], sort_keys=True, separators=(",", ":")))
    out = console()
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)


_short = shorten


def render_verify(verify: VerifyReport, *, quiet: bool = False, ctx: VerifyContext | None = None) -> None:
    """Findings grouped by study, then the summary and the next step last, as ruff and pytest end."""
    report = verify.as_dict()
    ctx = ctx or VerifyContext()
    out = console()
    width = None if ctx.to_file else text.output_width()
    if not quiet:
        print_lines(out, text.head_lines(report, width) + [""])
    if out.is_terminal and width is not None and width >= text.TABLE_MIN_WIDTH:
        _findings_tables(out, report, quiet=quiet)
    else:
        print_lines(out, text.verify_lines(report, width, quiet=quiet))
    tail = text.statistics_lines(report) if ctx.statistics else []
    print_lines(out, ([""] if report["findings"] or not quiet else []) + tail + text.summary_lines(report, ctx, width))


def render_verify_summary(verify: VerifyReport, ctx: VerifyContext) -> None:
    """What the terminal still gets when ``-o FILE`` took the report: the summary and the next step."""
    print_lines(console(), text.summary_lines(verify.as_dict(), ctx, text.output_width()))


def _findings_tables(out: Console, report: dict[str, Any], *, quiet: bool) -> None:
    """The wide layout: a study header, then its findings as a table with the run id never folded."""
    for st, fs in text.group_findings(report):
        if quiet and not fs:
            continue
        header = text.study_header(st, fs, None) if st else ["runs whose parent is not in scope"]
        print_lines(out, header)
        if not fs:
            continue
        v2 = text.study_v2(st, fs) if st else None
        t = Table(header_style="bold", show_edge=False, pad_edge=False)
        t.add_column("run", no_wrap=True, min_width=32)
        t.add_column("code", no_wrap=True)
        t.add_column("stage", no_wrap=True)
        t.add_column("message", overflow="fold", ratio=1)
        t.add_column("fixable", no_wrap=True)
        for f in fs:
            code = f"[red]{f['code']}[/]" if f["severity"] == "error" else f"[yellow]{f['code']}[/] (warning)"
            t.add_row(f["run_id"], code, f["stage"], escape(text.brief(f, v2)), "yes" if f["fixable"] else "no")
        out.print(t)


def render_demo(created: dict[str, Any]) -> None:
    from hpohash.render.markdown import _demo_text

    console().print(_demo_text(created), markup=False)


def render_backfill(report: Any, *, preview: bool = False, ctx: BackfillContext | None = None) -> None:
    """The plan grouped by study and run (``key: old → new (reason)``), conflicts, then the totals last.

    ``preview`` is the plan shown before the confirmation; the final call then shows only the outcome.
    """
    ctx = ctx or BackfillContext()
    out = console()
    width = text.output_width()
    r = report.as_dict()
    dry_run, journal, result = report.dry_run, report.journal, report.result
    lines: list[str] = []
    if preview or result is None:
        lines += plan_lines(report.plan.studies, r["changes"], width)
    if preview:
        print_lines(out, lines)
        return
    if r["conflicts"]:
        lines += ([""] if lines else []) + ["conflicts (left alone):"]
        for run in _runs_of(r["conflicts"]):
            lines.append(f"  {run[0]['run_id']} {run[0]['stage']}")
            for c in run:
                key = f"{c['key']}: {text.short_hash(c['current'])} " if c["key"] else ""
                lines += text.wrap(f"{key}({c['message']})", width, indent=4, hanging=6)
    if r["failures"]:
        lines += ([""] if lines else []) + ["failed writes:"]
        for f in r["failures"]:
            lines.append(f"  {f['run_id']}")
            lines += text.wrap(f["error"], width, indent=4, hanging=6)
    s = r["summary"]
    if not s["tags_planned"]:
        head = "nothing to backfill"
    elif dry_run:
        head = f"dry run: {s['tags_planned']} tags on {text.plural(s['runs_planned'], 'run')} would change"
    else:
        head = f"wrote {s['runs_written']} of {s['runs_planned']} runs ({s['tags_planned']} tags)"
    lines += ([""] if lines else []) + text.join_wrap(
        [head, text.plural(s["conflicts"], "conflict"), f"{s['runs_failed']} failed"], width
    )
    if dry_run and s["tags_planned"] and ctx.apply_command:
        lines.append(f"apply: {ctx.apply_command}")
    if journal:
        lines += [f"journal: {journal}", f"undo: {ctx.undo_command} {journal}"]
    print_lines(out, lines)


def _runs_of(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        runs.setdefault(row["run_id"], []).append(row)
    return list(runs.values())


def plan_lines(studies: Any, changes: list[dict[str, Any]], width: int | None) -> list[str]:
    """Under each study, one header per run (id, stage), then one ``key: old → new (reason)`` per tag."""
    by_run = {run[0]["run_id"]: run for run in _runs_of(changes)}
    lines: list[str] = []
    for study in studies:
        members = [m for m in study.members if m in by_run]
        if not members:
            continue
        v2 = study.v2_hash
        if lines:
            lines.append("")
        lines += text.join_wrap(
            [f"study {v2[:12] if v2 else '(no v2 hash)'}", f"parent {study.parent_run_id}", f"model {study.model}"],
            width,
        )
        for rid in members:
            lines.append(f"  {rid} {by_run[rid][0]['stage']}")
            for c in by_run[rid]:
                change = f"{c['key']}: {text.short_hash(c['old'])} → {text.short_hash(c['new'])} ({c['reason']})"
                lines += text.wrap(change, width, indent=4, hanging=6)
    return lines


def _cell(value: Any) -> str:
    """A table cell from data (run names, tag values, experiment names): ``[/x]`` in one must print,
    not be read as Rich markup."""
    return escape(str(value))


def _rows_table(out: Console, title: str, style: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    t = Table(title=escape(title), title_justify="left", header_style=style)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*(_cell(c) for c in row))
    out.print(t)


def render_undo(report: Any, *, preview: bool = False, ctx: Any = None) -> None:
    """Tags to restore grouped by run (``key: now → restored``), what was left alone, then the totals last."""
    out = console()
    width = text.output_width()
    r = report.as_dict()
    dry_run, journal, result = report.dry_run, report.journal, report.result
    lines: list[str] = []
    if preview or result is None:
        for run in _runs_of(r["changes"]):
            lines.append(f"  {run[0]['run_id']}")
            for c in run:
                new = "(deleted)" if c["new"] is None else text.short_hash(c["new"])
                lines += text.wrap(f"{c['key']}: {text.short_hash(c['old'])} → {new}", width, indent=4, hanging=6)
        if lines:
            lines.insert(0, "tags to restore:")
    if preview:
        print_lines(out, lines)
        return
    if r["skipped"]:
        lines += ([""] if lines else []) + ["changed since the journal (left alone):"]
        for run in _runs_of(r["skipped"]):
            lines.append(f"  {run[0]['run_id']}")
            for e in run:
                wrote, now = text.short_hash(e["journal_new"]), text.short_hash(e["current"])
                change = f"{e['key']}: journal wrote {wrote}, now {now}"
                lines += text.wrap(change, width, indent=4, hanging=6)
    if r["failures"]:
        lines += ([""] if lines else []) + ["failed writes:"]
        for f in r["failures"]:
            lines.append(f"  {f['run_id']}")
            lines += text.wrap(f["error"], width, indent=4, hanging=6)
    if r["cut_lines"]:
        lines += ([""] if lines else []) + ["cut journal lines (check these tags):"]
        for c in r["cut_lines"]:
            lines.append(f"  {c['journal']}:{c['line']}")
            lines += text.wrap(c["message"], width, indent=4, hanging=6)
    s = r["summary"]
    if not s["tags_planned"]:
        head = "nothing to undo: every journaled tag already holds its old value (or changed since)"
    elif dry_run:
        head = f"dry run: {s['tags_planned']} tags on {text.plural(s['runs_planned'], 'run')} would be restored"
    else:
        head = f"restored {s['runs_written']} of {s['runs_planned']} runs ({s['tags_planned']} tags)"
    totals = [head, f"skipped {s['skipped']}", f"missing runs {s['missing_runs']}", f"failed {s['runs_failed']}"]
    if s["cut_lines"]:
        totals.append(f"cut journal lines {s['cut_lines']}")
    lines += ([""] if lines else []) + text.join_wrap(totals, width)
    if journal:
        lines.append(f"journal: {journal}")
    print_lines(out, lines)


def _compact(value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return shown if len(shown) <= 70 else shown[:67] + "…"


def render_diff(report: dict[str, Any]) -> None:
    """Both sides' hashes in a header, then the differing fields side by side."""
    out = console()
    a, b = report["a"], report["b"]
    same_study = report["same_study"]
    verdict = "[green]same study[/]" if same_study else "[red]different studies[/]"
    if report["same_trial"] is not None:
        verdict += ", [green]same trial[/]" if report["same_trial"] else ", [red]different trials[/]"
    out.print(f"hpohash diff — {verdict}", soft_wrap=True)
    print_lines(out, [f"a: {a['label']}", f"b: {b['label']}"])  # run ids whole, not folded in a header
    head = Table(header_style="bold")
    head.add_column("")
    head.add_column("a", overflow="fold")
    head.add_column("b", overflow="fold")
    rows = [
        ("model", a["model"] or "—", b["model"] or "—"),
        ("study hash (claimed)", _short(a["study_key_hash"]), _short(b["study_key_hash"])),
        ("study hash (stored)", _short(a["stored_study_key_hash"]), _short(b["stored_study_key_hash"])),
        ("study hash (recomputed v2)", _short(a["recomputed_study_key_hash"]), _short(b["recomputed_study_key_hash"])),
        ("trial hash (claimed)", _short(a["trial_key_hash"]), _short(b["trial_key_hash"])),
        ("trial hash (recomputed)", _short(a["recomputed_trial_key_hash"]), _short(b["recomputed_trial_key_hash"])),
        ("cause", a["cause"] or "—", b["cause"] or "—"),
    ]
    for row in rows:  # tag values and model names are data: escaped, never read as Rich markup
        head.add_row(*(_cell(c) for c in row))
    out.print(head)
    if report["differences"]:
        _rows_table(
            out,
            "differing fields",
            "bold",
            ("field", "a", "b"),
            [(d["path"], _compact(d["a"]), _compact(d["b"])) for d in report["differences"]],
        )
    elif report["a"]["recomputed_study_key_hash"] and report["b"]["recomputed_study_key_hash"]:
        out.print(
            "The configs agree field for field"
            + ("." if same_study else ": the claims differ because of how a stored hash was made (see cause).")
        )
    for note in report["notes"]:
        out.print(f"[yellow]note:[/] {escape(note)}")


def render_rules(rules: Any, *, detail: bool = False) -> None:
    """One line per code (``HH120 error  refit study_key_hash …``), or one code's whole entry."""
    width = text.output_width()
    lines: list[str] = []
    for r in rules:
        if detail:
            lines += [f"{r.code} ({r.severity}): {r.title}", ""]
            lines += text.wrap(r.explanation, width) + [""]
            lines += text.wrap(f"fix: {r.fix}" if r.fix else "fix: none (backfill cannot fix it)", width, hanging=2)
            lines += text.wrap(f"example: {r.example}", width, hanging=2)
        else:
            mark = "" if r.fix else "  (not fixable)"
            lines += text.wrap(f"{r.code} {r.severity:<7} {r.short}{mark}", width, hanging=14)
    print_lines(console(), lines)
