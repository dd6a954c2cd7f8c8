"""Exit codes (SPEC §5): from a command's report, and from an error, in one place.

The CLI maps what happened to a number; the policy (what counts as a failure for a CI gate, which
exceptions are the backend's fault) lives here, not in the option parsing.
"""

from __future__ import annotations

from typing import Any

from hpohash.errors import EXIT_BACKEND, EXIT_FINDINGS, EXIT_OK


def verify_exit(report: Any, *, strict: bool) -> int:
    """1 on errors, and on warnings too with ``--strict``."""
    return EXIT_FINDINGS if not report.ok or (strict and report.summary.warnings) else EXIT_OK


def _write_failed(report: Any) -> bool:
    result = report.result
    return result is not None and result.backend_failed


def backfill_exit(report: Any, *, dry_run: bool, exit_code: bool) -> int:
    """3 when the backend kept failing, 1 on conflicts or failed writes; a dry run with ``--exit-code``
    fails only on errors left to backfill (a change that only fixes a warning does not fail the gate)."""
    if _write_failed(report):
        return EXIT_BACKEND
    result = report.result
    if report.plan.conflicts or (result is not None and result.failures):
        return EXIT_FINDINGS
    if dry_run and exit_code and report.plan.fixes_errors:
        return EXIT_FINDINGS
    return EXIT_OK


def undo_exit(report: Any) -> int:
    if _write_failed(report):
        return EXIT_BACKEND
    return EXIT_OK if report.ok else EXIT_FINDINGS


def diff_exit(report: Any) -> int:
    """0 same study (and same trial where both have one), 1 different."""
    return EXIT_OK if report.ok else EXIT_FINDINGS
