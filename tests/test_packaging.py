"""Ready to publish: license, typing marker, metadata, one version, an sdist that carries its tests."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

import gradcheck
from gradcheck.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_license_file_matches_the_metadata():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_typing_marker_is_shipped():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in tool["package-data"]["gradcheck"]
    assert (ROOT / "gradcheck" / "py.typed").is_file()


def test_the_version_is_written_once_and_shown():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["dynamic"]["version"] == {"attr": "gradcheck.__version__"}
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip().endswith(gradcheck.__version__)


def test_metadata_for_an_index():
    assert PROJECT["keywords"] and PROJECT["classifiers"]
    assert "License :: OSI Approved :: MIT License" not in PROJECT["classifiers"]  # SPDX `license` replaces it
    assert {"Homepage", "Issues"} <= set(PROJECT["urls"])
    assert PROJECT["entry-points"]["pytest11"] == {"gradcheck": "gradcheck.pytest_plugin"}
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requires == ["setuptools>=77"]  # the first to read `license = "MIT"` and `license-files`


def test_the_sdist_carries_what_the_tests_read():
    """MANIFEST.in includes every file the tests open from the repository (README, docs, fixtures, gallery)."""
    manifest = (ROOT / "MANIFEST.in").read_text()
    for needed in ("LICENSE", "README.md", "layers.yaml", ".pre-commit-hooks.yaml", ".ci/run"):
        assert re.search(rf"^include .*(?<!\S){re.escape(needed)}(\s|$)", manifest, re.M), needed
    for folder in ("docs", "tests", "examples"):
        assert f"recursive-include {folder} " in manifest, folder
    for folder in ("tests", "examples"):
        taken = set(re.search(rf"^recursive-include {folder} (.*)$", manifest, re.M).group(1).split())
        shipped = {
            f"*{path.suffix}"
            for path in (ROOT / folder).rglob("*.*")
            if "__pycache__" not in path.parts and ".hypothesis" not in path.parts
        }
        assert shipped <= taken, (folder, shipped - taken)  # every kind of file the tests may open
