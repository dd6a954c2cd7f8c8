"""The process edge of the CLI: what only a command line has, kept out of the library.

The environment (MLflow's experiment variables, ``HPOHASH_SERVER_FILTER``, the credentials to mask),
``-o`` files, the terminal, stdout and stderr, and the mapping of every error to one line and one
exit code. ``hpohash.cli`` declares the commands; each goes options → request → one ``api`` call →
one renderer → an exit code, with these helpers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hpohash.errors import (
    EXIT_FINDINGS,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    ArgumentError,
    HpohashError,
    UsageError,
)
from hpohash.options import FLAGS, RunState

if TYPE_CHECKING:
    from hpohash.context import CallContext


def renderer(fmt: str) -> Any:
    """The renderer module for one output format (imported on demand: Rich only when needed)."""
    import importlib

    module = {"json": "json_", "markdown": "markdown", "github": "github", "junit": "junit"}.get(fmt, "table")
    return importlib.import_module(f"hpohash.render.{module}")


def warn(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(f"hpohash: warning: {line}", err=True)


def message(exc: BaseException) -> str:
    """An error's one line as the command line says it: a library argument named by its option."""
    return exc.naming(FLAGS) if isinstance(exc, ArgumentError) else str(exc)


#: MLflow's own defaults for the experiment, in the order ``mlflow`` itself reads them
EXPERIMENT_ENV = (("MLFLOW_EXPERIMENT_NAME", "experiments"), ("MLFLOW_EXPERIMENT_ID", "experiment_ids"))


def store(tracking_uri: str | None, timeout: float | None = None, read_via: str = "auto") -> Any:
    """The store and its settings: the options, ``--verbose``, ``HPOHASH_SERVER_FILTER`` and
    ``HPOHASH_SCAN_PARTS`` (read here, nowhere below)."""
    from hpohash.request import Store
    from hpohash.settings import BackendSettings

    server_filter = os.environ.get("HPOHASH_SERVER_FILTER", "").strip().lower()
    ctx = click.get_current_context(silent=True)
    state = ctx.find_root().obj if ctx is not None else None
    parts = os.environ.get("HPOHASH_SCAN_PARTS", "").strip()
    settings = BackendSettings(
        read_via=read_via,
        server_filter=server_filter if server_filter in ("always", "never") else "auto",
        scan_parts=int(parts) if parts.isdigit() else 0,  # anything else: auto, as for the filter
        verbose=bool(getattr(state, "verbose", False)),
    )
    if timeout is not None:
        settings = replace(settings, deadline_s=timeout)
    return Store(tracking_uri, settings)


def request(scope: dict[str, Any], store_options: dict[str, Any], **more: Any) -> tuple[Any, str | None]:
    """The request of a scanning command, and the MLflow variable that named its experiment (if one did).

    No -e and no --experiment-id: MLflow's environment variables name the experiment, as for ``mlflow
    runs``; not with ``--parent-run-id`` (the parent names its own experiment) nor ``--check-all``.
    """
    from hpohash.request import Request

    env = None
    if not (scope["experiments"] or scope["experiment_ids"] or scope["parent_run_id"] or more.get("check_all")):
        for var, key in EXPERIMENT_ENV:
            value = os.environ.get(var, "").strip()
            if value:
                scope, env = {**scope, key: (value,)}, var
                break
    request = Request(store=store(**store_options), **scope, **more)
    if not request.names_experiments and not request.check_all:
        raise UsageError(
            "give --experiment-name/-e NAME or --experiment-id ID (or --parent-run-id ID, or --check-all for every "
            "experiment), or set MLFLOW_EXPERIMENT_NAME or MLFLOW_EXPERIMENT_ID"
        )
    return request, env


@contextmanager
def naming(env: str | None) -> Iterator[None]:
    """An experiment MLflow's variable named and the store does not hold: the error names the variable."""
    try:
        yield
    except UsageError as exc:
        if env and "not found" in str(exc):
            raise UsageError(f"{message(exc)} (the experiment {env} names)") from exc
        raise


def interactive(fmt: str, quiet: bool) -> bool:
    return fmt == "table" and not quiet and sys.stderr.isatty()


def progress(fmt: str, quiet: bool) -> Any:
    from hpohash.render.progress import progress_reporter

    return progress_reporter(interactive(fmt, quiet))


def write_text(text: str | Iterable[str]) -> None:
    """What a renderer returned, to stdout (a closed pipe drops the rest)."""
    from hpohash.render import write_text as write

    write(text)


def write_output(path: str, text: str | Iterable[str]) -> None:
    """``-o FILE``: what the renderer returned goes to the file instead of stdout."""
    from hpohash.render import write_text as write

    try:
        with open(path, "w", encoding="utf-8") as fh:
            write(text, fh)
    except OSError as exc:
        raise UsageError(f"-o {path}: {exc.strerror or exc}") from exc


def step_summary(text: str) -> None:
    """``--format github`` in a workflow: the summary goes to the file GitHub names (the environment is
    read here, at the edge, never by a renderer)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)


def check_output_path(path: str | None) -> None:
    """Before anything is read: the report can be written where -o points (a name the OS refuses is its reason)."""
    if not path:
        return
    try:
        if Path(path).is_dir() or not Path(path).resolve().parent.is_dir():
            raise UsageError(f"-o {path}: not a file in an existing directory")
        os.stat(path)  # a name too long, a loop of symlinks: what open() would say, said now
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"-o {path}: {exc.strerror or exc}") from exc


def check_journal_path(path: str | None) -> None:
    """Before anything is read: a journal is never overwritten, and its place must be creatable."""
    if path:
        from hpohash.writes import check_journal_path

        check_journal_path(path)


# ------------------------------------------------------------------------------------------ entry


def main(group: click.Group, argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr.

    The command runs in one call context (``hpohash.context``) whose redactor knows the credentials of
    the environment and of ``--tracking-uri``; stdout and stderr pass through it for the whole command,
    so no credential is printed by hpohash, MLflow or a traceback, and its ledger tells a Ctrl-C what
    was written.
    """
    from hpohash.context import CallContext, call_context
    from hpohash.redact import RedactingStream, Redactor

    args = list(sys.argv[1:] if argv is None else argv)
    if sys.stdout is None or sys.stderr is None:  # started with a descriptor closed (``hpohash verify >&-``)
        return _closed_stream()
    processes = os.environ.get("HPOHASH_PROCESSES", "").strip()
    ctx = CallContext(processes=int(processes) if processes in ("1", "2") else 0)  # anything else: auto
    redactor = Redactor(ctx.secrets)
    redactor.add_env_secrets(os.environ)
    for i, arg in enumerate(args):
        if arg == "--tracking-uri" and i + 1 < len(args):
            redactor.add_uri_secrets(args[i + 1])
        elif arg.startswith("--tracking-uri="):
            redactor.add_uri_secrets(arg.split("=", 1)[1])
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(out, "stdout", redactor), RedactingStream(err, "stderr", redactor)
    try:
        with call_context(ctx):
            return _run(group, args, ctx)
    finally:
        sys.stdout, sys.stderr = out, err


def _closed_stream() -> int:
    """No stdout (or stderr) at all: exit 2 with the OS's reason, before any file could take descriptor 1."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError as exc:
            if sys.stderr is not None:
                _say(f"hpohash: error: cannot write to {name}: {exc.strerror or exc}")
            return EXIT_USAGE
    return EXIT_USAGE


def _say(line: str) -> None:
    from hpohash.redact import redact

    sys.stderr.write(redact(line) + "\n")
    sys.stderr.flush()


def _traceback(exc: BaseException) -> None:
    """``--verbose``: the traceback (redacted), then the same one line and exit code as without it."""
    import traceback

    _say("".join(traceback.format_exception(exc)).rstrip("\n"))


def _interrupted(ctx: CallContext) -> int:
    """Ctrl-C: say what was written, where the journal is, and how to finish or go back."""
    _say("hpohash: " + ctx.ledger.interrupted_message())
    return EXIT_INTERRUPTED


@contextmanager
def _ctrl_c_noted(ctx: CallContext) -> Iterator[list[int]]:
    """Ctrl-C raises ``KeyboardInterrupt`` as Python's own handler does, and is also noted: Python drops
    an exception raised inside a weakref callback or ``__del__`` ("Exception ignored"), so a Ctrl-C
    that lands there would otherwise be lost and the command run on as if never interrupted. Left
    alone where SIGINT is not Python's default (ignored in a background job, or a caller's handler).
    The call's ledger is marked too, so a backfill starts no further write either way."""
    import signal

    received: list[int] = []
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler or not _main_thread():
        yield received
        return

    def noted(signum: int, frame: Any) -> None:
        received.append(signum)
        ctx.ledger.interrupted = True  # ``writes`` starts no further write
        raise KeyboardInterrupt

    def unraisable(item: Any) -> None:  # the dropped Ctrl-C is noted: no "Exception ignored" traceback
        if not (received and issubclass(item.exc_type, KeyboardInterrupt)):
            previous_hook(item)

    previous_hook = sys.unraisablehook
    signal.signal(signal.SIGINT, noted)
    sys.unraisablehook = unraisable
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = previous_hook


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()  # where a signal handler can be set


def _run(group: click.Group, args: list[str], ctx: CallContext) -> int:
    with _ctrl_c_noted(ctx) as ctrl_c:
        code = _run_command(group, args, ctx)
    return _interrupted(ctx) if ctrl_c and code != EXIT_INTERRUPTED else code


def _run_command(group: click.Group, args: list[str], ctx: CallContext) -> int:
    from hpohash.tracking import configure_process

    configure_process()
    state = RunState()
    try:
        rv = group.main(args=args, prog_name="hpohash", standalone_mode=False, obj=state)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            if state.verbose:
                _traceback(exc)
            return _interrupted(ctx)
        _say("hpohash: aborted: nothing written")
        return EXIT_FINDINGS
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        if state.verbose:
            _traceback(exc)
        _say(f"hpohash: error: {exc.format_message()}")
        return EXIT_USAGE
    except HpohashError as exc:
        if state.verbose:
            _traceback(exc)
        _say(f"hpohash: {message(exc)}" if getattr(exc, "declined", False) else f"hpohash: error: {message(exc)}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if state.verbose:
            _traceback(exc)
        return _interrupted(ctx)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if state.verbose:
            _traceback(exc)
        text = " ".join(str(exc).split())[:300]
        _say(
            f"hpohash: internal error: {type(exc).__name__}: {text} — a bug in hpohash, please report it"
            + ("" if state.verbose else " (rerun with --verbose for the traceback)")
        )
        return EXIT_INTERNAL
    return int(rv or 0)


def entry(group: click.Group) -> None:
    from hpohash.perf import freeze_after_pauses

    freeze_after_pauses()  # this process ends after the command: no collection owed for what it keeps
    code = main(group)
    if sys.stdout is None:
        sys.exit(code)
    try:
        sys.stdout.flush()
    except OSError as exc:  # the output the command left in the buffer did not fit (``> /dev/full``)
        if code in (0, 1) and not isinstance(exc, BrokenPipeError):
            _say(f"hpohash: error: cannot write to stdout: {exc.strerror or exc}")
            code = EXIT_USAGE
        from hpohash.render import silence_stdout

        silence_stdout()  # what is left in the buffer goes nowhere, instead of a second error at exit
    _exit(code)


def _exit(code: int) -> None:
    """End the process without freeing every object one by one: after verify of 30,000 runs that
    teardown took 0.13–0.20 s and changes nothing outside (mypy ends the same way). The exit handlers
    still run and both streams are flushed; with another thread alive, the ordinary exit waits for it."""
    import atexit
    import threading

    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # as at an ordinary exit: what no longer fits is lost, quietly
            pass
    os._exit(code)
