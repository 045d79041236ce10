"""Bug: softmax without max-subtraction.

exp(x) overflows for x > ~709, so at inputs of size ~1e3 the forward returns inf / inf =
nan (and exp(-1000) / sum = 0 / 0 for large negative rows). The backward is correct: the
bug is in the forward, caught as non-finite output, not as a gradient mismatch.
Fix: softmax(x) = softmax(x - max(x)) exactly, and the largest exponent is then exp(0).
"""

import numpy as np


class Softmax:
    """Row-wise softmax of (N, C) scores."""

    def forward(self, x):
        e = np.exp(x)  # BUG: overflows for large x
        self.out = e / np.sum(e, axis=1, keepdims=True)
        return self.out

    def backward(self, dout):
        # Jacobian-vector product: y * (dout - <dout, y>) per row.
        y = self.out
        return y * (dout - np.sum(dout * y, axis=1, keepdims=True))


class SoftmaxFixed(Softmax):
    """The same layer, stable for any finite input."""

    def forward(self, x):
        e = np.exp(x - np.max(x, axis=1, keepdims=True))
        self.out = e / np.sum(e, axis=1, keepdims=True)
        return self.out
