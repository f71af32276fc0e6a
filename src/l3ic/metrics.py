"""Image quality metrics used everywhere in l3ic (training validation and the benchmark).

Every function takes two 8-bit RGB images of the same shape, ``(H, W, 3)`` ``uint8`` arrays
(``a`` the reference ``x``, ``b`` the reconstruction ``y``), and returns a Python ``float``.
All maths is done in float64 with a data range of 255.

- ``psnr``: RGB PSNR, one MSE over the three channels together (``inf`` for identical images).
- ``ssim``: scikit-image's default ``structural_similarity`` (7x7 uniform window, sample
  covariance, ``channel_axis=-1``, ``data_range=255``). This is the SSIM of the published l3ic
  targets (docs/architecture.md, "Published figures": skimage ``compare_ssim``, multichannel,
  data range 1 on float images, which is the same number).
- ``ssim_gaussian``: Wang et al. 2004 SSIM (11x11 Gaussian window, sigma 1.5, population
  covariance), as scikit-image's ``structural_similarity(..., gaussian_weights=True,
  use_sample_covariance=False)``.

Both SSIMs are computed here in numpy, the way scikit-image computes them: scikit-image filters
the whole image (reflecting at the borders) and then averages the SSIM map without a border of
half a window, which leaves exactly the windows that lie inside the image, so filtering only
those ("valid" filtering) gives the same number (the tests compare with scikit-image to 1e-9).
That keeps scipy and scikit-image out of the base install (they are test dependencies).
- ``ms_ssim``: Wang, Simoncelli and Bovik 2003 MS-SSIM, five scales, weights
  ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``, computed per channel and averaged over R, G, B.
  It reproduces ``tf.image.ssim_multiscale(x, y, max_val=255)`` (default arguments): valid
  11x11 Gaussian filtering (sigma 1.5, K1 0.01, K2 0.03), contrast-structure terms clipped at 0,
  2x2 average pooling between scales after symmetric padding of odd sides by one pixel.
  Both sides must be at least ``MS_SSIM_MIN_SIDE`` (161) pixels so that the fifth scale still
  holds one 11x11 window; smaller images raise ``ValueError`` (tf raises an
  ``InvalidArgumentError`` there).

``score`` puts them together for one coded image (with its rate) and ``mean_scores`` averages
such records; ``l3ic.evaluate`` and the benchmark (``bench.rd``) both score through them, so
their figures and key names are the same (docs/benchmarks.md, "Metrics and rate").
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MS_SSIM_MIN_SIDE",
    "MS_SSIM_WEIGHTS",
    "gaussian_taps",
    "SCORES",
    "all_metrics",
    "bpp",
    "mean_scores",
    "ms_ssim",
    "ms_ssim_db",
    "psnr",
    "score",
    "ssim",
    "ssim_gaussian",
]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_FILTER_SIZE = 11
_FILTER_SIGMA = 1.5
_UNIFORM_SIZE = 7  # scikit-image's default SSIM window
_K1, _K2 = 0.01, 0.03
_DATA_RANGE = 255.0
MS_SSIM_MIN_SIDE = (_FILTER_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1
# The per-image figures that ``mean_scores`` averages (``ms-ssim-db`` is derived from the mean).
SCORES = ("bpp", "psnr", "ssim", "ssim-gaussian", "ms-ssim")


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` are equal-shaped (H, W, 3) uint8 arrays."""
    for name, img in (("a", a), ("b", b)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise ValueError(
                f"{name} must be a uint8 numpy array, got {type(img).__name__} "
                f"of dtype {getattr(img, 'dtype', None)}"
            )
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (H, W, 3), got {img.shape}")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")


def bpp(n_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a coded image.

    Args:
        n_bytes: length of the whole coded file (headers included), in bytes.
        height: height of the original image in pixels.
        width: width of the original image in pixels.

    Returns:
        ``8 * n_bytes / (height * width)``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    return 8.0 * n_bytes / (height * width)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """RGB PSNR in dB with peak 255.

    Args:
        a: (H, W, 3) uint8 reference image.
        b: (H, W, 3) uint8 reconstruction.

    Returns:
        ``10 log10(255^2 / MSE)`` with one MSE over all pixels and channels; ``inf`` when
        the images are identical.
    """
    _check_pair(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(_DATA_RANGE**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image's default SSIM (7x7 uniform window), averaged over pixels and channels.

    Args:
        a: (H, W, 3) uint8 reference image, both sides >= 7.
        b: (H, W, 3) uint8 reconstruction.

    Returns:
        Mean SSIM in [-1, 1]; 1.0 for identical images.
    """
    _check_pair(a, b)
    taps = np.full(_UNIFORM_SIZE, 1.0 / _UNIFORM_SIZE)
    return _ssim_mean(a, b, taps, covariance=_UNIFORM_SIZE**2 / (_UNIFORM_SIZE**2 - 1.0))


def ssim_gaussian(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 SSIM: 11x11 Gaussian window (sigma 1.5), population covariance.

    Args:
        a: (H, W, 3) uint8 reference image, both sides >= 11.
        b: (H, W, 3) uint8 reconstruction.

    Returns:
        Mean SSIM in [-1, 1] over pixels and channels; 1.0 for identical images.
    """
    _check_pair(a, b)
    return _ssim_mean(a, b, gaussian_taps(), covariance=1.0)


def _ssim_mean(a: np.ndarray, b: np.ndarray, taps: np.ndarray, covariance: float) -> float:
    """Mean SSIM of (H, W, C) uint8 images over the windows inside the image and the channels
    (``_ssim_terms`` with window ``taps`` and (co)variance factor ``covariance``)."""
    if min(a.shape[:2]) < len(taps):
        raise ValueError(f"SSIM needs both sides >= {len(taps)} px, got {a.shape[0]}x{a.shape[1]}")
    ssim_c, _ = _ssim_terms(a.astype(np.float64), b.astype(np.float64), taps, covariance)
    return float(ssim_c.mean())


def gaussian_taps() -> np.ndarray:
    """(11,) float64 normalised Gaussian taps, sigma 1.5 (tf's ``_fspecial_gauss`` factors)."""
    coords = np.arange(_FILTER_SIZE, dtype=np.float64) - (_FILTER_SIZE - 1) / 2.0
    g = np.exp(-0.5 * coords**2 / _FILTER_SIGMA**2)
    return g / g.sum()


def _filter_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the first two axes of (H, W, C) float64 by ``taps`` (n,):
    (H - n + 1, W - n + 1, C), each output the weighted sum of the window below and right of it."""
    n = len(taps)
    h, w = x.shape[0] - n + 1, x.shape[1] - n + 1
    y = taps[0] * x[:h]
    for k in range(1, n):
        y += taps[k] * x[k : k + h]
    z = taps[0] * y[:, :w]
    for k in range(1, n):
        z += taps[k] * y[:, k : k + w]
    return z


def _ssim_terms(
    x: np.ndarray, y: np.ndarray, taps: np.ndarray, covariance: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel SSIM and contrast-structure means of (H, W, C) float64 images: two (C,).

    ``taps``: the separable window (valid filtering); ``covariance``: the factor on the window's
    (co)variances, n / (n - 1) for sample covariances of n-pixel windows, 1 for population ones.
    """
    c1 = (_K1 * _DATA_RANGE) ** 2
    c2 = (_K2 * _DATA_RANGE) ** 2
    mu_x = _filter_valid(x, taps)
    mu_y = _filter_valid(y, taps)
    num0 = 2.0 * mu_x * mu_y
    den0 = mu_x**2 + mu_y**2
    luminance = (num0 + c1) / (den0 + c1)
    num1 = 2.0 * _filter_valid(x * y, taps)
    den1 = _filter_valid(x**2 + y**2, taps)
    cs = (covariance * (num1 - num0) + c2) / (covariance * (den1 - den0) + c2)
    return (luminance * cs).mean(axis=(0, 1)), cs.mean(axis=(0, 1))


def _downsample(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (H, W, C); odd sides are first padded symmetrically by one."""
    pad = [(0, x.shape[0] % 2), (0, x.shape[1] % 2), (0, 0)]
    x = np.pad(x, pad, mode="symmetric")
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Five-scale MS-SSIM (Wang et al. 2003), averaged over R, G and B; matches tf.image.

    Args:
        a: (H, W, 3) uint8 reference image, both sides >= ``MS_SSIM_MIN_SIDE`` (161).
        b: (H, W, 3) uint8 reconstruction.

    Returns:
        MS-SSIM in [0, 1]; 1.0 for identical images.

    Raises:
        ValueError: if a side is shorter than 161 pixels (the fifth scale would be smaller
            than the 11x11 window), or on a shape/dtype mismatch.
    """
    _check_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"ms_ssim needs both sides >= {MS_SSIM_MIN_SIDE} px for 5 scales of an "
            f"{_FILTER_SIZE}x{_FILTER_SIZE} window, got {a.shape[0]}x{a.shape[1]}"
        )
    taps = gaussian_taps()
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    factors = []
    for scale in range(len(MS_SSIM_WEIGHTS)):
        if scale > 0:
            x, y = _downsample(x), _downsample(y)
        ssim_c, cs_c = _ssim_terms(x, y, taps)
        factors.append(np.maximum(cs_c, 0.0))
    factors[-1] = np.maximum(ssim_c, 0.0)
    weights = np.asarray(MS_SSIM_WEIGHTS)[:, None]
    per_channel = np.prod(np.stack(factors) ** weights, axis=0)
    return float(per_channel.mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``-10 log10(1 - value)`` (``inf`` for 1.0)."""
    if value >= 1.0:
        return math.inf
    return float(-10.0 * math.log10(1.0 - value))


def all_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Every distortion metric of this module, keyed as in the benchmark results.

    Args:
        a: (H, W, 3) uint8 reference image.
        b: (H, W, 3) uint8 reconstruction.

    Returns:
        ``{"psnr", "ssim", "ssim-gaussian", "ms-ssim", "ms-ssim-db"}``; the two MS-SSIM
        entries are NaN when the image is too small for five scales.
    """
    out = {"psnr": psnr(a, b), "ssim": ssim(a, b), "ssim-gaussian": ssim_gaussian(a, b)}
    if min(a.shape[:2]) >= MS_SSIM_MIN_SIDE:
        out["ms-ssim"] = ms_ssim(a, b)
        out["ms-ssim-db"] = ms_ssim_db(out["ms-ssim"])
    else:
        out["ms-ssim"] = out["ms-ssim-db"] = math.nan
    return out


def score(original: np.ndarray, decoded: np.ndarray, n_bytes: int) -> dict[str, float | int]:
    """Rate and quality of one coded image, keyed as in the benchmark results.

    Args:
        original: (H, W, 3) uint8 reference image.
        decoded: (H, W, 3) uint8 image decoded from the coded file.
        n_bytes: length of the whole coded file (headers included), in bytes.

    Returns:
        ``{"height", "width", "bytes", "bpp"}`` and the metrics of ``all_metrics``
        (``"psnr", "ssim", "ssim-gaussian", "ms-ssim", "ms-ssim-db"``; the MS-SSIM entries NaN
        below 161 px).
    """
    height, width = original.shape[:2]
    return {
        "height": height,
        "width": width,
        "bytes": n_bytes,
        "bpp": bpp(n_bytes, height, width),
        **all_metrics(original, decoded),
    }


def mean_scores(records: list[dict]) -> dict[str, float | None]:
    """Means over images of the ``SCORES`` of ``score`` records (CompressAI convention).

    A mean that is NaN (MS-SSIM of images under 161 px) is None, as JSON has no NaN;
    ``ms-ssim-db`` is computed from the mean MS-SSIM, as for published curves.

    Args:
        records: one dict per image with at least the keys of ``SCORES``.

    Returns:
        ``{"bpp", "psnr", "ssim", "ssim-gaussian", "ms-ssim", "ms-ssim-db"}``.
    """
    out: dict[str, float | None] = {}
    for key in SCORES:
        mean = float(np.mean([r[key] for r in records]))
        out[key] = None if math.isnan(mean) else mean
    out["ms-ssim-db"] = None if out["ms-ssim"] is None else ms_ssim_db(out["ms-ssim"])
    return out
