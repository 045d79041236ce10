"""Bug: a missing factor -- tanh'(x) written as `1 - y` instead of `1 - y**2`.

With y = tanh(x), d/dx tanh(x) = 1 - tanh(x)**2. The slip is easy to miss: at y = 0 both
give 1. x fails everywhere else. (cs231n function style: forward returns a cache.)
"""

import numpy as np


def tanh_forward(x):
    out = np.tanh(x)
    cache = out
    return out, cache


def tanh_backward(dout, cache):
    out = cache
    dx = dout * (1 - out)  # BUG: should be 1 - out**2
    return dx


def tanh_backward_fixed(dout, cache):
    out = cache
    dx = dout * (1 - out**2)
    return dx
