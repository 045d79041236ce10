"""The live progress display of a run on a terminal: layers done, and examples of each layer running.

A layer is shown failing as soon as one of its examples fails, not only once that failure has been
shrunk to its smallest case and diagnosed (which can take longer than finding it)."""

from __future__ import annotations

import time
from collections.abc import Collection

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from gradcheck.reporters.common import printable
from gradcheck.results import LayerResult, Status

REFRESH_SECONDS = 0.1  # redraw at most this often between layers (no refresh thread: workers are forked)


class ProgressDisplay:
    """A transient rich progress display; use as a context manager, feeding `example` and `finished`."""

    def __init__(self, console: Console, layers: int, xfail: Collection[str] = ()):
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
        self.failing: set[str] = set()  # layers with a failing example (their verdict: FAIL or ERROR)
        self.xfail = frozenset(xfail)  # layers expected to fail: their failure is no news
        self.drawn = 0.0

    def __enter__(self) -> ProgressDisplay:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def example(self, name: str, done: int, total: int, failed: bool = False) -> None:
        """A layer has checked `done` of its `total` examples; `failed`: one of them failed."""
        if name not in self.running:
            self.running[name] = self.bar.add_task(self.label(name, False), total=total)
        self.bar.update(self.running[name], completed=done, total=total)
        if failed and name not in self.failing and name not in self.xfail:
            self.bar.update(self.running[name], description=self.label(name, True))
            self.count_failing(name)
            self.refresh(force=True)  # the news that matters most: never held back
        self.refresh()

    def count_failing(self, name: str) -> None:
        """Count a failing layer once, in the line of layers done."""
        if name not in self.failing:
            self.failing.add(name)
            self.bar.update(self.overall, description=f"layers, [bold red]{len(self.failing)} failing[/]")

    @staticmethod
    def label(name: str, failed: bool) -> str:
        """A layer's line: its name as written (not markup), and once an example failed, that it is failing."""
        text = f"  {escape(printable(name))}"
        return f"{text} [bold red]FAILING[/] [dim](finding its smallest case)[/]" if failed else text

    def finished(self, result: LayerResult) -> None:
        """A layer is done: drop its bar, advance the count of layers."""
        task = self.running.pop(result.name, None)
        if task is not None:
            self.bar.remove_task(task)
        if result.status in (Status.FAIL, Status.ERROR):  # also those that fail with no example: a crash, a hang
            self.count_failing(result.name)
        self.bar.advance(self.overall)
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.drawn >= REFRESH_SECONDS:
            self.bar.refresh()
            self.drawn = now
