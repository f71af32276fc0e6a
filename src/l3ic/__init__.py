"""l3ic: a lightweight learned lossy image codec, trained in Keras 3, run on ONNX Runtime/OpenVINO.

Public API::

    data = l3ic.compress("photo.png", preset="32c")     # -> bytes
    image = l3ic.decompress(data)                         # -> (H, W, 3) uint8
    latent, meta = l3ic.read_latent(data, channels=[0])  # -> (H/8, W/8, 1) int8, no network
    f = l3ic.open("photo.l3ic")                           # header only: f.shape, f.preset
    f.latent(channels=[0, 3]); f.image(top_channels=8)    # streams decoded on demand
    codec = l3ic.Codec("32c"); codec.encode_latent(image) # the network (runtime="auto", ...)
    coder = l3ic.get_coder("32c")                         # LatentCoder: latents <-> bytes
    files = l3ic.LatentFiles("latents/")                  # a converted folder
    shards = l3ic.LatentShards("shards/", top_channels=8) # tar shards, streamed

Naming: a *preset* is "16c", "32c" or "64c"; ``channels`` are always channel indices and
``top_channels`` a count (the k most important); image shapes are (H, W), as numpy's.

Bad input raises ``l3ic.L3ICError``; a file declaring more pixels than the decoding limit
(``max_pixels=``, ``$L3IC_MAX_PIXELS``, default 33.5 Mpx) raises its subclass
``l3ic.DecompressionBombError`` before anything is decoded.

Names are imported on first use, so ``import l3ic`` stays cheap. The network runs on ONNX
Runtime by default (``runtime="keras"``, ``--runtime keras`` or ``$L3IC_RUNTIME=keras`` run the
Keras reference instead, which ``pip install "l3ic[train]"`` brings); reading latents needs no
network at all.
"""

import importlib
import os

from .errors import DecompressionBombError, L3ICError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.20.0"

_LAZY = {
    "compress": "api",
    "decompress": "api",
    "read_latent": "api",
    "imread": "api",
    "imwrite": "api",
    "open": "lazy",
    "Codec": "codec",
    "LatentCoder": "latent_coder",
    "get_coder": "latent_coder",
    "LatentFiles": "datasets.latent_files",
    "LatentShards": "datasets.latent_shards",
    "wds_decoder": "datasets.latent_shards",
    "size_batches": "datasets.latent_shards",
}

__all__ = ["L3ICError", "DecompressionBombError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'l3ic' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
