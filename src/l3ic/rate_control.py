"""The quality knob: a file's quantisation scale, from a quality or searched to fit a size.

A file coded at scale s holds q = round(s z) (``codebook.quantize``) and decodes from q / s:
a larger s makes finer steps, more bits and (within the range the decoder was trained on)
better quality; s = 1 is the preset as trained (docs/quality.md has the measured rates).

- ``quality_scale``: quality 0..100 -> s, one rule for every preset, on the 1/1024 grid a file
  stores: 2 ** (1.5 (quality - 50) / 50) up to 50 and 2 ** (0.75 (quality - 50) / 50) from 50,
  so 0.354 at quality 0, 1 at 50 and 1.68 at 100. Measured on the validation split
  (docs/quality.md): s = 0.354 codes about 0.44-0.5x the rate of s = 1, and the presets trained
  with scales in [0.5, 2] reach their best SSIM near s = 1.68; past it a file only grows.
- ``fit_scale``: the largest scale whose file is at most a number of bytes. The latent z is
  computed once; each try only rounds and entropy-codes it again (``pack``), at most
  ``MAX_TRIES`` times.
- ``choose_for_quality`` / ``choose_for_bpp``: when no preset is named, the preset (and scale)
  that codes a quality or a rate best, read off each preset's measured scale curve (its
  sidecar's ``scale_curve``: mean bpp and SSIM of the validation split at several scales).
  Where the presets' rates overlap, the one with the higher SSIM at that rate wins.
"""

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .codebook import MAX_SCALE, MIN_SCALE, snap_scale
from .errors import L3ICError
from .presets import DEFAULT_PRESET, PRESETS, load_sidecar

__all__ = [
    "DEFAULT_QUALITY",
    "LOW_OCTAVES",
    "HIGH_OCTAVES",
    "quality_scale",
    "fit_scale",
    "MAX_TRIES",
    "FIT_TOLERANCE",
    "check_bpp",
    "is_budget",
    "efficient_points",
    "quality_rate",
    "choose_for_quality",
    "choose_for_bpp",
    "shipped_curves",
]

DEFAULT_QUALITY = 50  # scale 1: the preset as trained
LOW_OCTAVES, HIGH_OCTAVES = 1.5, 0.75  # quality 0 is s = 2 ** -1.5, quality 100 s = 2 ** 0.75
MAX_TRIES = 10  # entropy codings per fitted file, at most (one more when none fits)
FIT_TOLERANCE = 0.015  # a fitted file within 1.5 % under its budget stops the search
_SLOPE = 0.9  # d log(bytes) / d log(s), roughly, for the first step (measured: 0.8-1)


def quality_scale(quality: float) -> float:
    """The scale of ``quality`` on the 1/1024 grid: 2 ** (1.5 (quality - 50) / 50) up to 50,
    2 ** (0.75 (quality - 50) / 50) from 50 (0.354 at 0, 1 at 50, 1.68 at 100).

    Args:
        quality: 0..100 (any real number in that range); 50 is the preset as trained.

    Raises:
        L3ICError: not a number within 0..100.
    """
    if isinstance(quality, bool) or not isinstance(quality, int | float):
        raise L3ICError(f"quality must be a number from 0 to 100, not {quality!r}")
    if not 0 <= quality <= 100:  # also refuses NaN
        raise L3ICError(f"quality must be from 0 to 100, not {quality}")
    octaves = LOW_OCTAVES if quality < DEFAULT_QUALITY else HIGH_OCTAVES
    return snap_scale(2.0 ** (octaves * (quality - DEFAULT_QUALITY) / 50.0))


def check_bpp(bpp) -> None:
    """Raises ``L3ICError`` unless ``bpp`` (a bits-per-pixel budget) is a number above 0."""
    if isinstance(bpp, bool) or not isinstance(bpp, int | float):
        raise L3ICError(f"bpp must be a number, not {bpp!r}")
    if not bpp > 0:
        raise L3ICError(f"bpp must be more than 0, not {bpp}")


def is_budget(max_bytes) -> bool:
    """Whether ``max_bytes`` is a size budget: a whole number of bytes, 1 or more."""
    return not isinstance(max_bytes, bool) and isinstance(max_bytes, int) and max_bytes >= 1


def fit_scale(
    pack: Callable[[float], bytes], max_bytes: int, what: str = "the file"
) -> tuple[float, bytes]:
    """The largest scale (found in at most ``MAX_TRIES`` codings) whose file has at most
    ``max_bytes`` bytes, and that file.

    The search runs on log(bytes) against log(scale), which is close to a line: a first step
    along the usual slope from scale 1, then interpolation between the nearest scales under and
    over the budget (halving the interval where interpolation would not shrink it). It stops
    once a file is within ``FIT_TOLERANCE`` under the budget, when the scales left to try are
    one grid step apart, or after ``MAX_TRIES`` codings; it returns the largest fitting file
    found. If none of those fits, it codes once more at the smallest scale.

    Args:
        pack: scale (a multiple of 1/1024 in 0.125..8) -> the file's bytes at that scale.
        max_bytes: the budget, at least 1.
        what: the file's name in the error message.

    Raises:
        L3ICError: even the smallest scale (0.125) makes a larger file.
    """
    if not is_budget(max_bytes):
        raise L3ICError(
            f"the size budget must be a whole number of bytes, 1 or more: {max_bytes!r}"
        )
    tried: dict[float, bytes] = {}

    def attempt(scale: float) -> None:
        tried[scale] = pack(scale)

    def fits() -> list[float]:
        return sorted(s for s, data in tried.items() if len(data) <= max_bytes)

    target = math.log((1 - FIT_TOLERANCE / 2) * max_bytes)  # aim inside the tolerated band
    scale = 1.0
    while len(tried) < MAX_TRIES:
        attempt(scale)
        under, over = fits(), sorted(s for s in tried if s not in fits())
        if under and len(tried[under[-1]]) >= (1 - FIT_TOLERANCE) * max_bytes:
            break
        lo, hi = (under[-1] if under else None), (over[0] if over else None)
        if lo is not None and hi is not None:
            a, b = math.log(lo), math.log(hi)
            fa, fb = math.log(len(tried[lo])), math.log(len(tried[hi]))
            guess = a + (target - fa) * (b - a) / (fb - fa) if fb > fa else (a + b) / 2
            if not a + 0.1 * (b - a) <= guess <= b - 0.1 * (b - a):
                guess = (a + b) / 2  # too close to an end: halve instead
        elif lo is not None:  # everything tried fits: larger
            if lo >= MAX_SCALE:
                break
            guess = math.log(lo) + (target - math.log(len(tried[lo]))) / _SLOPE
        else:  # nothing fits yet: smaller
            if hi <= MIN_SCALE:
                break
            guess = math.log(hi) + (target - math.log(len(tried[hi]))) / _SLOPE
        scale = snap_scale(min(MAX_SCALE, max(MIN_SCALE, math.exp(guess))))
        if scale in tried:  # the grid's resolution reached
            break
    if not fits() and MIN_SCALE not in tried:  # one more coding: the smallest file there is
        attempt(MIN_SCALE)
    under = fits()
    if not under:
        smallest = min(tried)
        raise L3ICError(
            f"{what} cannot be made {max_bytes:,} bytes or smaller: at scale {smallest} "
            f"(quality 0 is {quality_scale(0):g}) it has {len(tried[smallest]):,} bytes; use a "
            "preset with fewer channels or a larger budget"
        )
    return under[-1], tried[under[-1]]


# ----- which preset, when none is named ------------------------------------------------------
# A curve is a list of points {"scale", "bpp", "ssim", ...} (means over the validation split at
# each scale, ``l3ic.evaluate.scale_curve``), one per scale, in increasing scale.


def efficient_points(curve: Sequence[Mapping]) -> list[Mapping]:
    """The points of a curve worth coding at: increasing scale, each with more bits and a
    higher SSIM than every point before it. Past the scales a decoder was trained on, SSIM
    falls while the bits still rise; those points are dropped."""
    kept: list[Mapping] = []
    for point in sorted(curve, key=lambda p: p["scale"]):
        if not kept or (point["bpp"] > kept[-1]["bpp"] and point["ssim"] > kept[-1]["ssim"]):
            kept.append(point)
    return kept


def _at(points: Sequence[Mapping], log_bpp: float, key: str) -> float:
    """``key`` interpolated linearly in ln(bpp) (scale in ln(scale)) along ``points``."""
    x = np.log([p["bpp"] for p in points])
    if key == "scale":
        return float(np.exp(np.interp(log_bpp, x, np.log([p["scale"] for p in points]))))
    return float(np.interp(log_bpp, x, [p[key] for p in points]))


def _winner(curves: Mapping[str, Sequence[Mapping]], log_bpp: float) -> str:
    """The preset that codes ln(bpp) best among those whose efficient points span it: the highest
    SSIM + MS-SSIM there (SSIM alone where a curve has no MS-SSIM); where none spans it, the
    preset whose points end nearest to it.

    Both metrics count because they part where presets overlap: a preset at its lowest scales
    keeps its SSIM better than its MS-SSIM, so choosing by SSIM alone took 64c at s = 0.54 over
    32c at s = 1.36 on the validation split for no SSIM (0.0004 either way) and -0.0085 MS-SSIM
    (docs/quality.md)."""
    spans = {name: np.log([pts[0]["bpp"], pts[-1]["bpp"]]) for name, pts in curves.items()}
    covering = [name for name, (lo, hi) in spans.items() if lo <= log_bpp <= hi]
    if covering:
        keys = ["ssim"]
        if all(p.get("ms-ssim") is not None for name in covering for p in curves[name]):
            keys.append("ms-ssim")
        return max(covering, key=lambda name: sum(_at(curves[name], log_bpp, k) for k in keys))
    return min(
        spans, key=lambda name: min(abs(log_bpp - spans[name][0]), abs(log_bpp - spans[name][1]))
    )


def _efficient(curves: Mapping[str, Sequence[Mapping]]) -> dict[str, list[Mapping]]:
    found = {name: efficient_points(curve) for name, curve in curves.items() if curve}
    if not found:
        raise L3ICError("no preset has a scale curve to choose by: name a preset")
    return found


def quality_rate(curves: Mapping[str, Sequence[Mapping]], quality: float, default: str) -> float:
    """The validation bpp that ``quality`` (0..100) stands for when no preset is named.

    One log scale for all presets: 50 is ``default``'s rate at scale 1 (the default file), 0
    the least rate of any preset's efficient points and 100 the greatest, linear in ln(bpp)
    from 0 to 50 and from 50 to 100. ``curves``: {preset: curve}.
    """
    quality_scale(quality)  # the same checks
    return math.exp(_log_rate(curves, _efficient(curves), quality, default))


def _log_rate(
    curves: Mapping[str, Sequence[Mapping]],
    points: Mapping[str, Sequence[Mapping]],
    quality: float,
    default: str,
) -> float:
    """ln of ``quality_rate``, given the curves' efficient points (``_efficient(curves)``)."""
    lowest = min(math.log(p[0]["bpp"]) for p in points.values())
    highest = max(math.log(p[-1]["bpp"]) for p in points.values())
    if default in curves:
        mid = min(highest, max(lowest, math.log(_scale_one_bpp(curves[default]))))
    else:  # the default preset has no curve: the middle of the range
        mid = (lowest + highest) / 2
    if quality <= DEFAULT_QUALITY:
        return lowest + (mid - lowest) * quality / DEFAULT_QUALITY
    return mid + (highest - mid) * (quality - DEFAULT_QUALITY) / (100 - DEFAULT_QUALITY)


def _scale_one_bpp(curve: Sequence[Mapping]) -> float:
    """The bpp of a curve at scale 1 (interpolated in ln(scale) if 1 was not measured)."""
    pts = sorted(curve, key=lambda p: p["scale"])
    log_bpp = np.interp(0.0, np.log([p["scale"] for p in pts]), np.log([p["bpp"] for p in pts]))
    return float(np.exp(log_bpp))


def choose_for_quality(
    quality: float,
    curves: Mapping[str, Sequence[Mapping]] | None = None,
    default: str = DEFAULT_PRESET,
) -> tuple[str, float]:
    """(preset, scale) for a quality when no preset is named: the rate ``quality_rate`` gives,
    coded by the preset that wins there, at the scale that gives that rate on its curve.

    Args:
        quality: 0..100; 50 gives ``default`` at scale 1 wherever ``default`` wins at its own
            rate (the shipped presets: 32c).
        curves: {preset: curve}; default ``shipped_curves()``.
        default: the preset of quality 50.

    Raises:
        L3ICError: a bad quality, or no preset with a curve.
    """
    quality_scale(quality)  # the same checks
    curves = shipped_curves() if curves is None else curves
    points = _efficient(curves)
    log_bpp = _log_rate(curves, points, quality, default)
    preset = _winner(points, log_bpp)
    return preset, snap_scale(_at(points[preset], log_bpp, "scale"))


def choose_for_bpp(bpp: float, curves: Mapping[str, Sequence[Mapping]] | None = None) -> str:
    """The preset to fit a file of ``bpp`` bits per pixel with (``fit_scale`` then finds its
    scale): the one with the highest validation SSIM + MS-SSIM at that rate; below or above
    every preset's efficient range, the preset whose range ends nearest.

    Args:
        bpp: bits per pixel, above 0.
        curves: {preset: curve}; default ``shipped_curves()``.
    """
    check_bpp(bpp)
    return _winner(_efficient(shipped_curves() if curves is None else curves), math.log(bpp))


def shipped_curves() -> dict[str, list[Mapping]]:
    """{preset: its sidecar's scale curve} for every installed preset whose sidecar holds one
    measured on its weights (the curve's fingerprint is the sidecar's)."""
    curves = {}
    for name in PRESETS:
        try:
            sidecar = load_sidecar(name)
        except L3ICError:  # not installed
            continue
        curve = sidecar.get("scale_curve") or {}
        if curve.get("fingerprint") == sidecar.get("fingerprint") and curve.get("points"):
            curves[name] = curve["points"]
    return curves
