"""GitHub Actions renderer: one workflow-command annotation per finding, then the summary as plain lines.

``::error``/``::warning`` lines become annotations on the workflow run; ``step_summary`` is the Markdown
report the CLI appends to the job summary when the runner provides ``GITHUB_STEP_SUMMARY``. Only
verify speaks this format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpohash.render import VerifyContext
from hpohash.render.text import summary_lines

if TYPE_CHECKING:
    from hpohash.audit import Finding
    from hpohash.reports import VerifyReport


def escape_data(text: str) -> str:
    """The message part of a workflow command (GitHub's own escaping of ``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A ``key=value`` property of a workflow command: ``:`` and ``,`` escaped too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(f: Finding, *, strict: bool = False) -> str:
    """``::error title=HH110::trial <run id>: <message> (cause v1; fixable by hpohash backfill)``."""
    level = "error" if f.severity == "error" or strict else "warning"
    notes = []
    if f.cause and f"cause {f.cause}" not in f.message:
        notes.append(f"cause {f.cause}")
    notes.append("fixable by hpohash backfill" if f.fixable else "not fixable by backfill")
    message = f"{f.stage} {f.run_id}: {f.message} ({'; '.join(notes)})"
    return f"::{level} title={escape_property(f.code)}::{escape_data(message)}"


def format_verify(report: VerifyReport, ctx: VerifyContext, *, quiet: bool = False) -> str:
    lines = [annotation(f, strict=ctx.strict) for f in report.findings]
    lines += summary_lines(report, ctx)
    return "\n".join(lines) + "\n"


def step_summary(report: VerifyReport, ctx: VerifyContext) -> str:
    """What the caller appends to the runner's ``GITHUB_STEP_SUMMARY`` file: the Markdown report."""
    from hpohash.render.markdown import verify_markdown

    return verify_markdown(report, ctx).rstrip("\n") + "\n\n"
