"""Image input and output: array conversion rules, reading images from paths, image suffixes."""

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError

from .errors import L3ICError, one_line

__all__ = [
    "IMAGE_SUFFIXES",
    "is_image_name",
    "list_images",
    "to_rgb8",
    "read_image",
]

# File suffixes taken as images wherever l3ic looks through a folder (convert, evaluate, training).
IMAGE_SUFFIXES = frozenset(".png .jpg .jpeg .bmp .gif .tif .tiff .webp .ppm .pgm .pnm .pbm".split())

_NARROWED = "16-bit image converted to 8 bits"  # the warning

# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow modes that read_image returns as arrays as they are; it converts the others to RGB(A).
_ARRAY_MODES = {"1", "L", "LA", "RGB", "RGBA", "I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# Every 15th level of each channel, 18**3 colours: an sRGB profile moves none by over a level.
_LEVELS = np.arange(0, 256, 15, dtype=np.uint8)
_PROBE = np.stack(np.meshgrid(_LEVELS, _LEVELS, _LEVELS, indexing="ij"), axis=-1).reshape(1, -1, 3)


def is_image_name(name: str) -> bool:
    """Whether a file name looks like an image: not hidden, suffix in ``IMAGE_SUFFIXES``."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` (``is_image_name``; not recursive), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_name(p.name))


def to_rgb8(image, drop_alpha: bool = False) -> tuple[np.ndarray, bool]:
    """Converts an image array to 8-bit RGB.

    Rules: (H, W) and (H, W, 1) are grayscale (returned replicated to RGB, flag True); (H, W, 3)
    is RGB; (H, W, 4) RGBA and (H, W, 2) gray + alpha are refused unless ``drop_alpha``. uint16 is
    scaled to 8 bits with a warning; float must lie in [0, 1]; bool maps to 0 / 255.

    Args:
        image: array-like, uint8, uint16, bool or float.
        drop_alpha: discard an alpha channel instead of refusing the image.

    Returns:
        ((H, W, 3) uint8 C-contiguous array, whether the input was grayscale).
    """
    x = np.asarray(image)
    if x.ndim == 3 and x.shape[2] in (2, 4):
        if not drop_alpha:
            raise L3ICError(
                f"image has an alpha channel (shape {x.shape}); l3ic codes colour only: "
                "pass drop_alpha=True (CLI: --drop-alpha) to discard it"
            )
        x = x[..., :-1]
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[2] not in (1, 3):
        raise L3ICError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise L3ICError(f"empty image of shape {x.shape}")
    x = _to_uint8(x)
    gray = x.shape[2] == 1
    if gray:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(x), gray


def _to_uint8(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.uint16:
        warnings.warn(_NARROWED, stacklevel=3)
        return _round_to_8_bits(x)
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise L3ICError("float images must hold finite values in [0, 1]")
        return np.round(x * 255).astype(np.uint8)
    raise L3ICError(f"unsupported image dtype {x.dtype} (use uint8, uint16, bool or float)")


def _round_to_8_bits(x: np.ndarray) -> np.ndarray:
    """round(x / 257) of 16-bit samples, as uint8."""
    return ((x.astype(np.uint32) + 128) // 257).astype(np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads the first frame of an image file, as it is meant to be displayed.

    Pillow decodes the file; formats it does not read (or fails on) go to imageio, and come as
    imageio returns them. From Pillow: the EXIF orientation is applied; an embedded ICC colour
    profile other than sRGB is converted to sRGB (with a warning, and the colours taken as sRGB,
    if it cannot be); palettes are expanded and CMYK, YCbCr and the like become RGB; 16-bit colour
    keeps the high byte of each sample (Pillow decodes it so), with a warning.

    Returns:
        A writable array: (H, W) grayscale, (H, W, 2) gray + alpha, (H, W, 3) RGB or
        (H, W, 4) RGBA, of dtype uint8; or (H, W) of dtype uint16 (16-bit grayscale, converted
        by ``to_rgb8``), bool (1-bit), int32 or float32 (32-bit grayscale).

    Raises:
        L3ICError: no such file, a folder, an empty file, not an image, a damaged image, or one
            over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
    """
    path = Path(path)
    _check_file(path)
    try:
        frame, orientation, narrowed = _decode(path)
    except Image.DecompressionBombError as e:
        raise L3ICError(
            f"cannot read {path}: {e} (limit set by PIL.Image.MAX_IMAGE_PIXELS)"
        ) from None
    except UnidentifiedImageError:
        return _read_imageio(path, "not a recognised image format")
    except Exception as e:  # Pillow raises many types for damaged files
        return _read_imageio(path, one_line(e))
    if narrowed:
        warnings.warn(_NARROWED, stacklevel=2)
    if frame.mode == "P":  # as imageio: a transparent index or colour key is not alpha
        frame = frame.convert(frame.palette.mode)
    elif frame.mode not in _ARRAY_MODES | {"CMYK"}:  # CMYK waits for its colour profile
        frame = frame.convert("RGBA" if frame.has_transparency_data else "RGB")
    frame = _to_srgb(frame, path)
    if frame.mode == "CMYK":  # without a usable profile
        frame = frame.convert("RGB")
    if orientation in _UPRIGHT:
        frame = frame.transpose(_UPRIGHT[orientation])
    x = np.array(frame)
    return x.astype(x.dtype.newbyteorder("="), copy=False)  # I;16B frames are big-endian


def _check_file(path: Path) -> None:
    """Raises L3ICError unless ``path`` is a regular file with some content."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise L3ICError(f"no such file: {path}") from None
    except OSError as e:
        raise L3ICError(f"cannot read {path}: {e.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise L3ICError(f"{path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise L3ICError(f"{path} is not a regular file")
    if info.st_size == 0:
        raise L3ICError(f"{path} is empty (0 bytes)")


def _decode(path: Path) -> tuple[Image.Image, int | None, bool]:
    """Decodes the first frame of ``path`` with Pillow.

    Returns:
        (the decoded frame, its EXIF orientation, whether its 16-bit samples became 8 bits).
    """
    with Image.open(path) as im:
        rawmodes = [_rawmode(tile) for tile in im.tile]
        im.load()
        orientation = im.getexif().get(ExifTags.Base.Orientation)  # none left if load applied it
    # Pillow decodes 16-bit colour samples (rawmode "RGB;16B" etc.) to their high byte
    narrowed = im.mode in ("RGB", "RGBA", "CMYK") and any(";16" in r for r in rawmodes)
    return im, orientation, narrowed


def _rawmode(tile: ImageFile._Tile) -> str:
    """The layout of the pixels in the file that a Pillow tile decodes ("RGB;16B"), or ""."""
    first = tile.args[0] if isinstance(tile.args, tuple) and tile.args else tile.args
    return first if isinstance(first, str) else ""


def _to_srgb(frame: Image.Image, path: Path) -> Image.Image:
    """Converts ``frame`` from its embedded ICC profile to sRGB (CMYK to RGB).

    Returns ``frame`` itself when it has no profile, an sRGB one, or one that cannot be applied
    (with a warning: its colours are then taken as sRGB).
    """
    icc = frame.info.get("icc_profile")
    if not icc:
        return frame
    try:
        return _convert_to_srgb(frame, ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImportError, OSError, ImageCms.PyCMSError) as e:
        warnings.warn(
            f"cannot convert the colour profile of {path} to sRGB ({one_line(e)}); "
            "its colours are taken as sRGB",
            stacklevel=3,  # the caller of read_image
        )
        return frame


def _convert_to_srgb(frame: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    colour_mode = frame.mode.removesuffix("A")  # the channels that the profile describes
    if colour_mode not in ("L", "RGB", "CMYK"):
        raise ImageCms.PyCMSError(f"{frame.mode} images are not colour-managed")
    srgb = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(profile, srgb, colour_mode, "RGB")
    if colour_mode == "RGB" and _moves_no_colour(transform):
        return frame
    converted = ImageCms.applyTransform(frame.convert(colour_mode), transform)
    if colour_mode == "L":
        converted = converted.convert("L")
    if frame.mode != colour_mode:
        converted.putalpha(frame.getchannel("A"))
    return converted


def _moves_no_colour(transform: ImageCms.ImageCmsTransform) -> bool:
    """Whether an RGB -> sRGB ``transform`` keeps every colour within a level (an sRGB profile)."""
    converted = ImageCms.applyTransform(Image.fromarray(_PROBE), transform)
    return bool(np.abs(np.asarray(converted, np.int16) - _PROBE).max() <= 1)


def _read_imageio(path: Path, reason: str) -> np.ndarray:
    """Reads ``path`` with imageio; else raises L3ICError with ``reason``, why Pillow did not."""
    import imageio.v3 as iio

    try:
        return np.asarray(iio.imread(path, index=0))
    except L3ICError as e:  # l3ic's own imageio plugin: a damaged .l3ic file
        reason = str(e)
    except Exception:  # imageio's messages suggest installing plugins: Pillow's reason is better
        pass
    raise L3ICError(f"cannot read {path} as an image: {reason}") from None
