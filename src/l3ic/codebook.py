"""The latent's fixed facts, shared by the format, the coder and the network (numpy only).

- ``STRIDE``: the network maps an image (H, W) to a latent (ceil(H / 8), ceil(W / 8), C).
- ``CODEBOOK``: latent values q are the 32 integers ``QMIN..QMAX`` = -15..16 (5 bits).
- Symbols: the entropy coder codes the codebook index ``q - QMIN`` (0..31) as uint8
  (``to_symbols``, ``from_symbols``).
"""

import numpy as np

__all__ = [
    "STRIDE",
    "QMIN",
    "QMAX",
    "CODEBOOK",
    "ALPHABET",
    "latent_size",
    "to_symbols",
    "from_symbols",
]

STRIDE = 8  # image pixels per latent cell, along each axis
QMIN, QMAX = -15, 16
CODEBOOK = np.arange(QMIN, QMAX + 1, dtype=np.float32)
ALPHABET = len(CODEBOOK)


def latent_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of the latent of a (height, width) image: each side divided by STRIDE, rounded up."""
    return -(-height // STRIDE), -(-width // STRIDE)


def to_symbols(q: np.ndarray) -> np.ndarray:
    """Latent values (int, -15..16) -> codebook indices (uint8, 0..31), same shape."""
    return (np.asarray(q, dtype=np.int16) - QMIN).astype(np.uint8)


def from_symbols(symbols: np.ndarray) -> np.ndarray:
    """Codebook indices (0..31) -> latent values (int8, -15..16), same shape."""
    return (np.asarray(symbols, dtype=np.int16) + QMIN).astype(np.int8)
