"""Bug: gradient with respect to the wrong input of a two-input op.

For out = x * y, dL/dx = dout * y and dL/dy = dout * x -- each input's gradient carries
the *other* input. Swapping them (an easy slip in "Deep Learning from Scratch"'s MulLayer)
keeps every shape right; both x and y fail.
"""


class MulLayer:
    """Elementwise product of two (N, D) inputs."""

    def forward(self, x, y):
        self.x = x
        self.y = y
        return x * y

    def backward(self, dout):
        dx = dout * self.x  # BUG: should be dout * self.y
        dy = dout * self.y  # BUG: should be dout * self.x
        return dx, dy


class MulLayerFixed(MulLayer):
    """Each input's gradient is dout times the other input."""

    def backward(self, dout):
        dx = dout * self.y
        dy = dout * self.x
        return dx, dy
