"""Elementwise activations: relu, leaky-relu, sigmoid, tanh, gelu."""

import math

import numpy as np

# numpy has no erfc; the exact GELU needs it. Elementwise math.erfc is plenty fast here.
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


class ReLU:
    """max(x, 0); the gradient at exactly 0 is taken as 0."""

    def forward(self, x):
        """Return max(x, 0), any shape."""
        self.positive = x > 0
        return np.where(self.positive, x, 0.0)

    def backward(self, dout):
        """Pass dout through where x was positive."""
        return np.where(self.positive, dout, 0.0)


class LeakyReLU:
    """x for x > 0, alpha * x otherwise."""

    def __init__(self, alpha=0.01):
        self.alpha = alpha

    def forward(self, x):
        """Return x where positive, alpha * x elsewhere."""
        self.positive = x > 0
        return np.where(self.positive, x, self.alpha * x)

    def backward(self, dout):
        """Slope 1 where x was positive, alpha elsewhere."""
        return np.where(self.positive, dout, self.alpha * dout)


class Sigmoid:
    """1 / (1 + exp(-x)), computed without overflow."""

    def forward(self, x):
        """Return sigmoid(x), any shape."""
        # exp(-x) overflows for x << 0; -log(1 + exp(-x)) via logaddexp does not.
        self.y = np.exp(-np.logaddexp(0.0, -x))
        return self.y

    def backward(self, dout):
        """sigmoid' = y (1 - y), written with the saved output."""
        return dout * self.y * (1.0 - self.y)


class Tanh:
    """Hyperbolic tangent."""

    def forward(self, x):
        """Return tanh(x), any shape."""
        self.y = np.tanh(x)
        return self.y

    def backward(self, dout):
        """tanh' = 1 - y**2, written with the saved output."""
        return dout * (1.0 - self.y**2)


class GELU:
    """Exact GELU: x * Phi(x), Phi the standard normal CDF."""

    def forward(self, x):
        """Return x * Phi(x), any shape."""
        self.x = x
        # Phi(x) = erfc(-x / sqrt 2) / 2, not (1 + erf(x / sqrt 2)) / 2: for x << 0 the sum
        # 1 + erf cancels to a few digits, and its gradient drowns in the rounding.
        self.cdf = 0.5 * _erfc(-x / math.sqrt(2.0))
        return x * self.cdf

    def backward(self, dout):
        """Product rule: Phi(x) + x * phi(x), phi the normal density."""
        pdf = np.exp(-0.5 * self.x**2) / math.sqrt(2.0 * math.pi)
        return dout * (self.cdf + self.x * pdf)
