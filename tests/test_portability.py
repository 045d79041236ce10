"""What differs between supported library versions is handled: hypothesis with or without the
"local constants" mining that gradcheck switches off (6.80 has none)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import hypothesis.internal.conjecture as conjecture
import pytest

from gradcheck.engine import Options, _ignore_local_constants, check_layer
from gradcheck.registry import load_registry
from gradcheck.results import Status

BUGGY = load_registry(Path(__file__).resolve().parent.parent / "examples" / "buggy" / "layers.yaml")
PROVIDERS = "hypothesis.internal.conjecture.providers"


def _providers(monkeypatch, module) -> None:
    """Make `from hypothesis.internal.conjecture import providers` give `module` (None: ImportError)."""
    monkeypatch.delattr(conjecture, "providers", raising=False)
    monkeypatch.setitem(sys.modules, PROVIDERS, module)
    if module is not None:
        monkeypatch.setattr(conjecture, "providers", module, raising=False)


def test_the_mining_is_switched_off_where_hypothesis_has_it(monkeypatch):
    fake = types.SimpleNamespace(_get_local_constants=lambda: "mined", Constants=lambda: "none")
    _providers(monkeypatch, fake)
    _ignore_local_constants()
    assert fake._get_local_constants() == "none"


def test_a_providers_module_without_the_mining_is_left_alone(monkeypatch):
    fake = types.SimpleNamespace(Constants=lambda: "none")
    _providers(monkeypatch, fake)
    _ignore_local_constants()
    assert vars(fake).keys() == {"Constants"}


@pytest.mark.parametrize("name, blamed", [("sigmoid-wrong-sign", "x"), ("batch-mean", "W")])
def test_a_hypothesis_without_providers_still_searches_and_fails_a_wrong_backward(name, blamed, monkeypatch):
    _providers(monkeypatch, None)  # hypothesis 6.80 has no such module
    with pytest.raises(ImportError):
        from hypothesis.internal.conjecture import providers  # noqa: F401
    result = check_layer(BUGGY.get(name), Options(seed=0, examples=5))
    assert result.status is Status.FAIL, result.message
    assert blamed in {t.name for t in result.tensors if t.status is Status.FAIL}
