"""The Rich progress bar for long scans and writes: terminals only, Rich imported only when shown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def progress_reporter(enabled: bool) -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A Rich progress bar on stderr (terminals only); yields the callback the reader reports to."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from hpohash.render.table import console

    labels = {"scan": "reading runs", "configs": "configs per study", "write": "writing runs"}
    # started at the first report, not before: a confirmation prompt may come first (a live bar
    # would hide it)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def report(phase: str, done: int, total: int | None) -> None:
        if not tasks:
            bar.start()
        if phase not in tasks:
            tasks[phase] = bar.add_task(labels.get(phase, phase), total=total)
        bar.update(tasks[phase], completed=done, total=total)

    try:
        yield report
    finally:
        if tasks:
            bar.stop()
