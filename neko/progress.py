"""Progress bars of the long commands: rate and time left, on standard error, only for a person.

A library call takes a plain callback (`Corrector.progress`); the commands pass the one
`progress_bar` yields, which is None (no bar) when standard error is not a terminal or with --quiet.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

QUIET_HELP = "no progress bar (there is none either when standard error is not a terminal)"


class _Rate(ProgressColumn):
    """Items per second, in `unit`s (blank until rich has measured a speed)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} {self.unit}" if task.speed else "", style="progress.data.speed")


def new_progress(unit: str = "ex/s", *, transient: bool = False, disable: bool = False) -> Progress:
    """The one look of neko's bars (what, bar, done/total, rate in `unit`, time left), on standard
    error, for every long job: correcting, building data, training."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(unit),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=transient,
        disable=disable,
    )


@contextmanager
def progress_bar(description: str, total: int, quiet: bool = False) -> Iterator[Callable[[int], None] | None]:
    """A bar over `total` examples, advanced by the callback yielded (called with examples done)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    with new_progress(transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)
