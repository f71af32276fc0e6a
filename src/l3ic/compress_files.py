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

from .errors import L3ICError, one_line
from .image import read_image
from .rate_control import DEFAULT_QUALITY

__all__ = ["BATCH", "Compressed", "compress_files"]

BATCH = 16  # files that a worker reads and compresses together (convert, shards)


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


def compress_files(
    codec, paths: Sequence[Path], drop_alpha: bool = False, quality: float = DEFAULT_QUALITY
) -> list[Compressed]:
    """Compresses the image files ``paths`` with ``codec`` (an ``l3ic.Codec``), in one batch.

    Args:
        codec: the Codec to compress with.
        paths: image files; all are held in memory at once (callers pass ``BATCH`` at a time).
        drop_alpha: compress RGBA images without their alpha channel (else they fail).
        quality: 0..100, as ``l3ic.compress``'s.

    Returns:
        One ``Compressed`` per path, in order. Errors (``L3ICError``, ``OSError``) are reported
        there, never raised.
    """
    results = [Compressed() for _ in paths]
    images = {}
    for i, path in enumerate(paths):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                images[i] = read_image(path)
            except (L3ICError, OSError) as e:
                results[i].failed = one_line(e)
        results[i].warnings = [one_line(str(w.message)) for w in caught]
    batch = list(images)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            datas = codec.compress_batch(
                [images[i] for i in batch], drop_alpha=drop_alpha, quality=quality
            )
        except L3ICError:
            datas = None
    if datas is None or caught:  # one by one: each failure and warning with its own file
        datas = []
        for i in batch:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    datas.append(codec.compress(images[i], drop_alpha=drop_alpha, quality=quality))
                except L3ICError as e:
                    datas.append(None)
                    results[i].failed = one_line(e)
            results[i].warnings += [one_line(str(w.message)) for w in caught]
    for i, data in zip(batch, datas, strict=True):
        if data is not None:
            results[i].data, results[i].shape = data, images[i].shape[:2]
    return results
