"""Progress display for long work (rich), silenced by ``--quiet``.

Progress goes to stderr so that stdout stays clean for results (tables, JSON).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

_stderr = Console(stderr=True)


def console() -> Console:
    """The stderr console every progress display and log message shares."""
    return _stderr


class Task:
    """A handle to advance one progress bar; does nothing when quiet."""

    def __init__(self, progress: Optional[Progress], task_id=None):
        self._progress = progress
        self._id = task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)

    def update(self, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._id, **fields)


@contextlib.contextmanager
def progress_bar(description: str, total: Optional[float], quiet: bool = False) -> Iterator[Task]:
    """A transient progress bar on stderr; nothing when ``quiet`` or stderr is not a terminal."""
    if quiet:
        yield Task(None)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, console=_stderr, transient=True, disable=not _stderr.is_terminal) as prog:
        tid = prog.add_task(description, total=total, info="")
        yield Task(prog, tid)


def say(message: str, quiet: bool = False) -> None:
    """A status line on stderr unless quiet."""
    if not quiet:
        _stderr.print(message, highlight=False, soft_wrap=True)


def echo(message: str) -> None:
    """A result line on stdout."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()
