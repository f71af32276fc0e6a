"""Shared fixtures: seeded untrained models, so tests never need trained weights."""

import json

import numpy as np
import pytest

LATENT_SCALE = 30.0  # makes an untrained encoder spread its latent over many codebook values


def _untrained(channels: int, seed: int = 0, tile: int = 64):
    from l3ic import Codec

    codec = Codec.untrained(channels, seed=seed, tile=tile)
    codec.net.encoder.get_layer("scale").scale.assign(LATENT_SCALE)
    return Codec.from_model(codec.net, codec.name, {}, tile=tile)


@pytest.fixture(scope="session")
def codec16():
    """An untrained, seeded 16-channel codec with a spread-out latent."""
    return _untrained(16)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models/ folder with seeded untrained 16c and 32c presets (weights + sidecar)."""
    from l3ic import entropy
    from l3ic.presets import save_weights

    folder = tmp_path_factory.mktemp("models")
    for name, channels in (("16c", 16), ("32c", 32)):
        codec = _untrained(channels, seed=1)
        fp = save_weights(codec.net, folder / f"{name}.npz")
        sidecar = {
            "priors": entropy.default_prior(channels).tolist(),
            "channel_order": list(range(channels))[::-1],
            "fingerprint": fp.hex(),
            "status": "untrained test model",
        }
        (folder / f"{name}.json").write_text(json.dumps(sidecar))
    return folder


@pytest.fixture
def presets(models_dir, monkeypatch):
    """Points l3ic at the untrained test presets for the duration of a test."""
    from l3ic import api

    monkeypatch.setenv("L3IC_MODELS_DIR", str(models_dir))
    api.get_codec.cache_clear()
    yield models_dir
    api.get_codec.cache_clear()


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 test picture: gradients, a disc and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = xx / max(width - 1, 1)
    g = yy / max(height - 1, 1)
    b = ((xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(height, width) / 3) ** 2) * 0.8
    img = np.stack([r, g, b + 0.1], axis=-1) * 255 + rng.normal(0, 6, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def image():
    return smooth_image
