"""A progress bar for a collection being scored: done / total, rate and time left (rich.progress, on stderr)."""

from __future__ import annotations

from typing import Callable

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from memgaze.console import console
from memgaze.runtime.prediction import Failure, Prediction
from memgaze.runtime.sinks import Sink


class RateColumn(ProgressColumn):
    """Frames per second, as rich measures the task's speed."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "–/s", style="progress.data.speed")


def show_progress(quiet: bool, total: int | None) -> bool:
    """A bar is shown on a terminal, for a run of known length, unless ``quiet``."""
    return not quiet and total is not None and console.is_terminal


class ProgressSink(Sink):
    """Advances a progress bar per prediction; ``state`` gives (frames done, frames expected in all)."""

    def __init__(self, state: Callable[[], tuple[int, int | None]], what: str = "scoring") -> None:
        self.state = state
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=console,
        )
        done, total = state()
        self.task = self.progress.add_task(what, completed=done, total=total)
        self.progress.start()

    def _update(self) -> None:
        done, total = self.state()
        self.progress.update(self.task, completed=done, total=total)

    def write(self, result: Prediction, annotated: np.ndarray | None) -> None:
        self._update()

    def write_failure(self, failure: Failure) -> None:
        self._update()

    def close(self) -> None:
        self._update()
        self.progress.stop()
