"""Loss functions in cs231n style: loss(x, y) -> (loss, dx), only x differentiated.

Every loss is a mean over all elements of its first input (for (N, C) logits in
softmax-cross-entropy, over the N samples), so dx carries the matching 1/size.
"""

import numpy as np


def softmax_cross_entropy(x, y):
    """Mean over N of -log softmax(x)[n, y[n]]; x (N, C) logits, y (N,) integer labels."""
    n = x.shape[0]
    rows = np.arange(n)
    shifted = x - np.max(x, axis=1, keepdims=True)  # exp() <= 1, and its row sum >= 1: log never sees 0
    e = np.exp(shifted)
    total = np.sum(e, axis=1)
    loss = np.mean(np.log(total) - shifted[rows, y])  # -log softmax(x)[n, y[n]] = logsumexp - x[n, y[n]]
    dx = e / total[:, None]  # softmax(x)
    dx[rows, y] -= 1.0  # d(-log p_y)/dx = p - onehot(y)
    return loss, dx / n


def mse(pred, target):
    """Mean over all elements of (pred - target)**2."""
    diff = pred - target
    return np.mean(diff**2), 2.0 * diff / diff.size


def bce_with_logits(x, y):
    """Mean binary cross-entropy of sigmoid(x) against targets y in [0, 1]."""
    # -y log s(x) - (1-y) log(1-s(x)) = max(x,0) - x y + log(1 + exp(-|x|)),
    # a form whose exp never overflows and whose log never sees 0.
    loss = np.mean(np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x))))
    sig = np.exp(-np.logaddexp(0.0, -x))
    return loss, (sig - y) / x.size
