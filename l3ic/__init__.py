"""l3ic: a lightweight learned lossy image codec in Keras 3.

Public API::

    data = l3ic.compress("photo.png", model="32c")      # -> bytes
    image = l3ic.decompress(data)                         # -> (H, W, 3) uint8
    latent, meta = l3ic.read_latent(data, channels=[0])  # -> (H/8, W/8, 1) int8
    codec = l3ic.Codec("32c"); codec.encode_latent(image)
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .api import compress, decompress, imread, imwrite, read_latent  # noqa: E402
from .codec import Codec  # noqa: E402
from .errors import L3ICError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Codec",
    "L3ICError",
    "compress",
    "decompress",
    "imread",
    "imwrite",
    "read_latent",
    "__version__",
]
