"""GitHub Actions renderer: one workflow-command annotation per finding, then the summary as plain lines.

``::error``/``::warning`` lines become annotations on the workflow run; when the runner provides
``GITHUB_STEP_SUMMARY``, the Markdown report is appended to the job summary as well. Only verify
speaks this format.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hpohash.render import VerifyContext, write_stdout
from hpohash.render.text import summary_lines

if TYPE_CHECKING:
    from hpohash.reports import VerifyReport


def escape_data(text: str) -> str:
    """The message part of a workflow command (GitHub's own escaping of ``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A ``key=value`` property of a workflow command: ``:`` and ``,`` escaped too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(f: dict[str, Any], *, strict: bool = False) -> str:
    """``::error title=HH110::trial <run id>: <message> (cause v1; fixable by hpohash backfill)``."""
    level = "error" if f["severity"] == "error" or strict else "warning"
    notes = []
    if f["cause"] and f"cause {f['cause']}" not in f["message"]:
        notes.append(f"cause {f['cause']}")
    notes.append("fixable by hpohash backfill" if f["fixable"] else "not fixable by backfill")
    message = f"{f['stage']} {f['run_id']}: {f['message']} ({'; '.join(notes)})"
    return f"::{level} title={escape_property(f['code'])}::{escape_data(message)}"


def render_verify(verify: VerifyReport, *, quiet: bool = False, ctx: VerifyContext | None = None) -> None:
    report = verify.as_dict()
    ctx = ctx or VerifyContext()
    lines = [annotation(f, strict=ctx.strict) for f in report["findings"]]
    lines += summary_lines(report, ctx)
    write_stdout("\n".join(lines) + "\n")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        from hpohash.render.markdown import verify_markdown

        with open(summary_file, "a", encoding="utf-8") as fh:
            fh.write(verify_markdown(report, ctx).rstrip("\n") + "\n\n")
