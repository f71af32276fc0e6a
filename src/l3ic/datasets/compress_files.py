"""Compressing many image files in batches, each file failing alone: the step that ``convert``
(.l3ic files) and ``shards`` (tar shards) share.

The files are read one by one, so an unreadable file fails with its own reason and keeps its own
warnings (a 16-bit image narrowed to 8 bits, say). The readable ones are then compressed together
(``Codec.compress_batch``: images of one size go through the encoder as one batch, which is where
a CPU's bf16 units pay: docs/runtimes.md). If the batch fails or warns, its images are compressed
one by one instead, so that a bad image (RGBA without ``drop_alpha``, say) fails alone and every
warning is told with its file.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import L3ICError, one_line
from ..image import read_image
from ..rate_control import DEFAULT_QUALITY

__all__ = ["BATCH", "Compressed", "compress_files"]

BATCH = 16  # files read and compressed together (a task of convert's workers is one batch)


@dataclass
class Compressed:
    """What became of one file.

    Attributes:
        data: the .l3ic bytes, or None if the file failed.
        shape: (H, W) of the image, or None if it failed.
        failed: a one-line reason, or None.
        warnings: one-line messages of the warnings raised for this file.
    """

    data: bytes | None = None
    shape: tuple[int, int] | None = None
    failed: str | None = None
    warnings: list[str] = field(default_factory=list)


def _attempt(fn, *args, **kwargs) -> tuple:
    """(``fn(*args, **kwargs)`` or None, the one-line reason it raised ``L3ICError`` or
    ``OSError`` or None, the one-line messages of the warnings it raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, reason = fn(*args, **kwargs), None
        except (L3ICError, OSError) as e:
            value, reason = None, one_line(e)
    return value, reason, [one_line(str(w.message)) for w in caught]


def compress_files(
    codec, paths: Sequence[Path], drop_alpha: bool = False, quality: float = DEFAULT_QUALITY
) -> list[Compressed]:
    """Compresses the image files ``paths`` with ``codec`` (an ``l3ic.Codec``), ``BATCH`` files
    at a time (the files of a batch are held in memory together).

    Args:
        codec: the Codec to compress with.
        paths: image files.
        drop_alpha: compress RGBA images without their alpha channel (else they fail).
        quality: 0..100, as ``l3ic.compress``'s.

    Returns:
        One ``Compressed`` per path, in order. Errors (``L3ICError``, ``OSError``) are reported
        there, never raised.
    """
    results = []
    for i in range(0, len(paths), BATCH):
        results += _compress_batch(codec, paths[i : i + BATCH], drop_alpha, quality)
    return results


def _compress_batch(
    codec, paths: Sequence[Path], drop_alpha: bool, quality: float
) -> list[Compressed]:
    """``compress_files`` of one batch."""
    results, images = [], {}
    for i, path in enumerate(paths):
        image, reason, caught = _attempt(read_image, path)
        results.append(Compressed(failed=reason, warnings=caught))
        if image is not None:
            images[i] = image
    datas, reason, caught = _attempt(
        codec.compress_batch, list(images.values()), drop_alpha=drop_alpha, quality=quality
    )
    if datas is None or caught:  # one by one: each failure and warning with its own file
        datas = []
        for i, image in images.items():
            data, results[i].failed, caught = _attempt(
                codec.compress, image, drop_alpha=drop_alpha, quality=quality
            )
            results[i].warnings += caught
            datas.append(data)
    for i, data in zip(images, datas, strict=True):
        if data is not None:
            results[i].data, results[i].shape = data, images[i].shape[:2]
    return results
