"""imageio v3 plugin: ``imageio.v3.imread("photo.l3ic")`` and ``imwrite("photo.l3ic", image)``.

Installing l3ic registers the plugin automatically (see ``src/_l3ic_imageio_autoload.py``, which
the wheel installs as a top-level module); calling ``register()`` does the same by hand and is
idempotent.

Methods: ``read(index=0, max_pixels=None, runtime=None)`` -> (H, W, 3) or (H, W) uint8;
``iter()``; ``write(image, preset=None, quality=None, bpp=None, max_bytes=None,
runtime=None)`` (at most one of ``quality``, ``bpp``, ``max_bytes``, and without a preset the one
given picks it, as in ``l3ic.compress``; ``model=`` is the deprecated name of ``preset``);
``properties()``; ``metadata()`` (with the file's ``scale``). ``runtime`` is "auto", "onnx",
"openvino" or "keras" (default ``$L3IC_RUNTIME``, else "auto"), as in ``l3ic.decompress``.
"""

from collections.abc import Iterator

import numpy as np
from imageio.core.request import URI_BYTES, InitializationError, IOMode, Request
from imageio.core.v3_plugin_api import ImageProperties, PluginV3

from _l3ic_imageio_autoload import register

from . import container

__all__ = ["L3ICPlugin", "register"]


class L3ICPlugin(PluginV3):
    """Reads and writes .l3ic files through imageio (one image per file)."""

    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self._data: bytes | None = None
        if request.mode.io_mode == IOMode.read:
            head = request.get_file().read(len(container.MAGIC))
            request.get_file().seek(0)
            if head != container.MAGIC:
                raise InitializationError(f"{request.raw_uri!r} is not an .l3ic file")
        elif (request.extension or request.format_hint) != ".l3ic":
            raise InitializationError("l3ic writes only files ending in .l3ic")

    def _bytes(self) -> bytes:
        if self._data is None:
            self._data = self.request.get_file().read()
        return self._data

    def read(
        self, *, index: int | None = 0, max_pixels: int | None = None, runtime: str | None = None
    ) -> np.ndarray:
        """Decodes the image: (H, W, 3) uint8, or (H, W) for grayscale files.

        ``max_pixels`` is the decoding pixel limit (``l3ic.decompress``); over it,
        ``l3ic.DecompressionBombError`` is raised before anything is decoded.
        """
        from .api import decompress

        if index not in (0, None, Ellipsis):
            raise IndexError(f".l3ic files hold one image, index {index} asked for")
        image = decompress(self._bytes(), max_pixels=max_pixels, runtime=runtime)
        return image[None] if index is Ellipsis else image

    def iter(self) -> Iterator[np.ndarray]:
        """Yields the one image of the file."""
        yield self.read()

    def write(
        self,
        ndimage,
        *,
        preset: str | None = None,
        drop_alpha: bool = False,
        quality: float | None = None,
        bpp: float | None = None,
        max_bytes: int | None = None,
        runtime: str | None = None,
        model=None,
    ) -> bytes | None:
        """Compresses ``ndimage`` ((H, W, 3) or (H, W) array) with ``preset``, at a ``quality``
        (0..100, default 50) or the best file within ``bpp`` or ``max_bytes``; without a preset,
        32c, or the preset that codes the rate asked for best (``l3ic.compress``)."""
        from .api import compress

        data = compress(
            np.asarray(ndimage),
            preset,
            drop_alpha,
            quality=quality,
            bpp=bpp,
            max_bytes=max_bytes,
            runtime=runtime,
            model=model,
        )
        self.request.get_file().write(data)
        return data if self.request._uri_type == URI_BYTES else None

    def properties(self, index: int | None = 0) -> ImageProperties:
        """Shape and dtype from the header alone (no decoding)."""
        c = container.parse(self._bytes())
        shape = (c.height, c.width) if c.grayscale else (c.height, c.width, 3)
        if index is Ellipsis:
            return ImageProperties(shape=(1, *shape), dtype=np.uint8, n_images=1, is_batch=True)
        return ImageProperties(shape=shape, dtype=np.uint8)

    def metadata(self, index: int | None = 0, exclude_applied: bool = True) -> dict:
        """Preset, sizes, latent shape, weights fingerprint and scale from the header."""
        return container.parse(self._bytes()).metadata()
