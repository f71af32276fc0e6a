"""Tables and plots of one results folder, rebuilt from every ``<codec>.json`` in it.

Writes ``average.csv``, ``rd_<metric>.png`` and ``summary.md`` (codecs and versions, bpp needed
at the published l3ic SSIMs, BD-rates of l3ic against each classic codec, and of every codec
against JPEG 4:2:0 for reference).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import PchipInterpolator

from bench.bd import bd_rate
from bench.plot import METRIC_LABELS, Series, load_published, plot_rd, series_from_results

__all__ = ["bpp_at", "machine", "rising", "value_at", "write_report"]

TARGET_SSIMS = (0.879, 0.922, 0.956)
PUBLISHED_L3IC_BPP = (0.50, 0.81, 1.41)
BD_METRICS = {"psnr": "PSNR", "ms-ssim-db": "MS-SSIM (dB)", "ssim": "SSIM (skimage)"}
ANCHOR = "jpeg420"


def machine() -> str:
    """CPU model name (as ``lscpu`` shows it) and logical core count."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical cores"


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Our codec result documents in ``folder``, classic codecs first, in name order."""
    docs = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        if "results" in doc and "meta" in doc:
            docs.append(doc)
    return sorted(docs, key=lambda d: (bool(d["meta"].get("learned")), d["name"]))


def _interpolate(x: np.ndarray, y: np.ndarray, at: float) -> float | None:
    """``y`` at ``x = at`` along a monotone piecewise cubic (PCHIP), or None outside ``x``'s range.

    Args:
        x: (n,) float64 abscissae, in any order; repeated values keep their first point.
        y: (n,) float64 values at ``x``.
        at: where to read the curve.
    """
    xs, idx = np.unique(x, return_index=True)
    if len(xs) < 2 or not xs[0] <= at <= xs[-1]:
        return None
    return float(PchipInterpolator(xs, y[idx])(at))


def bpp_at(bpps: list[float], values: list[float], target: float) -> float | None:
    """bpp where a curve reaches ``target`` quality, or None outside its quality range.

    ln(bpp) is interpolated as a monotone piecewise cubic (PCHIP) in quality, which follows
    a concave RD curve better than straight chords between sparse points.

    Args:
        bpps: (n,) rates of the curve.
        values: (n,) quality values (higher is better), n >= 2.
        target: quality to reach.

    Returns:
        Interpolated bpp.
    """
    lb = _interpolate(
        np.asarray(values, dtype=np.float64), np.log(np.asarray(bpps, dtype=np.float64)), target
    )
    return None if lb is None else math.exp(lb)


def value_at(bpps: list[float], values: list[float], bpp: float) -> float | None:
    """Quality a curve reaches at ``bpp``, or None outside its rate range.

    The value is interpolated as a monotone piecewise cubic (PCHIP) in ln(bpp).

    Args:
        bpps: (n,) rates of the curve.
        values: (n,) quality values at those rates, n >= 2.
        bpp: the rate to read the curve at.

    Returns:
        Interpolated quality.
    """
    return _interpolate(
        np.log(np.asarray(bpps, dtype=np.float64)),
        np.asarray(values, dtype=np.float64),
        math.log(bpp),
    )


def _pointwise_rows(classic: list[Series], test: Series) -> list[str]:
    """Markdown table: each classic codec at each point of ``test`` (a learned codec).

    For each point, the bpp a codec needs for that point's SSIM (and, in brackets, the point's
    bpp over it: above 1 the point spends more bits), then the PSNR a codec reaches at the
    point's bpp.
    """
    bpps, ssims = test.curves["ssim"]
    names = test.point_names or [f"{b:.3f} bpp" for b in bpps]
    head = [f"bpp at SSIM {s:.3f} ({n})" for s, n in zip(ssims, names, strict=True)]
    head += [f"PSNR dB at {b:.3f} bpp ({n})" for b, n in zip(bpps, names, strict=True)]
    psnrs = test.curves.get("psnr", (bpps, [None] * len(bpps)))[1]
    rows = [
        "| codec | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(head),
        f"| {test.label} (measured points) | "
        + " | ".join([f"{b:.3f}" for b in bpps] + [_fmt_cell(p, "{:.2f}") for p in psnrs])
        + " |",
    ]
    for s in classic:
        cells = []
        for b, q in zip(bpps, ssims, strict=True):
            need = bpp_at(*s.curves["ssim"], q) if "ssim" in s.curves else None
            cells.append("out of range" if need is None else f"{need:.3f} ({b / need:.2f}x)")
        for b in bpps:
            psnr = value_at(*s.curves["psnr"], b) if "psnr" in s.curves else None
            cells.append(_fmt_cell(psnr, "{:.2f}"))
        rows.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return rows


def _fmt_cell(value: float | None, spec: str) -> str:
    """A table cell: ``value`` formatted, or "out of range" for None."""
    return "out of range" if value is None else spec.format(value)


def rising(bpps: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    """The points of a curve, in increasing bpp, each better than every point before it: an
    l3ic preset past the scales its decoder was trained on spends more bits for less quality,
    and a BD fit needs a curve that rises."""
    kept_b: list[float] = []
    kept_v: list[float] = []
    for b, v in sorted(zip(bpps, values, strict=True)):
        if not kept_v or v > kept_v[-1]:
            kept_b.append(b)
            kept_v.append(v)
    return kept_b, kept_v


def _bd_cell(anchor: Series, test: Series, metric: str) -> str:
    """One BD-rate table cell: percent, or why there is none."""
    if metric not in anchor.curves or metric not in test.curves:
        return "n/a"
    try:
        value = bd_rate(*anchor.curves[metric], *rising(*test.curves[metric]))
    except ValueError as exc:
        return "no overlap" if "overlap" in str(exc) else "n/a"
    return f"{value:+.1f} %"


def _bd_table(anchors: list[Series], tests: list[Series]) -> list[str]:
    """Markdown rows: one per (test, anchor), one column per BD metric."""
    rows = [
        "| test | anchor | " + " | ".join(BD_METRICS.values()) + " |",
        "|---|---|" + "---|" * len(BD_METRICS),
    ]
    for test in tests:
        n_points = len(next(iter(test.curves.values()))[0])
        for anchor in anchors:
            cells = [_bd_cell(anchor, test, m) for m in BD_METRICS]
            rows.append(
                f"| {test.label} ({n_points} pts) | {anchor.label} | " + " | ".join(cells) + " |"
            )
    return rows


def _codec_rows(docs: list[dict[str, Any]]) -> list[str]:
    """Markdown table of the codecs in the folder."""
    rows = ["| codec | description | quality axis | sweep | bpp range |", "|---|---|---|---|---|"]
    for d in docs:
        res = d["results"]
        sweep = ", ".join(str(q) for q in res["quality"])
        rows.append(
            f"| {d['name']} | {d['description']} | {d['meta']['quality_unit']} | "
            f"{sweep} | {min(res['bpp']):.3f}-{max(res['bpp']):.3f} |"
        )
    return rows


def _target_rows(series: list[Series], dataset: str) -> list[str]:
    """Markdown table: bpp each codec needs at the published l3ic SSIMs."""
    head = " | ".join(f"SSIM {t}" for t in TARGET_SSIMS)
    rows = [f"| codec | {head} |", "|---|" + "---|" * len(TARGET_SSIMS)]
    for s in series:
        if s.kind == "published-curve" or "ssim" not in s.curves:
            continue
        if s.kind == "published-points":
            cells = [f"{b:.2f}" for b in PUBLISHED_L3IC_BPP]
        else:
            cells = [_fmt_cell(bpp_at(*s.curves["ssim"], t), "{:.3f}") for t in TARGET_SSIMS]
        rows.append(f"| {s.label} | " + " | ".join(cells) + " |")
    if dataset != "kodak-crop512":
        rows.append("")
        rows.append("The targets come from the 512 crops; on this set they are only indicative.")
    return rows


def write_report(out: Path) -> list[Path]:
    """Rebuild ``average.csv``, the RD plots and ``summary.md`` of a results folder.

    Args:
        out: a folder written by ``bench.rd`` (holding ``<codec>.json`` files).

    Returns:
        The paths written.
    """
    docs = load_results(out)
    if not docs:
        return []
    dataset = docs[0]["meta"]["dataset"]
    n_images = docs[0]["meta"]["images"]
    written = [_write_average_csv(out / "average.csv", docs)]
    ours = series_from_results(docs)
    published = load_published(dataset)
    everything = ours + published
    title = f"{dataset} ({n_images} images)"
    for metric in METRIC_LABELS:
        written.append(plot_rd(everything, metric, out / f"rd_{metric}.png", title))

    classic = [s for s in ours if s.kind == "classic"]
    learned = [s for s in ours if s.kind == "learned"]
    lines = [
        f"# RD benchmark: {dataset} ({n_images} images)",
        "",
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d')} by `python -m bench.rd` on "
        f"{machine()}, {platform.python_implementation()} {platform.python_version()}. "
        "Means over the images of per-image values; bpp from the complete coded file.",
        "",
        "## Codecs",
        "",
        *_codec_rows(docs),
        "",
        "## bpp needed at the published l3ic SSIMs",
        "",
        "ln(bpp) interpolated in SSIM along each averaged curve (monotone piecewise cubic, "
        "PCHIP). SSIM = skimage default (7x7 uniform window), as in the published figures.",
        "",
        *_target_rows(everything, dataset),
        "",
        "## BD-rate of l3ic against each classic codec",
        "",
        "Bjøntegaard (`bench.bd`, method `cubic`): per curve a polynomial of degree "
        "min(3, points - 1) in ln(bpp) over the quality range both curves cover (3 presets give "
        "a quadratic). Negative = l3ic needs fewer bits. `l3ic` is the three presets as "
        "trained; `l3ic 16c` etc. one preset over `--quality`; `l3ic (preset chosen)` is "
        "`--quality` without a preset. Of an l3ic curve only the points that rise are fitted "
        "(past the scales a preset was trained on, its quality falls as its bits rise).",
        "",
    ]
    tests = learned + [s for s in published if s.kind == "published-points"]
    if tests:
        lines += _bd_table(classic, tests)
        if any(s.kind == "published-points" for s in tests):
            lines += [
                "",
                "The published l3ic MS-SSIM is sewar's implementation, not ours; "
                "its MS-SSIM BD-rates are indicative only.",
            ]
    else:
        lines.append("No l3ic results in this folder yet (`python -m bench.rd DIR --codecs l3ic`).")
    for test in learned:
        if "ssim" in test.curves and test.unit == "preset":
            lines += [
                "",
                f"## {test.label} point by point",
                "",
                "The presets are trained unequally, so a curve through them (the BD-rates above) "
                "mixes training levels. Here each preset is compared on its own: the bpp each "
                "codec needs for the preset's SSIM (ln(bpp) interpolated in SSIM, PCHIP; in "
                "brackets the preset's bpp over it, above 1 = the preset spends more bits) and "
                "the PSNR each codec reaches at the preset's bpp (PSNR interpolated in ln(bpp), "
                "PCHIP).",
                "",
                *_pointwise_rows(classic, test),
            ]
    anchor = [s for s in classic if s.name == ANCHOR]
    others = [s for s in classic + learned if s.name != ANCHOR]
    if anchor and others:
        lines += [
            "",
            "## BD-rate of every codec against JPEG 4:2:0 (reference)",
            "",
            *_bd_table(anchor, others),
        ]
    lines += ["", "## Plots", ""]
    lines += [f"- `{p.name}`: {METRIC_LABELS[p.stem[3:]]}" for p in written if p.suffix == ".png"]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    written.append(summary)
    return written


def _write_average_csv(path: Path, docs: list[dict[str, Any]]) -> Path:
    """One row per (codec, quality) with every averaged metric."""
    fields = [
        "bpp",
        "psnr",
        "ssim",
        "ssim-gaussian",
        "ms-ssim",
        "ms-ssim-db",
        "encoding_time",
        "decoding_time",
    ]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["codec", "quality", *fields])
        for d in docs:
            res = d["results"]
            for i, q in enumerate(res["quality"]):
                writer.writerow([d["name"], q, *(_fmt(res[k][i]) for k in fields)])
    return path


def _fmt(value: float | None) -> str:
    """Six significant digits; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}"
