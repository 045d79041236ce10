"""A two-layer network written the cs231n way: parameters in `self.params`, and one method
`loss(X, y)` returning the loss and a dict of gradients named like the parameters.

    gradcheck run all        (in this folder)

checks every parameter's gradient, regularisation included, against finite differences of the loss.
"""

import numpy as np


class TwoLayerNet:
    """affine - relu - affine - softmax, with L2 regularisation 0.5 * reg * (|W1|^2 + |W2|^2)."""

    def __init__(self, input_dim=3 * 32 * 32, hidden_dim=100, num_classes=10, weight_scale=1e-3, reg=0.0):
        self.reg = reg
        self.params = {
            "W1": weight_scale * np.random.randn(input_dim, hidden_dim),
            "b1": np.zeros(hidden_dim),
            "W2": weight_scale * np.random.randn(hidden_dim, num_classes),
            "b2": np.zeros(num_classes),
        }

    def loss(self, X, y=None):
        """Scores when y is None; else (loss, grads) with grads[k] the gradient of params[k]."""
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        hidden_in = X @ W1 + b1
        hidden = np.maximum(0, hidden_in)
        scores = hidden @ W2 + b2
        if y is None:
            return scores

        N = X.shape[0]
        shifted = scores - scores.max(axis=1, keepdims=True)  # exp never overflows
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -log_probs[np.arange(N), y].sum() / N
        loss += 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

        dscores = np.exp(log_probs)
        dscores[np.arange(N), y] -= 1
        dscores /= N  # the loss is a mean over the batch
        grads = {}
        grads["W2"] = hidden.T @ dscores + self.reg * W2
        grads["b2"] = dscores.sum(axis=0)
        dhidden = (dscores @ W2.T) * (hidden_in > 0)  # relu passes the gradient where it was open
        grads["W1"] = X.T @ dhidden + self.reg * W1
        grads["b1"] = dhidden.sum(axis=0)
        return loss, grads
