"""Image input and output: array conversion rules, reading from paths, atomic file writes."""

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import L3ICError

__all__ = ["to_rgb8", "read_image", "write_atomic"]


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
        warnings.warn("16-bit image converted to 8 bits", stacklevel=3)
        return ((x.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * 255
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise L3ICError("float images must hold finite values in [0, 1]")
        return np.round(x * 255).astype(np.uint8)
    raise L3ICError(f"unsupported image dtype {x.dtype} (use uint8, uint16, bool or float)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file with imageio (first frame). Raises L3ICError if it is not an image."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise L3ICError(f"no such file: {path}")
    try:
        return np.asarray(iio.imread(path, index=0))
    except Exception as e:  # imageio raises many types for unreadable files
        raise L3ICError(f"cannot read {path} as an image: {e}") from None


def write_atomic(path: str | os.PathLike, data: bytes, force: bool = False) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename, never half-written.

    Raises:
        L3ICError: ``path`` exists and ``force`` is false, or its folder does not exist.
    """
    path = Path(path)
    if path.exists() and not force:
        raise L3ICError(f"{path} exists (use --force / force=True to overwrite)")
    if not path.parent.is_dir():
        raise L3ICError(f"folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
