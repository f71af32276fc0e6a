"""The module-level functions of l3ic: compress, decompress, read_latent, imread, imwrite.

``read_latent`` needs only the preset's latent coder (no network); the others load the preset's
network on first use (``get_codec``, once per process and runtime). The network runs on the
"auto" runtime (OpenVINO in bf16 on CPUs with AMX or AVX512-BF16 where it is installed, else ONNX
Runtime) unless ``runtime=`` (or ``$L3IC_RUNTIME``) names another, "keras" for the Keras
reference (``runtime``); neither reading latents nor the default runtime imports Keras.
"""

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import container
from .atomic_files import write_atomic
from .errors import L3ICError
from .image import read_image
from .latent_coder import channels_arg, get_coder
from .presets import resolve_preset
from .rate_control import (
    check_bpp,
    choose_for_bpp,
    choose_for_quality,
    is_budget,
    shipped_curves,
)
from .runtime import resolve_runtime

__all__ = ["compress", "decompress", "read_latent", "imread", "imwrite", "get_codec", "get_coder"]


def get_codec(preset: str, runtime: str | None = None):
    """The shared ``Codec`` of a preset on a runtime, loaded once per process and runtime.

    Args:
        preset: "16c", "32c" or "64c".
        runtime: "auto", "onnx", "openvino" or "keras"; None: ``$L3IC_RUNTIME``, else "auto"
            (resolved before the cache, so None, "auto" and the runtime they stand for share one
            codec).
    """
    return _shared_codec(preset, resolve_runtime(runtime))


@functools.lru_cache(maxsize=8)
def _shared_codec(preset: str, runtime: str):
    from .codec import Codec

    return Codec(preset, runtime=runtime)


def compress(
    image_or_path,
    preset: str | None = None,
    drop_alpha: bool = False,
    *,
    quality: float | None = None,
    scale: float | None = None,
    bpp: float | None = None,
    max_bytes: int | None = None,
    runtime: str | None = None,
    model: str | None = None,
) -> bytes:
    """Compresses an image.

    Without a preset, a ``quality``, ``bpp`` or ``max_bytes`` picks the preset that codes that
    rate best (``rate_control.choose_for_quality`` / ``choose_for_bpp``, from the presets'
    measured scale curves: docs/quality.md); otherwise the preset is 32c.

    Args:
        image_or_path: (H, W, 3) or (H, W) array (uint8; uint16 and float in [0, 1] are
            converted), or the path of an image file.
        preset: "16c", "32c" or "64c" (default: above); ``model=`` is its deprecated name.
        drop_alpha: discard an alpha channel instead of refusing RGBA input.
        quality: 0..100, lower is smaller (docs/quality.md); with a preset, 50 (the default) is
            the preset as trained; without one, 50 is 32c as trained and the range spans all
            presets. At most one of ``quality``, ``scale``, ``bpp``, ``max_bytes``.
        scale: the quantisation scale itself, 0.125..8 (``quality`` 0..100 is 0.354..1.68).
        bpp: the largest file of at most this many bits per pixel.
        max_bytes: the largest file of at most this many bytes.
        runtime: "auto", "onnx", "openvino" or "keras" (default ``$L3IC_RUNTIME``, else
            "auto"); the file does not depend on it (docs/runtimes.md).

    Returns:
        The .l3ic file as bytes.
    """
    unnamed = preset is None and model is None and scale is None
    if unnamed and sum(r is not None for r in (quality, bpp, max_bytes)) == 1:
        image_or_path, preset, scale = _choose(image_or_path, quality, bpp, max_bytes)
        if scale is not None:
            quality = None
    codec = get_codec(resolve_preset(preset, model), runtime)
    return codec.compress(
        image_or_path,
        drop_alpha=drop_alpha,
        quality=quality,
        scale=scale,
        bpp=bpp,
        max_bytes=max_bytes,
    )


def _choose(image_or_path, quality, bpp, max_bytes):
    """(image or path, preset or None, scale or None) for ``compress`` without a preset, given
    one of ``quality``, ``bpp``, ``max_bytes``: the preset (and, for a quality, the scale)
    ``rate_control`` picks from the presets' scale curves. The image is read here if a size
    budget needs its pixel count. None (32c) where no preset has a curve, or for a size budget
    that is none (``Codec.compress`` then says why)."""
    curves = shipped_curves()
    if not curves:
        return image_or_path, None, None
    if quality is not None:
        preset, scale = choose_for_quality(quality, curves)
        return image_or_path, preset, scale
    if max_bytes is not None:
        if not is_budget(max_bytes):
            return image_or_path, None, None
        if isinstance(image_or_path, str | os.PathLike):
            image_or_path = read_image(image_or_path)
        h, w = np.shape(image_or_path)[:2]
        bpp = 8 * max_bytes / max(1, h * w)
    check_bpp(bpp)
    return image_or_path, choose_for_bpp(bpp, curves), None


def decompress(
    data: bytes,
    channels: Sequence[int] | None = None,
    *,
    top_channels: int | None = None,
    max_pixels: int | None = None,
    runtime: str | None = None,
) -> np.ndarray:
    """Decodes .l3ic bytes to a (H, W, 3) uint8 image ((H, W) for grayscale files).

    The file is parsed and checked once, and its pixel count checked against the limit before
    the network is loaded.

    Args:
        data: the .l3ic file.
        channels: decode only these channel indices, the others at their likeliest value
            (``Codec.decompress``); default all.
        top_channels: progressive preview from the ``top_channels`` most important channels.
        max_pixels: refuse, before decoding anything, files that declare more pixels
            (default: ``$L3IC_MAX_PIXELS`` or 33.5 Mpx, ``container.DEFAULT_MAX_PIXELS``).
        runtime: "auto", "onnx", "openvino" or "keras" (default ``$L3IC_RUNTIME``, else
            "auto").

    Raises:
        DecompressionBombError: over the pixel limit (an ``L3ICError``).
        L3ICError: any other bad input.
    """
    channels, top_channels = channels_arg(channels, top_channels)
    c = container.parse_header(data)
    container.check_pixel_limit(c, max_pixels)
    return get_codec(c.preset, runtime).decompress(
        data, channels, top_channels=top_channels, max_pixels=max_pixels
    )


def read_latent(
    data: bytes, channels: Sequence[int] | None = None, *, max_pixels: int | None = None
) -> tuple[np.ndarray, dict]:
    """Decodes only the latent (no network, no Keras), optionally only some channels.

    Streams of channels not asked for are skipped by their stored lengths, not decoded.
    ``max_pixels`` is the pixel limit, as for ``decompress``.

    Args:
        data: the .l3ic file.
        channels: channel indices, in the order wanted (default all).

    Returns:
        ((h, w, len(channels)) int8 latent with values -15..16, metadata dict: preset, width,
        height, grayscale, latent_shape, fingerprint, channels).
    """
    return get_coder(container.preset_name(data)).read(data, channels, max_pixels=max_pixels)


def _is_l3ic(path: Path) -> bool:
    if path.suffix.lower() == ".l3ic":
        return True
    with open(path, "rb") as f:
        return f.read(4) == container.MAGIC


def imread(
    path: str | os.PathLike, *, max_pixels: int | None = None, runtime: str | None = None
) -> np.ndarray:
    """Reads an image file as an array: an .l3ic file decoded (within ``max_pixels``, on
    ``runtime``, as ``decompress``: uint8), any other format as ``image.read_image`` reads it
    (upright, in sRGB; uint8, or uint16 for 16-bit grayscale)."""
    path = Path(path)
    if path.is_file() and _is_l3ic(path):
        return decompress(path.read_bytes(), max_pixels=max_pixels, runtime=runtime)
    return read_image(path)  # also says why a path is not readable (missing, a folder, ...)


def imwrite(
    path: str | os.PathLike,
    image,
    preset: str | None = None,
    force: bool = True,
    *,
    runtime: str | None = None,
    model: str | None = None,
) -> None:
    """Writes an image: compressed with ``preset`` (on ``runtime``, as ``compress``) if ``path``
    ends in .l3ic, else via imageio.

    ``model=`` is the deprecated name of ``preset``. The file appears whole or not at all
    (temporary file + rename).
    """
    path = Path(path)
    preset = resolve_preset(preset, model)
    if path.suffix.lower() == ".l3ic":
        data = compress(image, preset=preset, runtime=runtime)
    else:
        import imageio.v3 as iio

        try:
            data = iio.imwrite("<bytes>", np.asarray(image), extension=path.suffix)
        except Exception as e:  # imageio raises many types for unwritable formats
            raise L3ICError(f"cannot write {path}: {e}") from None
    write_atomic(path, data, force=force)
