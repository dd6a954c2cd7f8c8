"""One family of typed errors, each mapped to one documented exit code by the CLI (SPEC §5).

Everything a library call raises on purpose is an :class:`HpohashError`; a foreign exception with a
known meaning (MLflow's, the HTTP stack's, a missing database driver) is translated into the family
once, at the api boundary (``hpohash.api.translate``). Anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

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


class OutputError(UsageError):
    """stdout (or the ``-o`` file) refused the report: a full disk, a closed descriptor (exit 2, the OS's reason)."""


class BackendError(HpohashError):
    """The tracking backend failed after MLflow's own retries: exit 3."""

    exit_code = EXIT_BACKEND


class JournalWriteError(HpohashError):
    """The journal could not be appended to (disk full, I/O error): no write may go ahead without it.

    Not a backend failure: retrying against the same tracking server would not help.
    """

    exit_code = EXIT_FINDINGS


#: database drivers SQLAlchemy imports for a ``postgresql://``/``mysql://``/``mssql://`` store, and the
#: package that provides each (the import name is not always the package name)
DRIVER_PACKAGES = {
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "pg8000": "pg8000",
    "asyncpg": "asyncpg",
    "pymysql": "PyMySQL",
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
    "pyodbc": "pyodbc",
    "pymssql": "pymssql",
}


def missing_driver(exc: BaseException) -> UsageError | None:
    """A tracking URI whose database driver is not installed: the user's set-up, not a bug (exit 2)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    root = exc.name.split(".")[0]
    package = DRIVER_PACKAGES.get(root)
    if package is None:
        return None
    return UsageError(
        f"the tracking URI needs the database driver {root!r}, which is not installed: pip install {package}"
    )


class ArgumentError(UsageError):
    """A bad argument of a library call, named as its caller knows it.

    The message is a template whose ``{}`` are argument names: a Python caller reads ``since excludes
    parent_run_id``; the CLI, through :meth:`naming`, reads ``--since excludes --parent-run-id``.
    Values in the template are escaped with :func:`literal`.
    """

    def __init__(self, template: str, *arguments: str) -> None:
        self.template = template
        self.arguments = arguments
        super().__init__(template.format(*arguments))

    def naming(self, names: Mapping[str, str]) -> str:
        """The message with each argument named by ``names`` (an option, say), else as it is."""
        return self.template.format(*(names.get(a, a) for a in self.arguments))

    @classmethod
    def on(cls, argument: str, text: str) -> Self:
        """``{argument} text``: the message names one argument first, the rest is plain text (escaped)."""
        return cls("{} " + literal(text), argument)


def literal(text: str) -> str:
    """``text`` as a part of an :class:`ArgumentError` template (braces are not placeholders)."""
    return text.replace("{", "{{").replace("}", "}}")
