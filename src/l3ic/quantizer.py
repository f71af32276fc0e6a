"""Fixed-codebook quantiser and the differentiable rate estimate.

Notation (docs/architecture.md, "Quantiser"): z is the pre-quantisation latent (B, h, w, C)
float, q the quantised latent with values in the codebook -15..16 (32 integers, 5 bits), so
codebook index = q + 15 (``codebook.to_symbols``).

The forward pass is always hard (q = nearest codebook value). Training may differentiate it in
one of three ways (``backward``):

- ``"soft-t"``: the published l3ic rule: a Student-t soft assignment (nu=50, gamma=25) gives a
  soft value s; the output is ``s + stop_gradient(q - s)``.
- ``"ste"``: straight-through rounding, identity gradient inside the codebook range.
- ``"noise"``: additive uniform noise U(-0.5, 0.5) instead of rounding while training.
"""

import keras
from keras import ops

from .codebook import CODEBOOK, QMAX, QMIN

__all__ = [
    "CODEBOOK",
    "QMIN",
    "QMAX",
    "Quantizer",
    "soft_assignment",
    "channel_entropy",
    "pooled_entropy",
]

NU, GAMMA = 50.0, 25.0
BACKWARDS = ("soft-t", "ste", "noise")


def soft_assignment(z, gamma: float = GAMMA, nu: float = NU):
    """Student-t soft assignment of every value to the 32 codebook centres.

    Args:
        z: (..., ) float tensor.
        gamma, nu: kernel width and tail parameters.

    Returns:
        (..., 32) float32 weights that sum to 1 over the last axis (softmax of the log-kernel, so
        values far outside the codebook range do not underflow to NaN).
    """
    z = ops.cast(z, "float32")
    d = ops.expand_dims(z, -1) - ops.convert_to_tensor(CODEBOOK)
    log_k = -(nu + 1.0) / 2.0 * ops.log1p(ops.square(gamma * d) / nu)
    return ops.softmax(log_k, axis=-1)


def _entropy_bits(p):
    p = ops.maximum(p, 1e-9)
    p = p / ops.sum(p, axis=-1, keepdims=True)
    return -ops.sum(p * ops.log2(p), axis=-1)


def channel_entropy(z, gamma: float = GAMMA):
    """Mean over channels of each channel's soft-histogram entropy: what a per-channel coder pays.

    Args:
        z: (B, h, w, C) float pre-quantisation latent.

    Returns:
        scalar float32, bits per latent value.
    """
    w = soft_assignment(z, gamma)  # (B, h, w, C, 32)
    p = ops.mean(w, axis=(0, 1, 2))  # (C, 32)
    return ops.mean(_entropy_bits(p))


def pooled_entropy(z, gamma: float = GAMMA):
    """Entropy of one soft histogram pooled over all channels (the published rate estimate).

    Args:
        z: (B, h, w, C) float pre-quantisation latent.

    Returns:
        scalar float32, bits per latent value.
    """
    w = soft_assignment(z, gamma)
    p = ops.mean(ops.reshape(w, (-1, len(CODEBOOK))), axis=0)
    return _entropy_bits(p)


@keras.saving.register_keras_serializable(package="l3ic")
class Quantizer(keras.layers.Layer):
    """Hard quantisation to the codebook -15..16, with a choice of gradient for training.

    Args:
        backward: ``"soft-t"``, ``"ste"`` or ``"noise"`` (see the module docstring).
        seed: seed of the noise generator (``"noise"`` only).

    Shapes: z (B, h, w, C) float -> q (B, h, w, C) float with integer values (or z + noise while
    training with ``"noise"``).
    """

    def __init__(self, backward: str = "ste", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
        self.backward = backward
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if backward == "noise" else None

    def call(self, z, training=False):
        zc = ops.clip(z, float(QMIN), float(QMAX))
        hard = ops.round(zc)
        if not training:
            return hard
        if self.backward == "noise":
            noise = keras.random.uniform(ops.shape(z), -0.5, 0.5, seed=self.seed_generator)
            return zc + ops.cast(noise, zc.dtype)
        if self.backward == "ste":
            return zc + ops.stop_gradient(hard - zc)
        w = soft_assignment(z)
        soft = ops.cast(ops.sum(w * ops.convert_to_tensor(CODEBOOK), axis=-1), z.dtype)
        return soft + ops.stop_gradient(hard - soft)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backward": self.backward, "seed": self.seed}
