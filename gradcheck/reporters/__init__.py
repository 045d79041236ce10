"""Reporters turn a RunResult into text: a table, JSON, JUnit XML or workflow annotations.

Every reporter is `render(run, strict=False, locations=None) -> str`, where `locations` maps a
layer's name to "path:LINE" of its code (sources.backward_location), so reports point at it.
"""

from __future__ import annotations

from collections.abc import Callable

from gradcheck.reporters.common import Locations
from gradcheck.reporters.github import render_github
from gradcheck.reporters.json import render_json
from gradcheck.reporters.junit import render_junit
from gradcheck.reporters.table import render_table
from gradcheck.results import RunResult

Reporter = Callable[..., str]

REPORTERS: dict[str, Reporter] = {
    "table": render_table,
    "json": render_json,
    "junit": render_junit,
    "github": render_github,
}


def render(fmt: str, run: RunResult, strict: bool = False, locations: Locations | None = None) -> str:
    """The run in the named format."""
    return REPORTERS[fmt](run, strict=strict, locations=locations)


__all__ = ["REPORTERS", "Locations", "render", "render_table", "render_json", "render_junit", "render_github"]
