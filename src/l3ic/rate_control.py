"""The quality knob: a file's quantisation scale, from a quality or searched to fit a size.

A file coded at scale s holds q = round(s z) (``codebook.quantize``) and decodes from q / s:
a larger s makes finer steps, more bits and (within the range the decoder was trained on)
better quality; s = 1 is the preset as trained (docs/quality.md has the measured rates).

- ``quality_scale``: quality 0..100 -> s = 2 ** ((quality - 50) / 50), so 0.5 at quality 0, 1 at
  50 and 2 at 100, on the 1/1024 grid a file stores. One rule for every preset.
- ``fit_scale``: the largest scale whose file is at most a number of bytes. The latent z is
  computed once; each try only rounds and entropy-codes it again (``pack``), at most
  ``MAX_TRIES`` times.
"""

import math
from collections.abc import Callable

from .codebook import MAX_SCALE, MIN_SCALE, snap_scale
from .errors import L3ICError

__all__ = ["DEFAULT_QUALITY", "quality_scale", "fit_scale", "MAX_TRIES", "FIT_TOLERANCE"]

DEFAULT_QUALITY = 50  # scale 1: the preset as trained
MAX_TRIES = 10  # entropy codings per fitted file, at most (one more when none fits)
FIT_TOLERANCE = 0.015  # a fitted file within 1.5 % under its budget stops the search
_SLOPE = 0.9  # d log(bytes) / d log(s), roughly, for the first step (measured: 0.8-1)


def quality_scale(quality: float) -> float:
    """The scale of ``quality``: 2 ** ((quality - 50) / 50) on the 1/1024 grid.

    Args:
        quality: 0..100 (any real number in that range); 50 is the preset as trained.

    Raises:
        L3ICError: not a number within 0..100.
    """
    if isinstance(quality, bool) or not isinstance(quality, int | float):
        raise L3ICError(f"quality must be a number from 0 to 100, not {quality!r}")
    if not 0 <= quality <= 100:  # also refuses NaN
        raise L3ICError(f"quality must be from 0 to 100, not {quality}")
    return snap_scale(2.0 ** ((quality - DEFAULT_QUALITY) / 50.0))


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
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
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
            f"(quality 0 is 0.5) it has {len(tried[smallest]):,} bytes; use a preset with fewer "
            "channels or a larger budget"
        )
    return under[-1], tried[under[-1]]
