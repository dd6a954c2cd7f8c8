"""Rich renderer: panels and tables for people at a terminal.

Each ``format_*`` draws on a Rich console that records into a string, sized and coloured like the
real stdout (or, for ``-o FILE``, like a file), and returns the text.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hpohash.render import BackfillContext, VerifyContext, by_run, silence_stdout, text
from hpohash.text import shorten

if TYPE_CHECKING:
    from hpohash.reports import BackfillReport, DiffReport, UndoReport, VerifyReport
    from hpohash.rules import Rule


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """Rich exits 1 here; hpohash drops the rest of the output and keeps its own exit code."""
        self.quiet = True
        silence_stdout()


def console(stderr: bool = False, file: io.StringIO | None = None) -> Console:
    """A console sized like the terminal, else ``COLUMNS``; piped with neither, wide enough for 64-char hashes."""
    c = _Console(highlight=False, stderr=stderr, file=file)
    if not c.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        c = _Console(highlight=False, stderr=stderr, file=file, width=max(c.width, 160))
    return c


def _drawn(draw: Callable[[Console], None], *, to_file: bool = False) -> str:
    """What ``draw`` prints, as text: on a console like stdout's (its width, terminal and colours), or
    like a file's for ``-o FILE``."""
    buf = io.StringIO()
    if to_file:
        out = console(file=buf)
    else:
        real = console()
        out = _Console(
            file=buf,
            highlight=False,
            width=real.width,
            force_terminal=real.is_terminal,
            color_system=real.color_system,  # type: ignore[arg-type]  # one of Rich's own names, or None
            no_color=real.no_color,
        )
    draw(out)
    return buf.getvalue()


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


def _lines(lines: list[str], *, to_file: bool = False) -> str:
    return _drawn(lambda out: print_lines(out, lines), to_file=to_file)


def format_hash(report: dict[str, Any], *, show_key: bool = False) -> str:
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

    def draw(out: Console) -> None:
        for line in lines:
            out.print(line, markup=False, highlight=False, soft_wrap=True)

    return _drawn(draw)


def format_verify(report: VerifyReport, ctx: VerifyContext, *, quiet: bool = False) -> str:
    """Findings grouped by study, then the summary and the next step last, as ruff and pytest end."""
    width = None if ctx.to_file else text.output_width()

    def draw(out: Console) -> None:
        if not quiet:
            print_lines(out, text.head_lines(report, width) + [""])
        if out.is_terminal and width is not None and width >= text.TABLE_MIN_WIDTH:
            _findings_tables(out, report, quiet=quiet)
        else:
            print_lines(out, text.verify_lines(report, width, quiet=quiet))
        tail = text.statistics_lines(report) if ctx.statistics else []
        print_lines(out, ([""] if report.findings or not quiet else []) + tail + text.summary_lines(report, ctx, width))

    return _drawn(draw, to_file=ctx.to_file)


def format_verify_summary(report: VerifyReport, ctx: VerifyContext) -> str:
    """What the terminal still gets when ``-o FILE`` took the report: the summary and the next step."""
    return _lines(text.summary_lines(report, ctx, text.output_width()))


def _findings_tables(out: Console, report: VerifyReport, *, quiet: bool) -> None:
    """The wide layout: a study header, then its findings as a table with the run id never folded."""
    for st, fs in text.group_findings(report):
        if quiet and not fs:
            continue
        header = text.study_header(st, None) if st else ["runs whose parent is not in scope"]
        print_lines(out, header)
        if not fs:
            continue
        v2 = st.v2_hash if st else None
        t = Table(header_style="bold", show_edge=False, pad_edge=False)
        t.add_column("run", no_wrap=True, min_width=32)
        t.add_column("code", no_wrap=True)
        t.add_column("stage", no_wrap=True)
        t.add_column("message", overflow="fold", ratio=1)
        t.add_column("fixable", no_wrap=True)
        for f in fs:
            code = f"[red]{f.code}[/]" if f.severity == "error" else f"[yellow]{f.code}[/] (warning)"
            t.add_row(f.run_id, code, f.stage, escape(text.short_message(f, v2)), "yes" if f.fixable else "no")
        out.print(t)


def format_demo(created: dict[str, Any]) -> str:
    from hpohash.render.markdown import demo_text

    return _drawn(lambda out: out.print(demo_text(created), markup=False))


def _failure_lines(failures: Iterable[Any], width: int | None) -> list[str]:
    lines = ["failed writes:"]
    for f in failures:
        lines.append(f"  {f.run_id}")
        lines += text.wrap(f.error, width, indent=4, hanging=6)
    return lines


def format_backfill(report: BackfillReport, ctx: BackfillContext, *, preview: bool = False) -> str:
    """The plan grouped by study and run (``key: old → new (reason)``), conflicts, then the totals last.

    ``preview`` is the plan shown before the confirmation; the final call then shows only the outcome.
    """
    width = text.output_width()
    plan = report.plan
    lines: list[str] = []
    if preview or report.result is None:
        lines += plan_lines(report, width)
    if preview:
        return _lines(lines)
    if plan.conflicts:
        lines += ([""] if lines else []) + ["conflicts (left alone):"]
        for run in by_run(plan.conflicts).values():
            lines.append(f"  {run[0].run_id} {run[0].stage}")
            for c in run:
                key = f"{c.key}: {text.short_hash(c.current)} " if c.key else ""
                lines += text.wrap(f"{key}({c.message})", width, indent=4, hanging=6)
    if report.failures:
        lines += ([""] if lines else []) + _failure_lines(report.failures, width)
    s = report.summary
    if not s.tags_planned:
        head = "nothing to backfill"
    elif report.dry_run:
        head = f"dry run: {s.tags_planned} tags on {text.plural(s.runs_planned, 'run')} would change"
    else:
        head = f"wrote {s.runs_written} of {s.runs_planned} runs ({s.tags_planned} tags)"
    lines += ([""] if lines else []) + text.join_wrap(
        [head, text.plural(s.conflicts, "conflict"), f"{s.runs_failed} failed"], width
    )
    if report.dry_run and s.tags_planned and ctx.apply_command:
        lines.append(f"apply: {ctx.apply_command}")
    if report.journal:
        lines += [f"journal: {report.journal}", f"undo: {ctx.undo_command} {report.journal}"]
    return _lines(lines)


def plan_lines(report: BackfillReport, width: int | None) -> list[str]:
    """Under each study, one header per run (id, stage), then one ``key: old → new (reason)`` per tag."""
    changes = by_run(report.plan.changes)
    lines: list[str] = []
    for study in report.plan.studies:
        members = [m for m in study.members if m in changes]
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
            lines.append(f"  {rid} {changes[rid][0].stage}")
            for c in changes[rid]:
                change = f"{c.key}: {text.short_hash(c.old)} → {text.short_hash(c.new)} ({c.reason})"
                lines += text.wrap(change, width, indent=4, hanging=6)
    return lines


def _rich_cell(value: Any) -> str:
    """A table cell from data (run names, tag values, experiment names): ``[/x]`` in one must print,
    not be read as Rich markup."""
    return escape(str(value))


def format_undo(report: UndoReport, *, preview: bool = False) -> str:
    """Tags to restore grouped by run (``key: now → restored``), what was left alone, then the totals last."""
    width = text.output_width()
    lines: list[str] = []
    if preview or report.result is None:
        for rid, writes in by_run(report.changes).items():
            lines.append(f"  {rid}")
            for c in writes:
                new = "(deleted)" if c.new is None else text.short_hash(c.new)
                lines += text.wrap(f"{c.key}: {text.short_hash(c.old)} → {new}", width, indent=4, hanging=6)
        if lines:
            lines.insert(0, "tags to restore:")
    if preview:
        return _lines(lines)
    plan = report.plan
    if plan.skipped:
        lines += ([""] if lines else []) + ["changed since the journal (left alone):"]
        for rid, left in by_run(plan.skipped, lambda skipped: skipped[0].run_id).items():
            lines.append(f"  {rid}")
            for entry, current in left:
                wrote, now = text.short_hash(entry.new), text.short_hash(current)
                lines += text.wrap(f"{entry.key}: journal wrote {wrote}, now {now}", width, indent=4, hanging=6)
    if report.failures:
        lines += ([""] if lines else []) + _failure_lines(report.failures, width)
    if plan.cut:
        lines += ([""] if lines else []) + ["cut journal lines (check these tags):"]
        for cut in plan.cut:
            lines.append(f"  {cut['journal']}:{cut['line']}")
            lines += text.wrap(cut["message"], width, indent=4, hanging=6)
    s = report.summary
    if not s.tags_planned:
        head = "nothing to undo: every journaled tag already holds its old value (or changed since)"
    elif report.dry_run:
        head = f"dry run: {s.tags_planned} tags on {text.plural(s.runs_planned, 'run')} would be restored"
    else:
        head = f"restored {s.runs_written} of {s.runs_planned} runs ({s.tags_planned} tags)"
    totals = [head, f"skipped {s.skipped}", f"missing runs {s.missing_runs}", f"failed {s.runs_failed}"]
    if s.cut_lines:
        totals.append(f"cut journal lines {s.cut_lines}")
    lines += ([""] if lines else []) + text.join_wrap(totals, width)
    if report.journal:
        lines.append(f"journal: {report.journal}")
    return _lines(lines)


def format_diff(report: DiffReport) -> str:
    """Both sides' hashes in a header, then the differing fields side by side."""

    def draw(out: Console) -> None:
        verdict = ", ".join(f"[{'green' if ok else 'red'}]{words}[/]" for ok, words in text.diff_verdict(report))
        out.print(f"hpohash diff — {verdict}", soft_wrap=True)
        print_lines(out, [f"a: {report.a.label}", f"b: {report.b.label}"])  # run ids whole, not folded
        head = Table(header_style="bold")
        head.add_column("")
        head.add_column("a", overflow="fold")
        head.add_column("b", overflow="fold")
        for row in text.diff_rows(report, shorten):  # tag values and model names are data: never markup
            head.add_row(*(_rich_cell(c) for c in row))
        out.print(head)
        if report.differences:
            t = Table(title="differing fields", title_justify="left", header_style="bold")
            for col in ("field", "a", "b"):
                t.add_column(col, overflow="fold")
            for d in report.differences:
                t.add_row(_rich_cell(d.path), _rich_cell(text.compact(d.a, 70)), _rich_cell(text.compact(d.b, 70)))
            out.print(t)
        elif report.a.recomputed_study_key_hash and report.b.recomputed_study_key_hash:
            out.print(
                "The configs agree field for field"
                + (
                    "."
                    if report.same_study
                    else ": the claims differ because of how a stored hash was made (see cause)."
                )
            )
        for note in report.notes:
            out.print(f"[yellow]note:[/] {escape(note)}")

    return _drawn(draw)


def format_rules(rules: Iterable[Rule], *, detail: bool = False) -> str:
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
    return _lines(lines)
