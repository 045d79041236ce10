"""Shared by the tests: what a buggy layer's report must say, how to read it, and layers wrong on purpose."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from gradcheck.results import LayerResult, describe_failure


@dataclass(frozen=True)
class Bug:
    """What checking a buggy layer must report."""

    statuses: frozenset  # the layer's allowed statuses
    blamed: frozenset = frozenset()  # tensors the report must name as failing
    correct: frozenset = frozenset()  # tensors whose gradient is right: must not fail


def bug(statuses, blamed=(), correct=()):
    return Bug(frozenset(statuses), frozenset(blamed), frozenset(correct))


def layer_names(path: Path) -> list[str]:
    """Layer names in file order, read straight from the YAML."""
    return [entry["name"] for entry in yaml.safe_load(path.read_text())["layers"]]


def failed_tensors(res: LayerResult) -> set[str]:
    return {t.name for t in res.tensors if t.failed}


def blames(res: LayerResult, name: str) -> bool:
    """Whether the report names `name` as failing.

    A tensor listed in the result must itself be marked failed; one that is not listed
    (the check stopped at a layer-level verdict such as a wrong shape) must be named in
    the message, as `name` or `dname`.
    """
    listed = {t.name: t for t in res.tensors}
    if name in listed:
        return listed[name].failed
    return re.search(rf"(?<!\w)d?{re.escape(name)}(?!\w)", res.message or "") is not None


def assert_blamed_on(res: LayerResult, expected: Bug) -> None:
    report = describe_failure(res)
    assert res.status in expected.statuses, (
        f"expected {sorted(s.value for s in expected.statuses)}, got {res.status.value}\n{report}"
    )
    for name in sorted(expected.blamed):
        assert blames(res, name), f"the report does not name {name!r} as failing\n{report}"
    wrongly = failed_tensors(res) & expected.correct
    assert not wrongly, f"correct gradients reported as failing: {sorted(wrongly)}\n{report}"


def wrong_from_three_features(linear):
    """linear's backward, wrong for dx once D >= 3: the smallest failing dims are N=1, D=3, M=1."""

    class Wrong(linear):
        def backward(self, dout):
            dx = super().backward(dout)
            return dx * 1.01 if dx.shape[1] >= 3 else dx

    return Wrong
