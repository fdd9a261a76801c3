"""Progress on long work, for people watching a terminal and nobody else.

A spinner or bar goes to stderr, only when stderr is a terminal and the
command is not printing ``--json``: a pipe, a file or a CI log never sees
it, and stdout is never touched. ``after`` delays it so that quick work shows
nothing (a fleet solve of a tenth of a second should not flicker).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Progress:
    """What a long task reports: its total, each step done, and what it is doing now."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar = bar
        self._task = task

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def update(self, description: str | None = None, *, advance: float = 0) -> None:
        if self._bar is not None:
            kwargs: dict[str, Any] = {"advance": advance}
            if description is not None:
                kwargs["description"] = description
            self._bar.update(self._task, **kwargs)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def progress(
    description: str,
    *,
    total: float | None = None,
    quiet: bool = False,
    after: float = 0.0,
    console: Any = None,
) -> Iterator[Progress]:
    """A transient spinner (no ``total``) or bar on stderr while the block runs.

    Nothing is shown when ``quiet`` (``--json``) or when the console is not a
    terminal; the block then gets a :class:`Progress` that ignores updates.
    """
    console = console if console is not None else _stderr_console()
    if quiet or not console.is_terminal:
        yield Progress()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    bar = RichProgress(*columns, console=console, transient=True)
    task = bar.add_task(description, total=total)
    timer = threading.Timer(after, bar.start) if after > 0 else None
    if timer is None:
        bar.start()
    else:
        timer.daemon = True
        timer.start()
    try:
        yield Progress(bar, task)
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()
        bar.stop()
