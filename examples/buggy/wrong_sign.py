"""Bug: the sigmoid derivative has the wrong sign.

sigma'(x) = sigma(x) * (1 - sigma(x)); writing `out * (out - 1)` flips it, so gradient
descent climbs instead of descending. x fails; the magnitudes are right, only the sign.
"""

import numpy as np


class Sigmoid:
    """out = 1 / (1 + exp(-x)), elementwise."""

    def forward(self, x):
        # exp of a large positive number overflows; this form only exponentiates -|x|.
        z = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
        return self.out

    def backward(self, dout):
        return dout * self.out * (self.out - 1.0)  # BUG: should be (1 - out)


class SigmoidFixed(Sigmoid):
    """The same layer with sigma' = out * (1 - out)."""

    def backward(self, dout):
        return dout * self.out * (1.0 - self.out)
