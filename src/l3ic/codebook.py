"""The fixed quantisation codebook shared by the model and the entropy coder (numpy only).

Latent values q are the 32 integers -15..16 (5 bits); the coder's symbol is the index q + 15.
"""

import numpy as np

__all__ = ["QMIN", "QMAX", "CODEBOOK", "ALPHABET"]

QMIN, QMAX = -15, 16
CODEBOOK = np.arange(QMIN, QMAX + 1, dtype=np.float32)
ALPHABET = len(CODEBOOK)
