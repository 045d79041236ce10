'''`gradcheck init`: a commented starter layers.yaml and a layer file that passes it.'''

from __future__ import annotations

from pathlib import Path

from gradcheck.errors import GradcheckError

LAYERS_YAML = """\
# layers.yaml: the layers `gradcheck run all` checks. Paths are relative to this file.
# Every key is described in gradcheck's docs/layers.md; `gradcheck check NAME` explains a failure.

defaults:
  examples: 20          # property-based examples per layer (sizes and values drawn at random)
  # rtol: 1.0e-5        # per-element tolerance |analytic - numeric| <= atol + rtol * |numeric|
  # atol: 1.0e-7

layers:
  # A class with forward(x) and backward(dout); parameters W, b with gradients dW, db.
  - name: affine
    impl: mylayers.py:Affine        # file.py:Class (or package.module:Class)
    style: class
    init: {W: $W, b: $b}            # constructor arguments: $W is the drawn parameter W
    params: {W: [D, M], b: [M]}     # shapes written with dims
    grads: attr:d{name}             # after backward the gradient of W is self.dW
    inputs: {x: [N, D]}
    dims: {N: [1, 8], D: [1, 6], M: [1, 6]}   # inclusive ranges, drawn per example

  # No parameters: only the gradient with respect to x is checked.
  - name: relu
    impl: mylayers.py:ReLU
    style: class
    inputs: {x: [N, D]}
    dims: {N: [1, 8], D: [1, 6]}

  # Your layer here. Mark a layer you know is broken, so CI stays green until it is fixed:
  #   xfail: "backward of the bias is not summed yet"
"""

MYLAYERS_PY = '''\
"""Example layers for gradcheck: each backward is the exact derivative of its forward."""

import numpy as np


class Affine:
    """Fully connected layer: out = x @ W + b, for x of shape (N, D)."""

    def __init__(self, W, b):
        self.W = W  # (D, M)
        self.b = b  # (M,)

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout  # summed over the batch, never averaged
        self.db = dout.sum(axis=0)  # b was broadcast over the batch, so its gradient is summed
        return dout @ self.W.T


class ReLU:
    """Elementwise max(0, x)."""

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dout):
        return np.where(self.mask, dout, 0.0)
'''

FILES = {"layers.yaml": LAYERS_YAML, "mylayers.py": MYLAYERS_PY}


class StarterExistsError(GradcheckError):
    """`gradcheck init` would overwrite files."""


def write_starter(folder: Path, force: bool = False) -> list[Path]:
    """Write the starter files into `folder`; refuse to overwrite any of them unless `force`."""
    targets = [folder / name for name in FILES]
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        names = " and ".join(str(path) for path in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise StarterExistsError(f"error: {names} already {verb}; nothing was written (--force overwrites)")
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets:
        path.write_text(FILES[path.name], encoding="utf-8")
    return targets
