"""bench.bd: BD-rate and BD-distortion on curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.bd import bd_distortion, bd_rate

RATES = np.array([0.12, 0.2, 0.33, 0.5, 0.75, 1.1, 1.6, 2.4])
PSNR = 30 + 4.5 * np.log(RATES) - 0.3 * np.log(RATES) ** 2  # concave, like a real codec


@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("factor", [0.8, 1.25, 0.5])
def test_rate_scaled_curve(method, factor):
    assert bd_rate(RATES, PSNR, RATES * factor, PSNR, method) == pytest.approx(
        (factor - 1) * 100, abs=1e-9
    )


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_distortion_shifted_curve(method):
    assert bd_distortion(RATES, PSNR, RATES, PSNR + 0.7, method) == pytest.approx(0.7, abs=1e-9)
    assert bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-9)


def test_log_linear_curves_analytic():
    # D = 10 ln R + c: a +2 dB offset means ln R is 0.2 lower at equal D.
    test_rates = RATES[1:6]
    anchor = 10 * np.log(RATES) + 30
    test = 10 * np.log(test_rates) + 32
    assert bd_rate(RATES, anchor, test_rates, test) == pytest.approx(
        (math.exp(-0.2) - 1) * 100, abs=1e-9
    )
    assert bd_distortion(RATES, anchor, test_rates, test) == pytest.approx(2.0, abs=1e-9)


def test_three_points_against_long_sweep():
    # Three presets on the anchor curve shifted by -10 % in rate: a quadratic fits them exactly.
    dist = np.linspace(0.80, 0.98, 15)
    log_rate = -1.5 + 9.0 * (dist - 0.8) + 40.0 * (dist - 0.8) ** 2
    presets = dist[[3, 7, 11]]
    preset_rates = 0.9 * np.exp(log_rate[[3, 7, 11]])
    assert bd_rate(np.exp(log_rate), dist, preset_rates, presets) == pytest.approx(-10, abs=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="overlap"):
        bd_rate(RATES, PSNR, RATES, PSNR + 100)
    with pytest.raises(ValueError, match="2 points"):
        bd_rate(RATES, PSNR, RATES[:1], PSNR[:1])
    with pytest.raises(ValueError, match="positive"):
        bd_rate(RATES, PSNR, -RATES, PSNR)
    with pytest.raises(ValueError, match="method"):
        bd_rate(RATES, PSNR, RATES, PSNR, method="linear")
