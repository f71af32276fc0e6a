"""Images <-> integer latents <-> .l3ic bytes, for any image size.

Notation: x is an image (H, W, 3) uint8; the latent is (h, w, C) int8 with values -15..16 and
h = ceil(H / 8), w = ceil(W / 8). Images are padded at the bottom/right to a multiple of 8 by
repeating the edge, and cropped back after decoding.

Large images are coded in tiles. Each tile's core (``tile`` x ``tile`` latent cells) is computed
with a margin of context around it that covers the network's receptive field, so tiled and
untiled results are the same. Receptive fields: an encoder output cell sees at most 45 px
beyond its own 8x8 block (three strided 5x5 convs and six 3x3 convs at 1/4 scale), so
``ENCODER_MARGIN`` = 8 cells (64 px); a decoded pixel sees at most 4.75 latent cells around its
own (3x3 at 1/8 scale, seven 3x3 at 1/4, one 3x3 at 1/2), so ``DECODER_MARGIN`` = 6 cells.
"""

import os
from collections.abc import Iterable, Sequence

import keras
import numpy as np

from . import container, entropy
from .codebook import QMIN
from .errors import L3ICError
from .image import read_image, to_rgb8
from .model import L3ICModel
from .presets import fingerprint, load_sidecar, load_weights, model_arrays, preset_channels
from .presets import weights_path as _weights_path

__all__ = ["Codec", "ENCODER_MARGIN", "DECODER_MARGIN"]

ENCODER_MARGIN = 8
DECODER_MARGIN = 6
DEFAULT_TILE = 64  # latent cells: 512 x 512 px cores


def _spans(n: int, tile: int, margin: int) -> Iterable[tuple[int, int, int, int]]:
    """Yields (core_start, core_stop, window_start, window_stop) along one axis of length n."""
    for start in range(0, n, tile):
        stop = min(start + tile, n)
        yield start, stop, max(0, start - margin), min(n, stop + margin)


class Codec:
    """A model with its entropy-coding priors: compresses and decompresses images.

    Args:
        model: a preset name ("16c", "32c", "64c"); its weights come from models/.
        tile: tile core size in latent cells (8 px each) for large images.

    Attributes:
        name: the model name stored in every file.
        channels: latent channels C.
        fingerprint: 8 bytes identifying the weights.
        priors: (C, 32) int64 per-channel prior tables.
        channel_order: (C,) channel indices, most important first.
    """

    def __init__(self, model: str = "32c", *, tile: int = DEFAULT_TILE):
        channels = preset_channels(model)
        path = _weights_path(model)
        sidecar = load_sidecar(model)
        net = L3ICModel(channels)
        fp = load_weights(net, path)
        self._setup(model, net, fp, sidecar, tile)

    @classmethod
    def untrained(cls, channels: int = 16, seed: int = 0, tile: int = DEFAULT_TILE) -> "Codec":
        """A codec with seeded random weights and a generic prior, for tests and experiments."""
        keras.utils.set_random_seed(seed)
        net = L3ICModel(channels)
        self = cls.__new__(cls)
        self._setup(f"untrained-{channels}c", net, fingerprint(model_arrays(net)), {}, tile)
        return self

    @classmethod
    def from_model(cls, net: L3ICModel, name: str, sidecar: dict, tile: int = DEFAULT_TILE):
        """Wraps an in-memory L3ICModel (e.g. during training) with the priors of ``sidecar``."""
        self = cls.__new__(cls)
        self._setup(name, net, fingerprint(model_arrays(net)), sidecar, tile)
        return self

    def _setup(self, name: str, net: L3ICModel, fp: bytes, sidecar: dict, tile: int) -> None:
        if tile < 1:
            raise L3ICError(f"tile must be at least 1 latent cell, got {tile}")
        self.name, self.net, self.fingerprint, self.tile = name, net, fp, tile
        self.earlier = {e["fingerprint"]: e for e in sidecar.get("earlier", [])}
        self.channels = net.channels
        c = self.channels
        self.priors = np.asarray(sidecar.get("priors", entropy.default_prior(c)), dtype=np.int64)
        self.channel_order = np.asarray(sidecar.get("channel_order", range(c)), dtype=np.int64)
        if self.priors.shape != (c, entropy.ALPHABET) or sorted(self.channel_order) != list(
            range(c)
        ):
            raise L3ICError(f"sidecar of model {name!r} has priors or channel order of wrong shape")

    # ----- network: images <-> latents -------------------------------------------------------

    def encode_latent(self, image) -> np.ndarray:
        """Runs the encoder. image: (H, W[, 3]) array; returns (ceil(H/8), ceil(W/8), C) int8."""
        x, _ = to_rgb8(image)
        return self._encode(x[None])[0]

    def encode_latent_batch(self, images: Sequence) -> list[np.ndarray]:
        """Encodes many images; equal sizes run as one batch. Returns a list of int8 latents."""
        rgb = [to_rgb8(im)[0] for im in images]
        out: list[np.ndarray | None] = [None] * len(rgb)
        for idx in _group_by_shape(rgb):
            for i, z in zip(idx, self._encode(np.stack([rgb[i] for i in idx])), strict=True):
                out[i] = z
        return out

    def decode_latent(self, latent, size: tuple[int, int] | None = None) -> np.ndarray:
        """Runs the decoder.

        Args:
            latent: (h, w, C) integer array, values -15..16.
            size: (H, W) of the original image (default (8h, 8w)).

        Returns:
            (H, W, 3) uint8 image.
        """
        q = self._check_latent(latent)
        return self._decode(q[None], size)[0]

    def decode_latent_batch(self, latents: Sequence, sizes: Sequence | None = None) -> list:
        """Decodes many latents; equal shapes run as one batch. Returns a list of uint8 images."""
        qs = [self._check_latent(q) for q in latents]
        sizes = list(sizes) if sizes is not None else [None] * len(qs)
        out: list[np.ndarray | None] = [None] * len(qs)
        for idx in _group_by_shape(qs, sizes):
            batch = self._decode(np.stack([qs[i] for i in idx]), sizes[idx[0]])
            for i, y in zip(idx, batch, strict=True):
                out[i] = y
        return out

    def _check_latent(self, latent) -> np.ndarray:
        q = np.asarray(latent)
        if q.ndim != 3 or q.shape[2] != self.channels or 0 in q.shape:
            raise L3ICError(f"latent must have shape (h, w, {self.channels}), got {q.shape}")
        if not np.issubdtype(q.dtype, np.integer) or q.min() < QMIN or q.max() > QMIN + 31:
            raise L3ICError(f"latent values must be integers in {QMIN}..{QMIN + 31}")
        return q.astype(np.int8)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> (B, ceil(H/8), ceil(W/8), C) int8, tile by tile."""
        b, height, width, _ = x.shape
        h, w = -(-height // 8), -(-width // 8)
        x = np.pad(x, ((0, 0), (0, 8 * h - height), (0, 8 * w - width), (0, 0)), mode="edge")
        z = np.empty((b, h, w, self.channels), dtype=np.int8)
        for i0, i1, a0, a1 in _spans(h, self.tile, ENCODER_MARGIN):
            for j0, j1, c0, c1 in _spans(w, self.tile, ENCODER_MARGIN):
                window = x[:, 8 * a0 : 8 * a1, 8 * c0 : 8 * c1].astype(np.float32) / 255.0
                q = self.net.quantizer(self.net.encoder(window, training=False))
                q = keras.ops.convert_to_numpy(q)
                z[:, i0:i1, j0:j1] = q[:, i0 - a0 : i1 - a0, j0 - c0 : j1 - c0]
        return z

    def _decode(self, q: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        """(B, h, w, C) int8 -> (B, H, W, 3) uint8, tile by tile, cropped to ``size``."""
        b, h, w, _ = q.shape
        height, width = size if size is not None else (8 * h, 8 * w)
        if not (8 * h - 8 < height <= 8 * h and 8 * w - 8 < width <= 8 * w):
            raise L3ICError(f"size {height}x{width} does not fit a {h}x{w} latent")
        y = np.empty((b, 8 * h, 8 * w, 3), dtype=np.uint8)
        for i0, i1, a0, a1 in _spans(h, self.tile, DECODER_MARGIN):
            for j0, j1, c0, c1 in _spans(w, self.tile, DECODER_MARGIN):
                window = q[:, a0:a1, c0:c1].astype(np.float32)
                t = keras.ops.convert_to_numpy(self.net.decoder(window, training=False))
                t = t[:, 8 * (i0 - a0) : 8 * (i1 - a0), 8 * (j0 - c0) : 8 * (j1 - c0)]
                y[:, 8 * i0 : 8 * i1, 8 * j0 : 8 * j1] = np.round(np.clip(t, 0, 1) * 255)
        return y[:, :height, :width]

    # ----- entropy coding: latents <-> bytes -------------------------------------------------

    def pack_latent(self, latent: np.ndarray, size: tuple[int, int], grayscale: bool = False):
        """Entropy-codes a latent into .l3ic bytes.

        Args:
            latent: (h, w, C) int8, values -15..16.
            size: (H, W) of the original image.
            grayscale: mark the file to decode as a (H, W) grayscale image.
        """
        q = self._check_latent(latent)
        symbols = (q.astype(np.int16) - QMIN).astype(np.uint8)
        codes = [
            entropy.encode_channel(symbols[..., k].ravel(), self.priors[k])
            for k in range(self.channels)
        ]
        c = container.Container(
            self.name, self.fingerprint, size[1], size[0], grayscale, q.shape, codes
        )
        return container.pack(c)

    def unpack_latent(
        self,
        data: bytes,
        channels: Sequence[int] | None = None,
        *,
        max_pixels: int | None = None,
    ):
        """Decodes the latent of .l3ic bytes written by this model (only ``channels`` if given).

        Args:
            data: the .l3ic file.
            channels: the channels to decode (default all).
            max_pixels: refuse files declaring more pixels (``container.pixel_limit``).

        Returns:
            ((h, w, len(channels)) int8 latent, metadata dict with preset, width, height,
            grayscale, latent_shape, channels).
        """
        c = self._parse(data, max_pixels)
        picked = self._pick(channels, c.latent_shape[2])
        return self._decode_streams(c, picked), _meta(c, picked)

    def partial_latent(
        self, data: bytes, channels: Sequence[int], *, max_pixels: int | None = None
    ):
        """The (h, w, C) latent with only ``channels`` decoded, the others at their likeliest value.

        A skipped channel gets the value its header makes most likely, without touching its
        stream: a constant channel its constant, a table-coded channel the argmax of its stored
        table, a prior-coded channel the argmax of its prior.

        Returns:
            ((h, w, C) int8 latent, metadata dict as ``unpack_latent``'s).
        """
        c = self._parse(data, max_pixels)
        h, w, nc = c.latent_shape
        picked = self._pick(channels, nc)
        q = np.empty((h, w, nc), dtype=np.int8)
        for k, code in enumerate(c.codes):
            if code.mode == entropy.CONSTANT:
                symbol = code.symbol
            else:
                symbol = np.argmax(code.table if code.mode == entropy.TABLE else self.priors[k])
            q[..., k] = int(symbol) + QMIN
        q[..., picked] = self._decode_streams(c, picked)
        return q, _meta(c, picked)

    def _parse(self, data: bytes, max_pixels: int | None) -> container.Container:
        """Parses .l3ic bytes and checks, before any decoding, that this model wrote them, that
        the image is within the pixel limit and that every stream is long enough for its
        channel (``entropy.min_stream_bytes``)."""
        c = container.parse(data)
        container.check_pixel_limit(c, max_pixels)
        if c.preset == self.name and c.fingerprint != self.fingerprint:
            raise L3ICError(self._other_weights(c.fingerprint.hex()))
        if c.preset != self.name:
            raise L3ICError(
                f"file was written by model {c.preset!r} (weights {c.fingerprint.hex()}), "
                f"not by this model {self.name!r} (weights {self.fingerprint.hex()})"
            )
        if c.latent_shape[2] != self.channels:
            raise L3ICError(
                f"file has {c.latent_shape[2]} latent channels, "
                f"model {self.name!r} has {self.channels}"
            )
        h, w, _ = c.latent_shape
        for k, code in enumerate(c.codes):
            if code.mode == entropy.CONSTANT:
                continue
            table = self.priors[k] if code.mode == entropy.PRIOR else code.table
            if len(code.stream) < entropy.min_stream_bytes(h * w, table):
                raise L3ICError(
                    f"corrupt .l3ic file: channel {k}'s stream of {len(code.stream)} bytes is "
                    f"too short for a {w * 8}x{h * 8} image"
                )
        return c

    def _other_weights(self, fp: str) -> str:
        """The message for a file of this preset written with weights other than these."""
        old = self.earlier.get(fp)
        if old is None:
            return (
                f"file was written by weights {fp} of model {self.name!r}, which this l3ic does "
                f"not know (it has {self.fingerprint.hex()}): it comes from a newer l3ic or "
                "from custom weights; decode it with the l3ic that wrote it"
            )
        return (
            f"file was written by earlier weights of model {self.name!r} ({fp}, shipped with "
            f"l3ic {old.get('l3ic_version', '?')}, commit {old.get('commit') or '?'}), replaced "
            f"by {self.fingerprint.hex()} in this l3ic: decode it with l3ic "
            f"{old.get('l3ic_version', '?')} (the preset policy in the README says why)"
        )

    def _decode_streams(self, c: container.Container, picked: list[int]) -> np.ndarray:
        """Decodes the streams of channels ``picked`` only: (h, w, len(picked)) int8."""
        h, w, _ = c.latent_shape
        q = np.empty((h, w, len(picked)), dtype=np.int8)
        for i, k in enumerate(picked):
            symbols = entropy.decode_channel(c.codes[k], h * w, self.priors[k])
            q[..., i] = (symbols.astype(np.int16) + QMIN).reshape(h, w)
        return q

    @staticmethod
    def _pick(channels: Sequence[int] | None, nc: int) -> list[int]:
        picked = list(range(nc)) if channels is None else [int(k) for k in channels]
        if any(not 0 <= k < nc for k in picked):
            raise L3ICError(f"channels must lie in 0..{nc - 1}, got {list(channels)}")
        return picked

    # ----- whole images <-> bytes ------------------------------------------------------------

    def compress(self, image, drop_alpha: bool = False) -> bytes:
        """Compresses an image array or a path to an image file; returns .l3ic bytes."""
        if isinstance(image, str | os.PathLike):
            image = read_image(image)
        x, gray = to_rgb8(image, drop_alpha=drop_alpha)
        return self.pack_latent(self._encode(x[None])[0], x.shape[:2], gray)

    def decompress(
        self, data: bytes, channels: int | None = None, *, max_pixels: int | None = None
    ) -> np.ndarray:
        """Decodes .l3ic bytes to (H, W, 3) uint8, or (H, W) uint8 for grayscale files.

        Args:
            data: the .l3ic file.
            channels: progressive preview: decode only the first ``channels`` latent channels
                in importance order (``channel_order``), the others at their likeliest value
                (see ``partial_latent``); 0..C, default all.
            max_pixels: refuse files declaring more pixels, before decoding anything
                (default ``container.pixel_limit()``: $L3IC_MAX_PIXELS or 33.5 Mpx).

        Raises:
            DecompressionBombError: the file declares more pixels than the limit.
            L3ICError: any other bad input.
        """
        if channels is None:
            q, meta = self.unpack_latent(data, max_pixels=max_pixels)
        else:
            if not 0 <= channels <= self.channels:
                raise L3ICError(f"channels must lie in 0..{self.channels}, got {channels}")
            order = self.channel_order[:channels].tolist()
            q, meta = self.partial_latent(data, order, max_pixels=max_pixels)
        y = self._decode(q[None], (meta["height"], meta["width"]))[0]
        if meta["grayscale"]:  # the rounded mean of three values: (sum + 1) // 3, no ties
            return ((y.sum(axis=2, dtype=np.uint16) + 1) // 3).astype(np.uint8)
        return y


def _meta(c: container.Container, picked: list[int]) -> dict:
    return {**c.metadata(), "channels": picked}


def _group_by_shape(arrays: Sequence[np.ndarray], keys: Sequence | None = None) -> list[list[int]]:
    """Indices of ``arrays`` grouped by shape (and by ``keys`` if given), in first-seen order."""
    groups: dict = {}
    for i, a in enumerate(arrays):
        groups.setdefault((a.shape, None if keys is None else keys[i]), []).append(i)
    return list(groups.values())
