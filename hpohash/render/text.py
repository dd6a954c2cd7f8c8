"""Plain-text lines every human-facing renderer shares: width, wrapping, findings, summary, next step.

Everything here returns plain strings, so the exact lines are testable; the table renderer only
colours them at a terminal. Run ids and hashes are never broken: a line that cannot fit keeps them
whole and wraps at spaces around them.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from hpohash.render import VerifyContext, by_run
from hpohash.rules import RULES
from hpohash.text import short_hash

if TYPE_CHECKING:
    from hpohash.audit import Finding
    from hpohash.reports import DiffReport, StudySummary, VerifyReport
    from hpohash.sources import Origin

#: narrower than this, wrapping helps nobody: lines wrap as if this wide
MIN_WIDTH = 40
#: the terminal width from which verify draws its findings as a table (message column ≥ 60)
TABLE_MIN_WIDTH = 140


def output_width(stream: IO[str] | None = None) -> int | None:
    """The terminal's width, else ``COLUMNS``, else ``None``: no wrapping at all (pipes, files)."""
    stream = stream or sys.stdout
    try:
        if stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0:  # a pty may report 0
            return max(os.get_terminal_size(stream.fileno()).columns, MIN_WIDTH)
    except (AttributeError, OSError, ValueError):
        pass
    columns = os.environ.get("COLUMNS", "").strip()
    return max(int(columns), MIN_WIDTH) if columns.isdigit() and int(columns) > 0 else None


def wrap(text: str, width: int | None, indent: int = 0, hanging: int | None = None) -> list[str]:
    """Wrap at spaces only: a run id or a hash is never split, even when it overflows."""
    first = " " * indent
    if width is None or len(first) + len(text) <= width:
        return [first + text]
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=" " * (indent + 2 if hanging is None else hanging),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first]


def join_wrap(parts: Sequence[str], width: int | None, sep: str = " · ", indent: int = 0) -> list[str]:
    """Parts joined by ``sep``; a new line (indented by 2 more) only between parts."""
    lines: list[str] = []
    current = " " * indent
    for part in parts:
        if current.strip() and width is not None and len(current) + len(sep) + len(part) > width:
            lines.append(current)
            current = " " * (indent + 2) + part
        else:
            current = current + sep + part if current.strip() else current + part
    lines.append(current)
    return lines


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


# ------------------------------------------------------------------------------------------ verify


def short_message(f: Finding, v2: str | None = None) -> str:
    """A finding's message without what the line already says (its stage), shortest for the common codes."""
    code, actual, cause = f.code, f.actual, f.cause
    why = f" (cause {cause})" if cause else ""
    if code in ("HH110", "HH120") and actual:
        basis = "parent v2" if v2 and f.expected == v2 else "parent's hash"
        return f"study_key_hash {short_hash(actual)} ≠ {basis}{why}"
    if code == "HH112" and actual and ";" not in f.message:
        return f"trial_key_hash {short_hash(actual)} ≠ its v2 trial key{why}"
    stage = f.stage + " "
    return f.message[len(stage) :] if f.message.startswith(stage) else f.message


def _tags(f: Finding) -> str:
    return (" [warning]" if f.severity == "warning" else "") + (" [fixable]" if f.fixable else "")


def study_header(study: StudySummary, width: int | None) -> list[str]:
    v2 = study.v2_hash
    counts = f"{plural(study.trials, 'trial')}, {plural(study.refits, 'refit')}"
    status = []
    if study.errors:
        status.append(plural(study.errors, "error"))
    if study.warnings:
        status.append(plural(study.warnings, "warning"))
    parts = [
        f"study {v2[:12] if v2 else '(no hash)'}",
        f"parent {study.parent_run_id}",
        f"model {study.model or '?'}",
        counts + (": " + ", ".join(status) if status else ": ok"),
    ]
    return join_wrap(parts, width) + config_source_lines(study.config_source, width)


def config_source_lines(origin: Origin | None, width: int | None) -> list[str]:
    """Where a study's configs came from, when found on disk (a commit says which configs made it)."""
    if origin is None or origin.revision == "artifacts":
        return []
    return join_wrap([f"configs @ {origin.revision_label()}:", *origin.files.values()], width, sep=" ", indent=2)


def group_findings(report: VerifyReport) -> list[tuple[StudySummary | None, list[Finding]]]:
    """Findings under their study (in the report's order); runs whose parent is not in scope last."""
    by_parent = by_run(report.findings, lambda f: f.parent_run_id or "")
    groups: list[tuple[StudySummary | None, list[Finding]]] = []
    for st in report.studies:
        groups.append((st, by_parent.pop(st.parent_run_id, [])))
    rest = [f for fs in by_parent.values() for f in fs]
    if rest:
        groups.append((None, rest))
    return groups


def finding_line(f: Finding, v2: str | None = None) -> str:
    """``<run id> HH110 trial  <message> [fixable]``: one line, whatever its length (for pipes and grep)."""
    return f"{f.run_id} {f.code} {f.stage:<6} {short_message(f, v2)}{_tags(f)}"


def verify_lines(report: VerifyReport, width: int | None, *, quiet: bool = False) -> list[str]:
    """The findings grouped by study: one line each when they fit, else grouped by run and wrapped."""
    groups = group_findings(report)
    one_line = width is None or all(
        len(finding_line(f, st.v2_hash if st else None)) <= width for st, fs in groups for f in fs
    )
    lines: list[str] = []
    for st, fs in groups:
        if quiet and not fs:
            continue
        if lines:
            lines.append("")
        v2 = st.v2_hash if st else None
        lines += study_header(st, width) if st else ["runs whose parent is not in scope"]
        if one_line:
            lines += [finding_line(f, v2) for f in fs]
            continue
        for run in by_run(fs).values():
            lines.append(f"  {run[0].run_id} {run[0].stage}")
            for f in run:
                lines += wrap(f"{f.code} {short_message(f, v2)}{_tags(f)}", width, indent=4, hanging=10)
    return lines


def head_lines(report: VerifyReport, width: int | None) -> list[str]:
    s = report.summary
    parts = [
        "hpohash verify",
        f"{plural(s.studies, 'study', 'studies')} ({plural(s.parents, 'parent')}, "
        f"{plural(s.trials, 'trial')}, {plural(s.refits, 'refit')})"
        + (f", {s.studies_skipped} skipped (no run since --since)" if s.studies_skipped is not None else ""),
        "experiments " + (", ".join(report.experiments) or "—"),
        report.tracking_uri,
    ]
    return join_wrap(parts, width)


def code_counts(findings: Sequence[Finding]) -> list[tuple[str, int, int]]:
    """(code, findings, fixable) per code, in code order: ``--statistics`` in every format."""
    counts = Counter(f.code for f in findings)
    fixable = Counter(f.code for f in findings if f.fixable)
    return [(code, counts[code], fixable[code]) for code in sorted(counts)]


def statistics_lines(report: VerifyReport) -> list[str]:
    """Per code, like ``ruff --statistics``: count, code, how many backfill fixes, what it is."""
    rows = code_counts(report.findings)
    width = max((len(str(n)) for _, n, _ in rows), default=1)
    return [
        f"{n:>{width}} {code} {fixable:>{width}} fixable  {RULES[code].short}".rstrip() for code, n, fixable in rows
    ]


def summary_lines(report: VerifyReport, ctx: VerifyContext, width: int | None = None) -> list[str]:
    """The closing summary, then what to do: the backfill command, or why backfill cannot help."""
    findings = report.findings
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    s = report.summary
    if not findings:
        checked = s.parents + s.trials + s.refits
        return [f"no findings: {plural(checked, 'run')} of {plural(s.studies, 'study', 'studies')} checked"]
    runs = len({f.run_id for f in findings})
    studies = len({f.parent_run_id for f in findings if f.parent_run_id})
    where = f" in {plural(runs, 'run')}" + (f" of {plural(studies, 'study', 'studies')}" if studies else "")
    head = f"{plural(len(errors), 'error')} ({sum(f.fixable for f in errors)} fixable)" if errors else "no errors"
    if warnings:
        head += f", {plural(len(warnings), 'warning')}" + (" (--strict: they fail)" if ctx.strict else "")
    lines = wrap(head + where, width)
    failing = errors + (warnings if ctx.strict else [])
    unfixable = Counter(f.code for f in failing if not f.fixable)
    for code, n in sorted(unfixable.items()):
        lines += wrap(f"{code} ×{n} not fixable by backfill: {RULES[code].hint or 'see the finding'}", width)
    explain = next((f for f in failing if not f.fixable and RULES[f.code].shows_hash and f.stage != "parent"), None)
    if explain is not None:
        lines.append(f"explain: {ctx.diff_command} {explain.run_id}")
    if any(f.fixable for f in findings):
        lines.append(f"fix: {ctx.backfill_command}")
    return lines


def compact(value: Any, limit: int | None = None) -> str:
    """A diff value on one line: strings as they are, anything else as sorted JSON; cut at ``limit``."""
    import json

    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return shown if limit is None or len(shown) <= limit else shown[: limit - 3] + "…"


# ------------------------------------------------------------------------------------------ diff

#: the rows every format shows for the two sides of a diff: (label, side field, a hash?)
DIFF_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("model", "model", False),
    ("study hash (claimed)", "study_key_hash", True),
    ("study hash (stored)", "stored_study_key_hash", True),
    ("study hash (recomputed v2)", "recomputed_study_key_hash", True),
    ("trial hash (claimed)", "trial_key_hash", True),
    ("trial hash (recomputed)", "recomputed_trial_key_hash", True),
    ("cause", "cause", False),
)


def diff_rows(report: DiffReport, show_hash: Callable[[str | None], str]) -> list[tuple[str, str, str]]:
    """(label, a, b) for each of ``DIFF_ROWS``: hashes through the format's ``show_hash``, other
    values as they are, ``—`` where a side has none."""
    rows = []
    for label, name, is_hash in DIFF_ROWS:
        a, b = getattr(report.a, name), getattr(report.b, name)
        rows.append((label, show_hash(a), show_hash(b)) if is_hash else (label, a or "—", b or "—"))
    return rows


def diff_verdict(report: DiffReport) -> tuple[tuple[bool, str], ...]:
    """(agrees, words) for the study, and the trial when both sides claim one."""
    out = [(report.same_study, "same study" if report.same_study else "different studies")]
    if report.same_trial is not None:
        out.append((report.same_trial, "same trial" if report.same_trial else "different trials"))
    return tuple(out)
