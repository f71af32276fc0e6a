"""bench.report: reading curves at a quality or a rate, and the point-by-point table of the
summary, on curves whose answers are known in closed form."""

from __future__ import annotations

import json
import math

import pytest

from bench.report import bpp_at, rising, value_at, write_report


def _curve(bpp: float) -> tuple[float, float]:
    """(SSIM, PSNR) of a made-up codec: both linear in ln(bpp)."""
    return 0.9 + 0.05 * math.log(bpp), 30.0 + 4.0 * math.log(bpp)


def _doc(name: str, quality: list, bpps: list[float], learned: bool, unit: str = "q") -> dict:
    ssim = [_curve(b)[0] for b in bpps]
    psnr = [_curve(b)[1] for b in bpps]
    n = len(bpps)
    return {
        "name": name,
        "description": f"{name}, made up",
        "meta": {
            "dataset": "made-up",
            "images": 2,
            "quality_unit": unit,
            "learned": learned,
            "label": name.upper(),
        },
        "results": {
            "quality": quality,
            "bpp": bpps,
            "psnr": psnr,
            "ssim": ssim,
            "ssim-gaussian": ssim,
            "ms-ssim": [None] * n,
            "ms-ssim-db": [None] * n,
            "encoding_time": [0.1] * n,
            "decoding_time": [0.1] * n,
        },
    }


def test_value_at_and_bpp_at_invert_each_other():
    bpps = [0.25, 0.5, 1.0, 2.0]
    psnr = [_curve(b)[1] for b in bpps]
    assert value_at(bpps, psnr, 0.7) == pytest.approx(_curve(0.7)[1], abs=1e-9)
    assert bpp_at(bpps, psnr, _curve(0.7)[1]) == pytest.approx(0.7, rel=1e-9)
    assert value_at(bpps, psnr, 0.2) is None and value_at(bpps, psnr, 2.5) is None


def test_summary_compares_each_preset_point_by_point(tmp_path):
    classic = _doc("slow", [10, 20, 30, 40], [0.125, 0.25, 0.5, 1.0], learned=False)
    # The preset at 0.5 bpp reaches the SSIM the classic codec reaches at 0.25: twice the bits.
    preset = _doc("mine", ["a"], [0.5], learned=True, unit="preset")
    preset["results"]["ssim"] = [_curve(0.25)[0]]
    preset["results"]["psnr"] = [29.0]
    for doc in (classic, preset):
        (tmp_path / f"{doc['name']}.json").write_text(json.dumps(doc))
    write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    table = summary.split("## MINE point by point")[1].split("##")[0]
    rows = [r for r in table.splitlines() if r.startswith("| ")]
    assert rows[0].startswith("| codec | bpp at SSIM 0.831 (a) | PSNR dB at 0.500 bpp (a) |")
    assert rows[1] == "| MINE (measured points) | 0.500 | 29.00 |"
    assert rows[2] == f"| SLOW | 0.250 (2.00x) | {_curve(0.5)[1]:.2f} |"


def test_bd_rates_fit_only_the_rising_part_of_a_learned_curve(tmp_path):
    classic = _doc("slow", [10, 20, 30, 40], [0.125, 0.25, 0.5, 1.0], learned=False)
    # The same curve at half the bits, then a last point that spends more for less quality.
    mine = _doc("mine", [0, 50, 100], [0.0625, 0.25, 0.6], learned=True)
    for key in ("ssim", "psnr"):
        mine["results"][key][2] = mine["results"][key][1] - 0.01
    for i, b in enumerate([0.125, 0.5]):
        mine["results"]["ssim"][i], mine["results"]["psnr"][i] = _curve(b)
    mine["results"]["bpp"][:2] = [0.0625, 0.25]
    for doc in (classic, mine):
        (tmp_path / f"{doc['name']}.json").write_text(json.dumps(doc))
    write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    row = next(r for r in summary.splitlines() if r.startswith("| MINE (3 pts) | SLOW |"))
    assert row.split("|")[3].strip() == "-50.0 %"  # PSNR: half the bits
    assert "## MINE point by point" not in summary  # only for the presets as trained
    assert rising([1.0, 0.5, 2.0], [3.0, 2.0, 2.5]) == ([0.5, 1.0], [2.0, 3.0])
