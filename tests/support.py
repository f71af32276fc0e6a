"""Test helpers shared by the test modules: seeded untrained codecs, synthetic images, and
l3ic pointed at a models folder."""

import contextlib

import numpy as np

LATENT_SCALE = 30.0  # makes an untrained encoder spread its latent over many codebook values


def untrained_codec(channels: int, seed: int = 0, tile: int = 64):
    """A seeded untrained Codec whose encoder latent is spread over many codebook values."""
    from l3ic import Codec

    codec = Codec.untrained(channels, seed=seed, tile=tile)
    codec.net.model.encoder.get_layer("scale").scale.assign(LATENT_SCALE)
    return Codec.from_model(codec.net.model, codec.preset, {}, tile=tile)


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 test picture: gradients, a disc and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = xx / max(width - 1, 1)
    g = yy / max(height - 1, 1)
    b = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(height, width) / 3) ** 2) * 0.8
    img = np.stack([r, g, b + 0.1], axis=-1) * 255 + rng.normal(0, 6, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@contextlib.contextmanager
def models_at(folder, monkeypatch):
    """l3ic reads its presets from ``folder`` (``$L3IC_MODELS_DIR``) inside the block, with the
    shared codecs and coders built afresh on entry and on exit."""
    from l3ic import api, latent_coder

    monkeypatch.setenv("L3IC_MODELS_DIR", str(folder))
    api._shared_codec.cache_clear()
    latent_coder.get_coder.cache_clear()
    try:
        yield folder
    finally:
        api._shared_codec.cache_clear()
        latent_coder.get_coder.cache_clear()
