"""Keras layers of the l3ic autoencoder (keras.ops only, so every backend runs them).

Tensors are channels-last: (B, H, W, C). Where each layer sits in the network, and the published
choices they follow (leaky slope 0.2, TensorFlow's depth-to-space order, the clipped output):
docs/architecture.md, "Network".
"""

import keras
from keras import ops

__all__ = ["ClipToUnit", "DepthToSpace", "LatentScale", "ResidualBlock", "LEAKY_SLOPE"]

LEAKY_SLOPE = 0.2
PACKAGE = "l3ic"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """``a + conv3x3(lrelu(conv3x3(b)))`` where ``b = lrelu(a)`` or ``a`` itself.

    Args:
        filters: channels of both convolutions and of the input.
        pre_activation: feed the branch with ``lrelu(a)`` (encoder block R1), not ``a``.

    Shapes: (B, H, W, filters) -> (B, H, W, filters), same dtype.
    """

    def __init__(self, filters: int = 128, pre_activation: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.pre_activation = pre_activation
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", name="conv1")
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="same", name="conv2")

    def build(self, input_shape):
        self.conv1.build(input_shape)
        self.conv2.build(input_shape[:-1] + (self.filters,))

    def call(self, a):
        b = ops.leaky_relu(a, LEAKY_SLOPE) if self.pre_activation else a
        b = ops.leaky_relu(self.conv1(b), LEAKY_SLOPE)
        return a + self.conv2(b)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "pre_activation": self.pre_activation,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class DepthToSpace(keras.layers.Layer):
    """Rearranges channels into 2x2 (or ``block`` x ``block``) spatial blocks, in TF's NHWC order.

    Shapes: (B, h, w, c * block**2) -> (B, h * block, w * block, c).
    """

    def __init__(self, block: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block = block

    def call(self, x):
        b = self.block
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], x.shape[-1] // (b * b)
        x = ops.reshape(x, (-1, h, w, b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * b, w * b, c))

    def compute_output_shape(self, input_shape):
        b = self.block
        scale = lambda n: None if n is None else n * b  # noqa: E731
        return (
            input_shape[0],
            scale(input_shape[1]),
            scale(input_shape[2]),
            input_shape[3] // (b * b),
        )

    def get_config(self):
        return {**super().get_config(), "block": self.block}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LatentScale(keras.layers.Layer):
    """Multiplies by one trainable scalar (initialised to 1). Shapes unchanged."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x):
        return x * ops.cast(self.scale, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipToUnit(keras.layers.Layer):
    """Maps t in [-1, 1] to y = (t + 1) / 2, clipped to [0, 1] forward, identity gradient backward.

    Shapes unchanged; output float in [0, 1].
    """

    def call(self, t):
        y = (t + 1.0) / 2.0
        return y + ops.stop_gradient(ops.clip(y, 0.0, 1.0) - y)

    def compute_output_shape(self, input_shape):
        return input_shape
