"""`gradcheck init`: a commented starter layers.yaml and a layer file that passes it."""

from __future__ import annotations

from pathlib import Path

from gradcheck.errors import StarterExistsError

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

MODEL_LAYERS_YAML = """\
# layers.yaml: a whole model, checked parameter by parameter. Paths are relative to this file.
# `gradcheck run all` builds the model, writes drawn values into model.params, and compares the
# gradients model.loss returns with centred finite differences of the loss.

defaults:
  examples: 10

layers:
  - name: two-layer-net
    impl: mymodel.py:TwoLayerNet      # file.py:Class, or a function that returns the model
    style: model
    loss: loss                        # model.loss(X, y) -> (loss, grads)
    # gradient: gradient              # or: loss returns the loss alone, gradient(X, y) the grads
    init: {input_dim: $D, hidden_dim: $H, num_classes: $C, reg: 0.1}
    params: {W1: [D, H], b1: [H], W2: [H, C], b2: [C]}   # where: params_at: dict:params
    grad_names: auto                  # grads["W1"] or grads["dW1"]; or a template: d{name}
    inputs:                           # data: never differentiated
      X: {shape: [N, D], range: [-2, 2]}
      y: {shape: [N], integers: [0, C - 1]}
    dims: {N: [1, 8], D: [1, 6], H: [1, 8], C: [2, 5]}
"""

MYMODEL_PY = '''\
"""A two-layer classifier whose loss returns its gradients: gradcheck checks every one."""

import numpy as np


class TwoLayerNet:
    """affine - relu - affine - softmax cross-entropy, with L2 regularisation."""

    def __init__(self, input_dim, hidden_dim, num_classes, reg=0.0):
        self.reg = reg
        self.params = {
            "W1": 0.01 * np.random.randn(input_dim, hidden_dim),
            "b1": np.zeros(hidden_dim),
            "W2": 0.01 * np.random.randn(hidden_dim, num_classes),
            "b2": np.zeros(num_classes),
        }

    def loss(self, X, y):
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        hidden_in = X @ W1 + b1
        hidden = np.maximum(0, hidden_in)
        scores = hidden @ W2 + b2
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        N = X.shape[0]
        loss = -log_probs[np.arange(N), y].mean() + 0.5 * self.reg * (np.sum(W1**2) + np.sum(W2**2))

        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N
        dhidden = (dscores @ W2.T) * (hidden_in > 0)
        grads = {
            "W1": X.T @ dhidden + self.reg * W1,
            "b1": dhidden.sum(axis=0),
            "W2": hidden.T @ dscores + self.reg * W2,
            "b2": dscores.sum(axis=0),
        }
        return loss, grads
'''

STARTERS = {"layers": FILES, "model": {"layers.yaml": MODEL_LAYERS_YAML, "mymodel.py": MYMODEL_PY}}


def write_starter(folder: Path, force: bool = False, style: str = "layers") -> list[Path]:
    """Write the starter files (of STARTERS[style]) into `folder`; refuse to overwrite any unless `force`."""
    files = STARTERS[style]
    targets = [folder / name for name in files]
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        names = " and ".join(str(path) for path in existing)
        verb = "exists" if len(existing) == 1 else "exist"
        raise StarterExistsError(f"error: {names} already {verb}; nothing was written (--force overwrites)")
    folder.mkdir(parents=True, exist_ok=True)
    for path in targets:
        path.write_text(files[path.name], encoding="utf-8")
    return targets
