"""The module-level functions of l3ic: compress, decompress, read_latent, imread, imwrite."""

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import container
from .codec import Codec
from .errors import L3ICError
from .image import read_image, write_atomic

__all__ = ["compress", "decompress", "read_latent", "imread", "imwrite", "get_codec"]


@functools.lru_cache(maxsize=8)
def get_codec(model: str) -> Codec:
    """The shared Codec of a preset (loaded once per process)."""
    return Codec(model)


def compress(image_or_path, model: str = "32c", drop_alpha: bool = False) -> bytes:
    """Compresses an image.

    Args:
        image_or_path: (H, W, 3) or (H, W) array (uint8; uint16 and float in [0, 1] are
            converted), or the path of an image file.
        model: "16c", "32c" or "64c".
        drop_alpha: discard an alpha channel instead of refusing RGBA input.

    Returns:
        The .l3ic file as bytes.
    """
    return get_codec(model).compress(image_or_path, drop_alpha=drop_alpha)


def _codec_for(data: bytes) -> Codec:
    return get_codec(container.parse(data).preset)


def decompress(
    data: bytes, channels: int | None = None, *, max_pixels: int | None = None
) -> np.ndarray:
    """Decodes .l3ic bytes to a (H, W, 3) uint8 image ((H, W) for grayscale files).

    Args:
        data: the .l3ic file.
        channels: progressive preview from the first ``channels`` latent channels in the
            model's importance order only (``Codec.decompress``); default all.
        max_pixels: refuse, before decoding anything, files that declare more pixels
            (default: ``$L3IC_MAX_PIXELS`` or 33.5 Mpx, ``container.DEFAULT_MAX_PIXELS``).

    Raises:
        DecompressionBombError: over the pixel limit (an ``L3ICError``).
        L3ICError: any other bad input.
    """
    return _codec_for(data).decompress(data, channels=channels, max_pixels=max_pixels)


def read_latent(
    data: bytes, channels: Sequence[int] | None = None, *, max_pixels: int | None = None
) -> tuple[np.ndarray, dict]:
    """Decodes only the latent (no network), optionally only some channels.

    Streams of channels not asked for are skipped by their stored lengths, not decoded.
    ``max_pixels`` is the pixel limit, as for ``decompress``.

    Returns:
        ((h, w, k) int8 latent with values -15..16, metadata dict: preset, width, height,
        grayscale, latent_shape, channels, fingerprint).
    """
    return _codec_for(data).unpack_latent(data, channels, max_pixels=max_pixels)


def _is_l3ic(path: Path) -> bool:
    if path.suffix.lower() == ".l3ic":
        return True
    with open(path, "rb") as f:
        return f.read(4) == container.MAGIC


def imread(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Reads an image file as an array: an .l3ic file decoded (within ``max_pixels``, as
    ``decompress``: uint8), any other format as ``image.read_image`` reads it (upright, in
    sRGB; uint8, or uint16 for 16-bit grayscale)."""
    path = Path(path)
    if path.is_file() and _is_l3ic(path):
        return decompress(path.read_bytes(), max_pixels=max_pixels)
    return read_image(path)  # also says why a path is not readable (missing, a folder, ...)


def imwrite(path: str | os.PathLike, image, model: str = "32c", force: bool = True) -> None:
    """Writes an image: compressed with ``model`` if ``path`` ends in .l3ic, else via imageio.

    The file appears whole or not at all (temporary file + rename).
    """
    path = Path(path)
    if path.suffix.lower() == ".l3ic":
        data = compress(image, model=model)
    else:
        import imageio.v3 as iio

        try:
            data = iio.imwrite("<bytes>", np.asarray(image), extension=path.suffix)
        except Exception as e:  # imageio raises many types for unwritable formats
            raise L3ICError(f"cannot write {path}: {e}") from None
    write_atomic(path, data, force=force)
