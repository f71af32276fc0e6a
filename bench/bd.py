"""Bjøntegaard delta rate and delta distortion (VCEG-M33) between two RD curves.

BD-rate is the average difference of ln(rate) between the test and the anchor curve over the
distortion interval both curves cover, returned as a percentage: ``(exp(mean) - 1) * 100``.
Negative means the test codec needs fewer bits for the same quality. BD-distortion is the
average distortion difference over the common ln(rate) interval (in the metric's units, e.g.
dB for PSNR).

``method="cubic"`` is Bjøntegaard's fit: a polynomial of degree ``min(3, n - 1)`` per curve
(so three points give a quadratic; two a line). Only the points inside the common interval, plus
the nearest point beyond each end, enter a curve's fit, so a long classic sweep is fitted
where it is compared rather than over its whole range. ``method="pchip"`` integrates a
monotone piecewise-cubic (PCHIP) interpolant through all points instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

__all__ = ["bd_distortion", "bd_rate", "overlap"]

Method = Literal["cubic", "pchip"]


def _curve(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve and return it as float64 arrays sorted by x: two (n,)."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(f"{what}: x and y must be 1-D of equal length, got {xa.shape}, {ya.shape}")
    if len(xa) < 2:
        raise ValueError(f"{what}: need at least 2 points, got {len(xa)}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError(f"{what}: values must be finite, got x={xa.tolist()}, y={ya.tolist()}")
    order = np.argsort(xa, kind="stable")
    return xa[order], ya[order]


def overlap(x_a: np.ndarray, x_t: np.ndarray) -> tuple[float, float]:
    """Common interval of two sorted abscissae; ``ValueError`` if they do not overlap."""
    lo, hi = max(x_a[0], x_t[0]), min(x_a[-1], x_t[-1])
    if not hi > lo:
        raise ValueError(
            f"curves do not overlap: [{x_a[0]:.4g}, {x_a[-1]:.4g}] vs [{x_t[0]:.4g}, {x_t[-1]:.4g}]"
        )
    return float(lo), float(hi)


def _window(x: np.ndarray, lo: float, hi: float) -> slice:
    """Indices of the points within [lo, hi] plus one neighbour beyond each end."""
    start = max(int(np.searchsorted(x, lo, side="right")) - 1, 0)
    stop = min(int(np.searchsorted(x, hi, side="left")) + 1, len(x))
    return slice(start, stop)


def _mean_value(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: Method) -> float:
    """Mean of the fitted y(x) over [lo, hi] for one sorted curve."""
    if method == "cubic":
        win = _window(x, lo, hi)
        t = (x[win] - lo) / (hi - lo)  # fit on [0, 1] for conditioning (SSIM spans ~0.1)
        integral = np.polyint(np.polyfit(t, y[win], min(3, len(t) - 1)))
        return float(np.polyval(integral, 1.0) - np.polyval(integral, 0.0))
    if method == "pchip":
        if np.any(np.diff(x) <= 0):
            raise ValueError(f"pchip needs strictly increasing x, got {x.tolist()}")
        return float(PchipInterpolator(x, y).integrate(lo, hi)) / (hi - lo)
    raise ValueError(f"method must be 'cubic' or 'pchip', got {method!r}")


def bd_rate(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    method: Method = "cubic",
) -> float:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent.

    Args:
        rate_anchor: (n,) anchor rates (bpp), all > 0.
        dist_anchor: (n,) anchor quality, higher is better (PSNR dB, MS-SSIM dB, SSIM).
        rate_test: (m,) test rates (bpp), all > 0.
        dist_test: (m,) test quality.
        method: "cubic" (Bjøntegaard polynomial fit) or "pchip".

    Returns:
        Average rate difference at equal quality, percent (negative = test is better).
    """
    if min(np.min(rate_anchor), np.min(rate_test)) <= 0:
        raise ValueError("rates must be positive")
    da, la = _curve(dist_anchor, np.log(rate_anchor), "anchor")
    dt, lt = _curve(dist_test, np.log(rate_test), "test")
    lo, hi = overlap(da, dt)
    diff = _mean_value(dt, lt, lo, hi, method) - _mean_value(da, la, lo, hi, method)
    return (math.exp(diff) - 1.0) * 100.0


def bd_distortion(
    rate_anchor: Sequence[float],
    dist_anchor: Sequence[float],
    rate_test: Sequence[float],
    dist_test: Sequence[float],
    method: Method = "cubic",
) -> float:
    """Bjøntegaard delta distortion (e.g. BD-PSNR in dB) of the test curve against the anchor.

    Args: as ``bd_rate``.

    Returns:
        Average quality difference at equal rate, in the metric's units (positive = better).
    """
    if min(np.min(rate_anchor), np.min(rate_test)) <= 0:
        raise ValueError("rates must be positive")
    la, da = _curve(np.log(rate_anchor), dist_anchor, "anchor")
    lt, dt = _curve(np.log(rate_test), dist_test, "test")
    lo, hi = overlap(la, lt)
    return _mean_value(lt, dt, lo, hi, method) - _mean_value(la, da, lo, hi, method)
