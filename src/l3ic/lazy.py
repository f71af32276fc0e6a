"""``l3ic.open``: an .l3ic file whose streams are decoded only when asked for.

Opening reads the file (a few tens of kilobytes) and checks its header and checksums; nothing is
entropy-decoded and no model is loaded. ``latent(channels)`` decodes only those channels'
streams with the preset's latent coder (no network, no Keras); ``image()`` loads the network
and decodes all channels, or a progressive preview from the ``top_channels=k`` most important.
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import container
from .deprecation import warn_deprecated
from .errors import L3ICError
from .latent_coder import get_coder

__all__ = ["L3ICFile", "open"]


class L3ICFile:
    """A parsed .l3ic file; streams are decoded on demand by the preset named in the file.

    Args:
        data: the whole .l3ic file.
        path: where it came from (for messages), if anywhere.

    Attributes:
        path: the file's path or None.
        preset: the preset name stored in the file, e.g. ``"32c"``.
        shape: (H, W) of the image in pixels, as numpy orders it (``size``, (W, H), is
            deprecated).
        width, height: the image's width W and height H in pixels.
        latent_shape: (h, w, C) with h = ceil(H / 8), w = ceil(W / 8).
        grayscale: whether ``image()`` returns (H, W) instead of (H, W, 3).
        nbytes: file size in bytes.
        channel_bytes: (C,) stream bytes of each channel (0 for a constant channel).
    """

    def __init__(self, data: bytes, path: Path | None = None):
        self._data = bytes(data)
        self._container = c = container.parse(self._data)
        self.path = path
        self.preset = c.preset
        self.width, self.height = c.width, c.height
        self.shape = (c.height, c.width)
        self.latent_shape = c.latent_shape
        self.grayscale = c.grayscale
        self.nbytes = len(self._data)
        self.channel_bytes = list(c.stream_lengths)

    def latent(
        self, channels: Sequence[int] | None = None, *, max_pixels: int | None = None
    ) -> np.ndarray:
        """Decodes the streams of ``channels`` only (default all), no network.

        Args:
            channels: the channels to decode, in the order wanted.
            max_pixels: the decoding pixel limit (``container.pixel_limit``).

        Returns:
            (h, w, len(channels)) int8 latent, values -15..16, in the order asked for.
        """
        coder = get_coder(self.preset)
        return coder.read(self._data, channels, max_pixels=max_pixels)[0]

    def image(
        self,
        channels: Sequence[int] | None = None,
        *,
        top_channels: int | None = None,
        max_pixels: int | None = None,
        runtime: str | None = None,
    ) -> np.ndarray:
        """Decodes the image (all channels, or a progressive preview); loads the network.

        Args:
            channels: decode only these channel indices, the others at their likeliest value;
                default all. A number here is the deprecated spelling of ``top_channels``.
            top_channels: decode only the ``top_channels`` most important channels.
            max_pixels: the decoding pixel limit (``container.pixel_limit``).
            runtime: "auto", "onnx", "openvino" or "keras" (default ``$L3IC_RUNTIME``, else
                "auto").

        Returns:
            (H, W, 3) uint8 image ((H, W) for grayscale files).
        """
        from .api import decompress

        return decompress(
            self._data, channels, top_channels=top_channels, max_pixels=max_pixels, runtime=runtime
        )

    @property
    def size(self) -> tuple[int, int]:
        """Deprecated: (W, H); use ``shape`` (H, W) or ``width`` and ``height``."""
        warn_deprecated("L3ICFile.size, (W, H),", "shape, (H, W), or width and height")
        return self.width, self.height

    def __repr__(self) -> str:
        w, h = self.width, self.height
        where = f" {str(self.path)!r}" if self.path else ""
        return f"<L3ICFile{where} {self.preset} {w}x{h} latent {self.latent_shape} {self.nbytes} B>"


def open(path: str | os.PathLike) -> L3ICFile:
    """Opens an .l3ic file lazily: header parsed and checked now, streams decoded on demand.

    Raises:
        L3ICError: the file is missing, unreadable, not an .l3ic file or damaged.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise L3ICError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return L3ICFile(data, path)
    except L3ICError as e:
        raise L3ICError(f"{path}: {e}") from None
