"""Every code block of the README and docs/ runs, so that none goes stale.

Per document, blocks run in order in a fresh project made by `gradcheck init` (also under
tests/), which is the current folder: `python` blocks are executed in one namespace (a first
line `# NAME.py` writes that file instead; a `# tests/test_*.py` file is then run by pytest);
`yaml` blocks with layers are loaded by the registry (a `# layers.yaml` block is the project's
own, others get stand-ins for the code they name), other yaml is parsed and its `gradcheck`
commands parsed by the command line; `bash` blocks run line by line; `toml` is read as
[tool.gradcheck]; `json` parsed; `text` (output) is not run. No assertion pins rounding digits.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gradcheck.cli import cli
from gradcheck.registry import load_registry
from gradcheck.settings import load_settings
from gradcheck.starter import write_starter

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def blocks(document: Path) -> list[tuple[str, str, int]]:
    """(language, code, line) of every fenced block."""
    text = document.read_text()
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def test_the_readme_is_short_and_links_every_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 12_000
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme or page.name == "index.md" and "docs/index.md" in readme, page.name


def test_every_block_says_its_language():
    for document in DOCUMENTS:
        for language, _, line in blocks(document):
            assert language in RUNNERS, f"{document.name}:{line}: a ``` block needs a language ({', '.join(RUNNERS)})"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_code_blocks_run(document, tmp_path, monkeypatch):
    write_starter(tmp_path)
    write_starter(tmp_path / "tests")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": "__docs__"}
    for language, code, line in blocks(document):
        where = f"{document.name}:{line}"
        RUNNERS[language](code, where, tmp_path, namespace)


def run_python(code: str, where: str, project: Path, namespace: dict) -> None:
    name = _file_name(code)
    if name is None:
        exec(compile(code, where, "exec"), namespace)
        return
    (project / name).parent.mkdir(parents=True, exist_ok=True)
    (project / name).write_text(code)
    sys.modules.pop(Path(name).stem, None)  # a module written again is imported again
    if Path(name).name.startswith("test_"):
        result = _pytest(project, name)
        assert result.returncode == 0, f"{where}: {result.stdout[-3000:]}"


def run_yaml(code: str, where: str, project: Path, namespace: dict) -> None:
    document = yaml.safe_load(code)
    name = _file_name(code)
    if isinstance(document, dict) and "layers" in document:
        if name is None:  # an illustration: the code it names is stood in for
            project = project / f"stand-ins-{where.replace(':', '-')}"
            project.mkdir()
            _write_stand_ins(document, project)
        (project / (name or "layers.yaml")).write_text(code)
        assert load_registry(project / (name or "layers.yaml")).layers, where
        return
    for command in _gradcheck_commands(document):
        _parse_command(command, where)
    for repo in document.get("repos", []) if isinstance(document, dict) else []:
        assert repo["repo"] == PYPROJECT["project"]["urls"]["Homepage"], where
        hooks = {hook["id"] for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
        assert {hook["id"] for hook in repo["hooks"]} <= hooks, where


def run_bash(code: str, where: str, project: Path, namespace: dict) -> None:
    if code.startswith("gradcheck init"):  # starts a project: in an empty folder
        fresh = project / f"fresh-{where.replace(':', '-')}"
        fresh.mkdir()
        os.chdir(fresh)
    for line in code.splitlines():
        command = line.split(" #")[0].strip()
        if not command:
            continue
        if command.startswith("python3 -m venv"):
            _check_setup(command, where)
        elif command.startswith("pip install"):
            _check_install(command, where)
        elif command.startswith("gradcheck "):
            result = CliRunner().invoke(cli, shlex.split(command)[1:])
            assert result.exit_code == 0, f"{where}: {command}\n{result.output}"
        elif command.startswith("pytest "):
            result = _pytest(project, *shlex.split(command)[1:], "--collect-only")
            assert result.returncode == 0, f"{where}: {command}\n{result.stdout[-3000:]}"
        else:
            pytest.fail(f"{where}: no way to run {command!r}")


def run_toml(code: str, where: str, project: Path, namespace: dict) -> None:
    (project / "pyproject.toml").write_text(code)
    assert load_settings(project / "pyproject.toml").examples is not None, where


def run_json(code: str, where: str, project: Path, namespace: dict) -> None:
    json.loads(code)


def not_run(code: str, where: str, project: Path, namespace: dict) -> None:
    """Output, shown as printed (the README's excerpt is compared with the command in test_gallery)."""


RUNNERS = {
    "python": run_python,
    "yaml": run_yaml,
    "bash": run_bash,
    "toml": run_toml,
    "json": run_json,
    "text": not_run,
}


def _file_name(code: str) -> str | None:
    match = re.match(r"# ([\w./-]+\.(?:py|yaml))\n", code)
    return match.group(1) if match else None


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTEST_ADDOPTS": ""}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _write_stand_ins(document: dict, folder: Path) -> None:
    """Modules with an object for each name the layers refer to (classes with forward and backward)."""
    modules: dict[str, set[str]] = {}
    for layer in document["layers"]:
        module, _, obj = str(layer["impl"]).partition(":")
        names = modules.setdefault(module, set())
        names.update(n for n in (obj, layer.get("forward"), layer.get("backward"), layer.get("function")) if n)
    for module, names in modules.items():
        code = "".join(
            f"class {n}:\n    def __init__(self, **kw): pass\n    def forward(self, *a, **k): pass\n"
            f"    def backward(self, *a): pass\n"
            if n[0].isupper()
            else f"def {n}(*a, **k): pass\n"
            for n in sorted(names)
        )
        (folder / module).write_text(code)


def _gradcheck_commands(document) -> list[str]:
    """Every `run:` of a workflow that calls gradcheck."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "run" and isinstance(value, str) and value.startswith("gradcheck "):
                found.append(value)
            else:
                found += _gradcheck_commands(value)
    elif isinstance(document, list):
        for item in document:
            found += _gradcheck_commands(item)
    return found


def _parse_command(command: str, where: str) -> None:
    """The command line parses (options exist, values valid) without running anything."""
    args = shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "1", command))[1:]
    sub = cli.get_command(None, args[0])
    assert sub is not None, f"{where}: no command {args[0]!r}"
    sub.make_context(args[0], args[1:])


def _check_setup(command: str, where: str) -> None:
    """The README's set-up commands: the test one is what .ci/run runs; both install this folder."""
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install -e "), where
    if "pytest" in command:
        assert command in (ROOT / ".ci" / "run").read_text(), f"{where}: .ci/run must run {command!r}"
        assert "test" in PYPROJECT["project"]["optional-dependencies"]
    else:
        assert command.endswith("&& .venv/bin/gradcheck run all"), where


def _check_install(command: str, where: str) -> None:
    """Installing from the repository: this project's name, at its Homepage URL."""
    (requirement,) = shlex.split(command)[2:]
    name, _, url = requirement.partition(" @ ")
    assert name == PYPROJECT["project"]["name"], where
    assert url.startswith("git+" + PYPROJECT["project"]["urls"]["Homepage"] + "@"), where
