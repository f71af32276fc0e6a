"""Shared fixtures of the benchmark tests (``bench`` is importable through pytest's
``pythonpath = ["."]`` in pyproject.toml)."""

from __future__ import annotations

import numpy as np
import pytest


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8: smooth colour gradients, a few edges and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 40 + 160 * x / max(width - 1, 1)
    g = 60 + 120 * y / max(height - 1, 1)
    b = 128 + 80 * np.sin(x / 9.0) * np.cos(y / 13.0)
    img = np.stack([r, g, b], axis=-1)
    img[(x // 16 + y // 16) % 2 == 0] += 25  # blocky edges
    img += rng.normal(0, 4, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@pytest.fixture
def make_image():
    """The ``synthetic_image`` factory."""
    return synthetic_image


@pytest.fixture
def small_image() -> np.ndarray:
    """(48, 64, 3) uint8 test image for codec round trips."""
    return synthetic_image(48, 64)
