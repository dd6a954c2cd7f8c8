"""Typed errors, each mapped to one documented exit code by the CLI (SPEC §5)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class HpohashError(Exception):
    """Base class: its message is the one line the user sees."""

    exit_code = EXIT_USAGE


class UsageError(HpohashError):
    """Wrong option, unreadable file, unknown experiment or run: exit 2."""

    exit_code = EXIT_USAGE


class BackendError(HpohashError):
    """The tracking backend failed after MLflow's own retries: exit 3."""

    exit_code = EXIT_BACKEND


class JournalWriteError(HpohashError):
    """The journal could not be appended to (disk full, I/O error): no write may go ahead without it.

    Not a backend failure: retrying against the same tracking server would not help.
    """

    exit_code = EXIT_FINDINGS
