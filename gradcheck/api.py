"""The Python API: check layers from a layers.yaml without the command line."""

from __future__ import annotations

import os

from gradcheck.engine import check_layer as _check_spec
from gradcheck.errors import UnknownLayerError, suggest
from gradcheck.failures import save_failures
from gradcheck.limits import check_settings
from gradcheck.parallel import run_layers
from gradcheck.registry import load_registry
from gradcheck.results import LayerResult, RunResult
from gradcheck.spec import LayerSpec, Options, Tolerances


def _options(config, examples, seed, rtol, atol, eps, timeout=None, **rest) -> Options:
    checked = check_settings(examples=examples, rtol=rtol, atol=atol, eps=eps, timeout=timeout)
    examples, rtol, atol, eps, timeout = checked.values()
    return Options(
        examples=examples,
        seed=seed,
        tolerances=Tolerances(rtol=rtol, atol=atol, eps=eps),
        config=str(config) if config else None,
        timeout=timeout,
        **rest,
    )


def check_layer(
    layer: str | LayerSpec,
    config: str | os.PathLike = "layers.yaml",
    *,
    examples: int | None = None,
    seed: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    eps: float | None = None,
    timeout: float | None = None,
    mode: str = "auto",
    save_failures: str | os.PathLike | None = None,
) -> LayerResult:
    """Check one layer, named in `config` or given as a LayerSpec; `.assert_ok()` the result in pytest.
    `save_failures`: a folder to write the failing example (NAME.npz) and a script replaying it (NAME.py)."""
    options = _options(config, examples, seed, rtol, atol, eps, timeout=timeout, mode=mode)
    if isinstance(layer, LayerSpec):
        spec = layer
        check_settings(examples=spec.examples, timeout=spec.timeout, **vars(spec.tolerances))
    else:
        registry = load_registry(config)
        found = registry.get(layer)
        if found is None:
            raise UnknownLayerError(f"no layer named {layer!r} in {config}{suggest(layer, registry.names())}")
        spec = found
    result = _check_spec(spec, options)
    if save_failures is not None:
        _save([result], [spec], save_failures, options)
    return result


def run_config(
    config: str | os.PathLike = "layers.yaml",
    names: list[str] | None = None,
    *,
    examples: int | None = None,
    seed: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    eps: float | None = None,
    timeout: float | None = None,
    mode: str = "auto",
    jobs: int = 1,
    save_failures: str | os.PathLike | None = None,
) -> RunResult:
    """Check every layer of a layers.yaml (or the named ones) and return the run's results: in worker
    processes for jobs > 1 or a timeout (where fork exists), so that a hang is cut off too."""
    options = _options(config, examples, seed, rtol, atol, eps, timeout=timeout, mode=mode)
    registry = load_registry(config)
    specs = registry.layers
    if names:
        missing = next((name for name in names if registry.get(name) is None), None)
        if missing is not None:
            raise UnknownLayerError(f"no layer named {missing!r} in {config}{suggest(missing, registry.names())}")
        specs = [spec for spec in map(registry.get, names) if spec is not None]
    result = run_layers(specs, options, jobs=jobs)
    if save_failures is not None:
        _save(list(result.layers), specs, save_failures, options)
    return result


def _save(results: list[LayerResult], specs: list[LayerSpec], directory, options: Options) -> None:
    """Write the failing examples; the script reads each layer from the layers.yaml that defines it
    (a LayerSpec made in Python has none: its script shows the saved gradients)."""
    for result in results:
        spec = next((s for s in specs if s.name == result.name), None)
        config = spec.source.rsplit(":", 1)[0] if spec and spec.source else None
        if spec is not None:
            config = config if config and os.path.isfile(config) else None
            save_failures([result], {spec.name: spec}, directory, config, options.tolerances)


def layer_names(config: str | os.PathLike = "layers.yaml") -> list[str]:
    """The layer names of a layers.yaml in file order: `@pytest.mark.parametrize("name", layer_names(path))`."""
    return load_registry(config).names()
