"""RD plots: our codecs (classic curves, l3ic presets as points) and published reference data.

Published curves are only drawn on the set they were measured on: full Kodak for the CompressAI
and tensorflow/compression curves, the Kodak 512 crops for the published l3ic points.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

__all__ = ["METRIC_LABELS", "Series", "load_published", "plot_rd", "series_from_results"]

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
METRIC_LABELS = {
    "psnr": "PSNR RGB (dB)",
    "ssim": "SSIM (skimage default: 7x7 uniform window)",
    "ms-ssim-db": "MS-SSIM (dB) = -10 log10(1 - MS-SSIM)",
    "ms-ssim": "MS-SSIM (5 scales, RGB mean)",
}
Kind = Literal["classic", "learned", "published-curve", "published-points"]
X_MAX = 2.6
Y_FLOOR = {"ssim": 0.7, "ms-ssim": 0.85}  # linear scales: keep the useful range readable


@dataclass
class Series:
    """One line or set of points of an RD plot.

    Attributes:
        label: legend text.
        kind: how it is drawn: "classic" (solid curve), "learned" (our presets, stars),
            "published-curve" (dashed), "published-points" (hollow diamonds).
        curves: metric -> (bpp list, value list); metrics a source lacks are absent.
        point_names: labels written next to points (the presets as trained), or None.
        name: codec id for our own results ("" for published data).
        unit: what our codec's points are (its ``quality_unit``: "preset" for the l3ic
            presets as trained, "quality", ...; "" for published data).
    """

    label: str
    kind: Kind
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    point_names: list[str] | None = None
    name: str = ""
    unit: str = ""


def _db(values: list[float]) -> list[float]:
    """Linear MS-SSIM values to dB."""
    return [-10.0 * math.log10(1.0 - v) for v in values]


def series_from_results(docs: list[dict[str, Any]]) -> list[Series]:
    """Series of our own ``<codec>.json`` result documents (see ``bench.rd``)."""
    out = []
    for doc in docs:
        res, meta = doc["results"], doc["meta"]
        learned = bool(meta.get("learned"))
        unit = meta.get("quality_unit", "")
        curves = {m: (res["bpp"], res[m]) for m in METRIC_LABELS if m in res and None not in res[m]}
        out.append(
            Series(
                meta.get("label", doc["name"]),
                "learned" if learned else "classic",
                curves,
                [str(q) for q in res["quality"]] if learned and unit == "preset" else None,
                doc["name"],
                unit,
            )
        )
    return out


def _compressai(path: Path, label: str) -> Series:
    """A CompressAI results JSON (psnr-rgb, ms-ssim-rgb) as a published curve."""
    res = json.loads(path.read_text())["results"]
    return Series(
        label,
        "published-curve",
        {
            "psnr": (res["bpp"], res["psnr-rgb"]),
            "ms-ssim": (res["bpp"], res["ms-ssim-rgb"]),
            "ms-ssim-db": (res["bpp"], _db(res["ms-ssim-rgb"])),
        },
    )


def _tfc_txt(path: Path) -> tuple[list[float], list[float]]:
    """A tensorflow/compression results text file: (bpp list, value list)."""
    rows = [
        line.split(",")
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [float(r[0]) for r in rows], [float(r[1]) for r in rows]


def _tfc(stem: str, label: str) -> Series:
    """PSNR and MS-SSIM curves of one tensorflow/compression method."""
    base = PUBLISHED_DIR / "tensorflow_compression"
    psnr = _tfc_txt(base / "PSNR_sRGB_RGB" / f"{stem}.txt")
    msssim = _tfc_txt(base / "MS-SSIM_sRGB_RGB" / f"{stem}.txt")
    return Series(
        label,
        "published-curve",
        {"psnr": psnr, "ms-ssim": msssim, "ms-ssim-db": (msssim[0], _db(msssim[1]))},
    )


def load_published(dataset: str) -> list[Series]:
    """Published reference series measured on ``dataset`` ("kodak" or "kodak-crop512")."""
    if dataset == "kodak":
        ca = PUBLISHED_DIR / "compressai"
        return [
            _tfc("theis-2017-iclr", "[pub] Theis 2017 CAE"),
            _tfc("balle-2018-iclr-opt-mse", "[pub] Ballé 2018 hyperprior (MSE)"),
            _compressai(
                ca / "compressai-bmshj2018-factorized_mse_cuda.json",
                "[pub] CompressAI bmshj2018-factorized (MSE)",
            ),
            _compressai(ca / "compressai-mbt2018_mse_cuda.json", "[pub] CompressAI mbt2018 (MSE)"),
            _compressai(
                ca / "compressai-cheng2020-anchor_mse_cuda.json",
                "[pub] CompressAI cheng2020-anchor (MSE)",
            ),
            _compressai(ca / "bpg_444_x265_ycbcr.json", "[pub] BPG 0.9.8 4:4:4 (CompressAI)"),
        ]
    if dataset == "kodak-crop512":
        doc = json.loads((PUBLISHED_DIR / "l3ic_published.json").read_text())
        res = doc["results"]
        return [
            Series(
                "[pub] l3ic (digitised; MS-SSIM by sewar)",
                "published-points",
                {
                    "ssim": (res["bpp"], res["ssim"]),
                    "ms-ssim": (res["bpp"], res["ms-ssim"]),
                    "ms-ssim-db": (res["bpp"], _db(res["ms-ssim"])),
                },
                list(res["quality"]),
            )
        ]
    return []


def _style(series: Series, palettes: dict[str, Any]) -> dict[str, Any]:
    """Matplotlib keyword arguments of one series: its kind's style, and the next colour of its
    kind's palette where the style has one (``palettes``: kind -> colour iterator)."""
    kind = series.kind
    if kind == "learned" and series.unit == "preset":  # the presets as trained: points
        return {"color": "black", "marker": "*", "ls": "none", "ms": 14}
    if kind == "published-points":
        return {"color": "crimson", "marker": "D", "mfc": "none", "ls": "none", "ms": 8, "mew": 1.5}
    color = next(palettes[kind])
    if kind == "classic":
        return {"color": color, "marker": ".", "lw": 1.4, "ms": 5}
    if kind == "learned":  # one l3ic curve over --quality: a bold line
        return {"color": color, "marker": "*", "lw": 2.2, "ms": 7}
    return {"color": color, "ls": "--", "lw": 1.0, "alpha": 0.85}  # a published curve


def plot_rd(series: list[Series], metric: str, path: Path, title: str) -> Path:
    """Draw one RD plot (bpp on x, ``metric`` on y) of every series that has ``metric``.

    Args:
        series: what to draw.
        metric: a key of ``METRIC_LABELS``.
        path: output PNG.
        title: figure title.

    Returns:
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(8, 5.6), dpi=100)
    palettes = {
        "classic": iter(plt.get_cmap("tab10").colors),
        "published-curve": iter(plt.get_cmap("Dark2").colors),
        "learned": iter(["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]),
    }
    visible: list[float] = []
    for s in series:
        if metric not in s.curves:
            continue
        xs, ys = s.curves[metric]
        ax.plot(xs, ys, label=s.label, **_style(s, palettes))
        visible += [y for x, y in zip(xs, ys, strict=True) if x <= X_MAX and math.isfinite(y)]
        for name, x, y in zip(s.point_names or [], xs, ys, strict=False):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, -10), fontsize=8)
    ax.set_xlim(0, X_MAX)
    if visible:
        lo, hi = max(min(visible), Y_FLOOR.get(metric, -math.inf)), max(visible)
        ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
    ax.set_xlabel("bits per pixel (bpp)")
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
