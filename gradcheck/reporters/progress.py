"""The live progress display of a run on a terminal: layers done, and examples of each layer running."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from gradcheck.reporters.common import printable
from gradcheck.results import LayerResult

REFRESH_SECONDS = 0.1  # redraw at most this often between layers (no refresh thread: workers are forked)


class ProgressDisplay:
    """A transient rich progress display; use as a context manager, feeding `example` and `finished`."""

    def __init__(self, console: Console, layers: int):
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            auto_refresh=False,
        )
        self.overall = self.bar.add_task("layers", total=layers)
        self.running: dict[str, TaskID] = {}
        self.drawn = 0.0

    def __enter__(self) -> ProgressDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def example(self, name: str, done: int, total: int) -> None:
        """A layer has checked `done` of its `total` examples."""
        if name not in self.running:
            self.running[name] = self.bar.add_task(f"  {escape(printable(name))}", total=total)  # not markup
        self.bar.update(self.running[name], completed=done, total=total)
        self.refresh()

    def finished(self, result: LayerResult) -> None:
        """A layer is done: drop its bar, advance the count of layers."""
        task = self.running.pop(result.name, None)
        if task is not None:
            self.bar.remove_task(task)
        self.bar.advance(self.overall)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.drawn >= REFRESH_SECONDS:
            self.bar.refresh()
            self.drawn = now
