"""Softmax and log-softmax over the last axis, in numerically stable form."""

import numpy as np


def log_softmax(x):
    """Return x - logsumexp(x) over the last axis, stable for any magnitude."""
    # Subtracting the max changes nothing mathematically but keeps exp() <= 1.
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax(x):
    """Return exp(x) / sum(exp(x)) over the last axis, stable for any magnitude."""
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


class Softmax:
    """Softmax over the last axis of an (N, C) input."""

    def forward(self, x):
        """Return softmax(x), rows summing to 1."""
        self.y = softmax(x)
        return self.y

    def backward(self, dout):
        """Apply the Jacobian diag(y) - y y^T row by row without building it."""
        return self.y * (dout - np.sum(dout * self.y, axis=-1, keepdims=True))


class LogSoftmax:
    """Log-softmax over the last axis of an (N, C) input."""

    def forward(self, x):
        """Return log(softmax(x)) without ever taking log of 0."""
        out = log_softmax(x)
        self.y = np.exp(out)  # softmax, needed by backward
        return out

    def backward(self, dout):
        """Jacobian I - 1 y^T: every output depends on the shared logsumexp."""
        return dout - self.y * np.sum(dout, axis=-1, keepdims=True)
