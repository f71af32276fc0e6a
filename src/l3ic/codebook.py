"""The latent's fixed facts, shared by the format, the coder and the network (numpy only).

- ``STRIDE``: the network maps an image (H, W) to a latent (ceil(H / 8), ceil(W / 8), C).
- ``CODEBOOK``: latent values q are the 32 integers ``QMIN..QMAX`` = -15..16 (5 bits).
- Symbols: the entropy coder codes the codebook index ``q - QMIN`` (0..31) as uint8
  (``to_symbols``, ``from_symbols``).
- Scale: a file may be coded at a quantisation scale s (docs/format.md, version 5): the encoder
  rounds s z instead of z (``quantize``) and the decoder is given q / s (``dequantize``). s
  lives on a grid of 1/1024 (``snap_scale``), so the file stores it exactly; s = 1 is the
  preset as trained.
"""

import numpy as np

from .errors import L3ICError

__all__ = [
    "STRIDE",
    "QMIN",
    "QMAX",
    "CODEBOOK",
    "ALPHABET",
    "latent_size",
    "to_symbols",
    "from_symbols",
    "SCALE_UNIT",
    "MIN_SCALE",
    "MAX_SCALE",
    "snap_scale",
    "quantize",
    "dequantize",
]

STRIDE = 8  # image pixels per latent cell, along each axis
QMIN, QMAX = -15, 16
CODEBOOK = np.arange(QMIN, QMAX + 1, dtype=np.float32)
ALPHABET = len(CODEBOOK)
SCALE_UNIT = 1024  # a file stores its scale as a whole number of 1/1024ths
MIN_SCALE, MAX_SCALE = 0.125, 8.0  # the scales an encoder may ask for


def latent_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of the latent of a (height, width) image: each side divided by STRIDE, rounded up."""
    return -(-height // STRIDE), -(-width // STRIDE)


def to_symbols(q: np.ndarray) -> np.ndarray:
    """Latent values (int, -15..16) -> codebook indices (uint8, 0..31), same shape."""
    return (np.asarray(q, dtype=np.int16) - QMIN).astype(np.uint8)


def from_symbols(symbols: np.ndarray) -> np.ndarray:
    """Codebook indices (0..31) -> latent values (int8, -15..16), same shape."""
    return (np.asarray(symbols, dtype=np.int16) + QMIN).astype(np.int8)


def snap_scale(scale: float) -> float:
    """``scale`` on the grid a file can store (the nearest multiple of 1/1024).

    Raises:
        L3ICError: not a number, or outside ``MIN_SCALE``..``MAX_SCALE`` (0.125..8).
    """
    if isinstance(scale, bool) or not isinstance(scale, int | float | np.floating):
        raise L3ICError(f"scale must be a number, not {scale!r}")
    scale = float(scale)
    if not MIN_SCALE <= scale <= MAX_SCALE:  # also refuses NaN
        raise L3ICError(f"the scale must be within {MIN_SCALE}..{MAX_SCALE}, not {scale}")
    return round(scale * SCALE_UNIT) / SCALE_UNIT


def quantize(z: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The quantised latent q = round(clip(scale * z, QMIN, QMAX)), rounding half to even as
    ``keras.ops.round`` does. z: (..., C) float32 (the encoder's output) -> int8, same shape."""
    z = np.asarray(z, dtype=np.float32)
    if scale != 1.0:
        z = z * np.float32(scale)
    return np.round(np.clip(z, QMIN, QMAX)).astype(np.int8)


def dequantize(q: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The decoder's input q / scale. q: (..., C) integer latent -> float32, same shape."""
    y = np.asarray(q, dtype=np.float32)
    return y if scale == 1.0 else y / np.float32(scale)
