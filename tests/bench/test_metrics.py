"""l3ic.metrics: sanity values, error handling, and MS-SSIM equal to tf.image.ssim_multiscale."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from l3ic import metrics


def _noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def image256(make_image) -> np.ndarray:
    return make_image(256, 256, seed=3)


def test_identical_images(image256):
    assert metrics.psnr(image256, image256) == math.inf
    assert metrics.ssim(image256, image256) == pytest.approx(1.0)
    assert metrics.ssim_gaussian(image256, image256) == pytest.approx(1.0)
    assert metrics.ms_ssim(image256, image256) == pytest.approx(1.0)
    assert metrics.ms_ssim_db(1.0) == math.inf


def test_psnr_of_known_mse(image256):
    a = np.clip(image256, 10, 240)
    b = a + np.uint8(5)  # MSE exactly 25
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))


def test_ssim_is_skimage_default(image256):
    b = _noisy(image256, 10)
    expected = structural_similarity(image256, b, channel_axis=-1, data_range=255)
    assert metrics.ssim(image256, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.ssim_gaussian(image256, b) != pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("shape", [(256, 256), (61, 97), (7, 12), (11, 11)])
def test_both_ssims_are_scikit_images(shape, make_image):
    a = make_image(*shape, seed=7)
    for sigma in (2, 10, 40):
        b = _noisy(a, sigma)
        expected = structural_similarity(a, b, channel_axis=-1, data_range=255)
        assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-9)
        if min(shape) < 11:
            continue
        expected = structural_similarity(
            a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )  # fmt: skip
        assert metrics.ssim_gaussian(a, b) == pytest.approx(expected, abs=1e-9)


def test_metrics_fall_with_noise(image256):
    mild, strong = _noisy(image256, 3), _noisy(image256, 20)
    for f in (metrics.psnr, metrics.ssim, metrics.ssim_gaussian, metrics.ms_ssim):
        assert f(image256, mild) > f(image256, strong), f.__name__


@pytest.mark.parametrize("shape", [(256, 256), (177, 203)])
def test_ms_ssim_matches_tensorflow(shape, make_image):
    tf = pytest.importorskip("tensorflow")
    a = make_image(*shape, seed=5)
    for sigma in (4, 15, 40):
        b = _noisy(a, sigma)
        expected = tf.image.ssim_multiscale(
            tf.constant(a[None], tf.float64), tf.constant(b[None], tf.float64), 255.0
        )
        assert metrics.ms_ssim(a, b) == pytest.approx(float(expected[0]), abs=1e-4)


def test_ms_ssim_size_limit(make_image):
    a = make_image(161, 170)
    assert 0 < metrics.ms_ssim(a, _noisy(a, 10)) < 1
    small = make_image(160, 300)
    with pytest.raises(ValueError, match="161"):
        metrics.ms_ssim(small, small)
    assert math.isnan(metrics.all_metrics(small, small)["ms-ssim"])


def test_all_metrics_keys(image256):
    out = metrics.all_metrics(image256, _noisy(image256, 8))
    assert set(out) == {"psnr", "ssim", "ssim-gaussian", "ms-ssim", "ms-ssim-db"}
    assert out["ms-ssim-db"] == pytest.approx(metrics.ms_ssim_db(out["ms-ssim"]))


def test_bad_inputs(image256):
    with pytest.raises(ValueError, match="uint8"):
        metrics.psnr(image256.astype(np.float32), image256)
    with pytest.raises(ValueError, match="mismatch"):
        metrics.ssim(image256, image256[:-1])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        metrics.psnr(image256[..., 0], image256[..., 0])


def test_bpp_and_db():
    assert metrics.bpp(1000, 100, 80) == pytest.approx(1.0)
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    with pytest.raises(ValueError):
        metrics.bpp(10, 0, 5)
