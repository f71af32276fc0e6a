"""Keras layers of the l3ic autoencoder (keras.ops only, so every backend runs them).

Tensors are channels-last: (B, H, W, C). Where each layer sits in the network, and the published
choices they follow (leaky slope 0.2, TensorFlow's depth-to-space order, the clipped output):
docs/architecture.md, "Network".
"""

import keras
from keras import ops

__all__ = [
    "ClipToUnit",
    "DepthToSpace",
    "LatentScale",
    "ResidualBlock",
    "ScaleFiLM",
    "film_name",
    "FILM_WEIGHT_SUFFIX",
    "LEAKY_SLOPE",
]

LEAKY_SLOPE = 0.2
PACKAGE = "l3ic"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """``a + conv3x3(lrelu(conv3x3(b)))`` where ``b = lrelu(a)`` or ``a`` itself.

    Args:
        filters: channels of both convolutions and of the input.
        pre_activation: feed the branch with ``lrelu(a)`` (encoder block R1), not ``a``.
        film: follow each convolution by a ``ScaleFiLM`` (``conv1_film``, ``conv2_film``); the
            block is then called on ``[a, t]`` with t = log2 s (B, 1) float32.

    Shapes: (B, H, W, filters) -> (B, H, W, filters), same dtype.
    """

    def __init__(
        self, filters: int = 128, pre_activation: bool = False, film: bool = False, **kwargs
    ):
        # With FiLMs, t must reach them in float32: the block does not autocast its inputs
        # (its convolutions still compute in the policy's dtype).
        super().__init__(**({"autocast": False} if film else {}), **kwargs)
        self.filters = filters
        self.pre_activation = pre_activation
        self.film = film
        self.conv1 = keras.layers.Conv2D(filters, 3, padding="same", name="conv1")
        self.conv2 = keras.layers.Conv2D(filters, 3, padding="same", name="conv2")
        if film:
            self.film1 = ScaleFiLM(name=film_name("conv1"))
            self.film2 = ScaleFiLM(name=film_name("conv2"))

    def build(self, input_shape):
        if self.film:
            input_shape = input_shape[0]
            self.film1.build(input_shape[:-1] + (self.filters,))
            self.film2.build(input_shape[:-1] + (self.filters,))
        self.conv1.build(input_shape)
        self.conv2.build(input_shape[:-1] + (self.filters,))

    def call(self, inputs):
        a, t = inputs if self.film else (inputs, None)
        b = ops.leaky_relu(a, LEAKY_SLOPE) if self.pre_activation else a
        b = self.conv1(b)
        if self.film:
            b = self.film1([b, t])
        b = self.conv2(ops.leaky_relu(b, LEAKY_SLOPE))
        if self.film:
            b = self.film2([b, t])
        return a + b

    def compute_output_shape(self, input_shape):
        return input_shape[0] if self.film else input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "pre_activation": self.pre_activation,
            "film": self.film,
        }


FILM_BOOST = 25.0
# A ScaleFiLM is named after the convolution it follows (``film_name``), so its weight's path
# is that convolution's path + FILM_WEIGHT_SUFFIX ("r4/conv1" -> "r4/conv1_film/film").
FILM_WEIGHT_SUFFIX = "_film/film"


def film_name(conv_name: str) -> str:
    """The name of the ``ScaleFiLM`` that follows the convolution ``conv_name``."""
    return f"{conv_name}_film"


def film_terms(film, t):
    """(m, b) of ``ScaleFiLM``: film (4, C) and t (any shape broadcasting against (C,)) ->
    m = 1 + A0 t + A1 t^2 and b = A2 t + A3 t^2 with A = FILM_BOOST * film (numpy or tensors)."""
    a = film * FILM_BOOST
    return 1.0 + a[0] * t + a[1] * t * t, a[2] * t + a[3] * t * t


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaleFiLM(keras.layers.Layer):
    """Tells a decoder layer the quantisation scale s: ``h * m(t) + b(t)`` with t = log2 s and,
    per channel c, ``m_c = 1 + A_c0 t + A_c1 t^2`` and ``b_c = A_c2 t + A_c3 t^2``.

    ``A = FILM_BOOST * film``, where ``film`` (4, C) float32 starts at zero: at s = 1 (t = 0),
    and before training, the layer is the identity. The boost gives these few weights steps
    ``FILM_BOOST`` times the learning rate's (Adam's steps are about the learning rate).
    Following a convolution directly, it folds into that convolution's kernel and bias for any
    one s (``model.fold_scale``).

    Shapes: [h (B, H, W, C), t (B, 1) float32] -> (B, H, W, C), h's dtype.
    """

    def __init__(self, **kwargs):
        # t stays float32 under bf16 (no autocast): bf16 would round log2 s to 8 bits.
        super().__init__(autocast=False, **kwargs)

    def build(self, input_shape):
        channels = input_shape[0][-1] if isinstance(input_shape, list) else input_shape[-1]
        self.film = self.add_weight(shape=(4, channels), initializer="zeros", name="film")

    def call(self, inputs):
        h, t = inputs
        t = ops.reshape(ops.cast(t, "float32"), (-1, 1, 1, 1))
        m, b = film_terms(ops.cast(self.film, "float32"), t)
        return h * ops.cast(m, h.dtype) + ops.cast(b, h.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


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
