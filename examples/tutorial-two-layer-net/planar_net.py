"""A two-layer network written the way many tutorials write it: plain functions, a `parameters`
dict passed in, a cache dict of activations, and samples along the LAST axis (X is (n_x, m)).

    gradcheck run all        (in this folder)
"""

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def forward_propagation(X, parameters):
    """X: (n_x, m) -> A2: (1, m), and the activations backward needs."""
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.tanh(Z1)
    Z2 = parameters["W2"] @ A1 + parameters["b2"]
    A2 = sigmoid(Z2)
    return A2, {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}


def compute_cost(A2, Y, parameters, lambd):
    """Cross-entropy averaged over the m samples, plus L2 regularisation of the weights."""
    m = Y.shape[1]
    cross_entropy = -np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2)) / m
    l2 = lambd / (2 * m) * (np.sum(parameters["W1"] ** 2) + np.sum(parameters["W2"] ** 2))
    return float(cross_entropy + l2)


def backward_propagation(parameters, cache, X, Y, lambd):
    """The gradients of compute_cost, named d + the parameter's name."""
    m = X.shape[1]
    A1, A2 = cache["A1"], cache["A2"]
    dZ2 = A2 - Y  # sigmoid and cross-entropy together
    dW2 = dZ2 @ A1.T / m + lambd / m * parameters["W2"]
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = (parameters["W2"].T @ dZ2) * (1 - A1**2)  # tanh' = 1 - tanh^2
    dW1 = dZ1 @ X.T / m + lambd / m * parameters["W1"]
    db1 = np.sum(dZ1, axis=1, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2}
