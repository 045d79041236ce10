"""Flatten: keep the batch axis, merge the rest."""


class Flatten:
    """Reshape (N, ...) to (N, prod(...))."""

    def forward(self, x):
        """Return x reshaped to (N, -1)."""
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        """Undo the reshape; no arithmetic happened."""
        return dout.reshape(self.x_shape)
