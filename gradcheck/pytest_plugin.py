"""The pytest plugin: `pytest --gradcheck` checks every layer of every layers.yaml as a test item.

Off unless `--gradcheck` is given. Each layers.yaml under the paths pytest collects (and each
`--gradcheck-config PATH`) becomes one item per layer, `layers.yaml::NAME`, so -k, -x, -n and
--junitxml apply. FAIL and ERROR are failures whose text is the layer's account, XFAIL is xfail
(XPASS an unexpected pass), WARN a warning, SKIP (nothing checked) a failure.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the checker is imported when a layer is collected: every pytest run loads this plugin
    from gradcheck.results import LayerResult
    from gradcheck.spec import LayerSpec, Options

CONFIG_NAME = "layers.yaml"


class GradcheckWarning(UserWarning):
    """A layer checked with a warning (WARN): it passed, with something worth a look."""


class LayerFailed(Exception):
    """A layer's FAIL (or XFAIL, which its xfail mark expects); the account is the message."""


class LayerErrored(Exception):
    """A layer's ERROR: it raised, hung or returned something unusable."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks of layers.yaml files")
    group.addoption(
        "--gradcheck",
        action="store_true",
        default=False,
        help="collect every layers.yaml under the test paths: one test per layer",
    )
    group.addoption(
        "--gradcheck-config",
        action="append",
        default=[],
        metavar="PATH",
        help="also collect this layers.yaml (repeatable; implies --gradcheck)",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("gradcheck") or config.getoption("gradcheck_config"))


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.name == CONFIG_NAME and _enabled(parent.config):
        return LayersFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Add the layers of each --gradcheck-config file that collection did not reach."""
    seen = {Path(item.path).resolve() for item in items if isinstance(item, LayerItem)}
    for given in config.getoption("gradcheck_config"):
        path = Path(given)
        if not path.is_file():
            raise pytest.UsageError(f"--gradcheck-config {given}: no such file")
        if path.resolve() not in seen:
            seen.add(path.resolve())
            items.extend(LayersFile.from_parent(session, path=path.resolve()).collect())


class LayersFile(pytest.File):
    """A layers.yaml: its layers are the items; a broken file is one collection error, its message only."""

    def collect(self):
        from gradcheck.errors import GradcheckError
        from gradcheck.registry import load_registry
        from gradcheck.settings import load_settings, with_settings
        from gradcheck.spec import Options

        try:
            registry = load_registry(self.path)
            settings = load_settings(self.config.rootpath / "pyproject.toml")
        except GradcheckError as exc:
            raise self.CollectError(str(exc)) from None
        options = Options(seed=settings.seed, mode=settings.mode or Options().mode, config=str(self.path))
        for spec in registry.layers:
            item = LayerItem.from_parent(self, name=spec.name, spec=with_settings(spec, settings), options=options)
            if spec.xfail:
                item.add_marker(pytest.mark.xfail(reason=spec.xfail, raises=LayerFailed, strict=False))
            yield item


class LayerItem(pytest.Item):
    """One layer of a layers.yaml, checked by the engine when the test runs."""

    def __init__(self, *, spec: LayerSpec, options: Options, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.options = spec, options

    def runtest(self) -> None:
        from gradcheck.engine import check_layer

        result = check_layer(self.spec, self.options)
        self.user_properties.append(("gradcheck_status", result.status.value))
        self.user_properties.append(("gradcheck_seed", str(result.seed)))
        _outcome(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (LayerFailed, LayerErrored)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{CONFIG_NAME}::{self.name}"


def _outcome(result: LayerResult) -> None:
    """The layer's verdict as pytest's: return (pass), raise, skip or warn."""
    from gradcheck.results import Status

    status = result.status
    if status is Status.ERROR:
        raise LayerErrored(result.account.text())
    if status in (Status.FAIL, Status.XFAIL):  # the xfail mark turns XFAIL into xfailed
        raise LayerFailed(result.account.text())
    if status is Status.SKIP:  # nothing could be checked: that must not pass the gate
        raise LayerFailed(f"{result.name}: SKIP, nothing was checked: {result.message or 'no reason given'}")
    if status is Status.WARN:
        for message in result.warnings or (result.message,):
            warnings.warn(GradcheckWarning(f"{result.name}: {message}"), stacklevel=1)
