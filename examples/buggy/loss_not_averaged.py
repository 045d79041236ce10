"""Bug: softmax loss averages over the batch in forward but not in backward.

loss = -mean_n log p[n, y_n], so dL/dx = (p - onehot(y)) / N. Forgetting the / N (the
mirror image of the batch-mean bug) is right for N == 1 and N times too large otherwise.
x fails. cs231n loss style: one function returning (loss, dx); y is data, never perturbed.
"""

import numpy as np


def _log_softmax(x):
    shifted = x - np.max(x, axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def softmax_loss(x, y):
    N = x.shape[0]
    log_probs = _log_softmax(x)
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    return loss, dx  # BUG: missing dx /= N


def softmax_loss_fixed(x, y):
    N = x.shape[0]
    log_probs = _log_softmax(x)
    loss = -np.sum(log_probs[np.arange(N), y]) / N
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx
