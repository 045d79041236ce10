"""Bug: backward averages over the batch while forward does not.

The forward is a plain per-sample affine map, so dL/dW is a *sum* of per-sample terms.
Dividing by N (habit from losses that average) makes dW and db N times too small:
right for N == 1, wrong for every larger batch. W and b fail; x is correct.
Parameters and gradients live in dictionaries: self.params["W"], self.grads["W"].
Fix: drop the / N -- if the loss averages, its own backward already divides by N.
"""

import numpy as np


class Linear:
    """out = x @ W + b with parameters in self.params and gradients in self.grads."""

    def __init__(self, W, b):
        self.params = {"W": W, "b": b}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros_like(b)}

    def forward(self, x):
        self.x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        n = self.x.shape[0]
        self.grads["W"] = self.x.T @ dout / n  # BUG: mean instead of sum
        self.grads["b"] = np.mean(dout, axis=0)  # BUG: same
        return dout @ self.params["W"].T


class LinearFixed(Linear):
    """The same layer summing over the batch, as its forward implies."""

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = np.sum(dout, axis=0)
        return dout @ self.params["W"].T
