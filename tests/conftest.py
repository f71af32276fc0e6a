"""Shared fixtures: seeded untrained models, so tests never need trained weights."""

import json
import os

import pytest
from support import models_at, untrained_codec


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory):
    """ONNX graphs built by the tests go to a temporary cache, not the user's ~/.cache/l3ic."""
    os.environ["L3IC_CACHE_DIR"] = str(tmp_path_factory.mktemp("graph-cache"))


@pytest.fixture(scope="session")
def codec16():
    """An untrained, seeded 16-channel codec with a spread-out latent."""
    return untrained_codec(16)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models/ folder with seeded untrained 16c and 32c presets (weights + sidecar)."""
    from l3ic import entropy
    from l3ic.presets import save_weights

    folder = tmp_path_factory.mktemp("models")
    for name, channels in (("16c", 16), ("32c", 32)):
        codec = untrained_codec(channels, seed=1)
        fp = save_weights(codec.net.model, folder / f"{name}.npz")
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
    with models_at(models_dir, monkeypatch):
        yield models_dir
