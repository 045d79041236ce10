"""Bug: leaky ReLU backward *sets* the negative side to alpha instead of scaling dout by it.

out = x for x > 0 and alpha * x otherwise, so dx = dout where x > 0 and alpha * dout
where x <= 0. `dx[x <= 0] = alpha` drops dout on the negative side: the local slope is
right, the chain rule is not. x fails wherever x <= 0.
"""

import numpy as np


def leaky_relu_forward(x, alpha=0.01):
    out = np.where(x > 0, x, alpha * x)
    cache = (x, alpha)
    return out, cache


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    dx = dout.copy()
    dx[x <= 0] = alpha  # BUG: should be dout * alpha
    return dx


def leaky_relu_backward_fixed(dout, cache):
    x, alpha = cache
    dx = dout.copy()
    dx[x <= 0] *= alpha
    return dx
