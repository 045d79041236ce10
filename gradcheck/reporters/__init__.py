"""Reporters turn a RunResult into text: a table, JSON, JUnit XML or workflow annotations."""

from __future__ import annotations

from gradcheck.reporters.github import render_github
from gradcheck.reporters.json import render_json
from gradcheck.reporters.junit import render_junit
from gradcheck.reporters.table import render_table

REPORTERS = {
    "table": render_table,
    "json": render_json,
    "junit": render_junit,
    "github": render_github,
}

__all__ = ["REPORTERS", "render_table", "render_json", "render_junit", "render_github"]
