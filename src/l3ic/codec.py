"""Images <-> integer latents <-> .l3ic bytes, for any image size.

Notation: x is an image (H, W, 3) uint8; z the encoder's output (h, w, C) float32, with
h = ceil(H / 8), w = ceil(W / 8); the latent q = round(s z) is (h, w, C) int8 with values
-15..16, at the file's quantisation scale s (1 unless a quality or a size asks otherwise:
``rate_control``), and the decoder is given q / s. Images are padded at the bottom/right to a
multiple of 8 by repeating the edge, and cropped back after decoding.

Large images are coded in tiles. Each tile's core (``tile`` x ``tile`` latent cells) is computed
with a margin of context around it that covers the network's receptive field, so tiled and
untiled results are the same. Receptive fields: an encoder output cell sees at most 45 px
beyond its own 8x8 block (three strided 5x5 convs and six 3x3 convs at 1/4 scale), so
``ENCODER_MARGIN`` = 8 cells (64 px); a decoded pixel sees at most 4.75 latent cells around its
own (3x3 at 1/8 scale, seven 3x3 at 1/4, one 3x3 at 1/2), so ``DECODER_MARGIN`` = 6 cells.
"""

import os
from collections.abc import Iterable, Sequence

import numpy as np

from .codebook import STRIDE, dequantize, latent_size, quantize, snap_scale
from .deprecation import renamed_keyword, renamed_property, warn_deprecated
from .errors import L3ICError
from .image import read_image, to_rgb8
from .latent_coder import LatentCoder, channels_arg
from .presets import (
    assign_arrays,
    fingerprint,
    load_context_tables,
    load_sidecar,
    model_arrays,
    preset_num_channels,
    read_arrays,
    resolve_preset,
)
from .presets import weights_path as _weights_path
from .rate_control import check_bpp, fit_scale, quality_scale
from .runtime import KerasNet, OnnxNet, OpenVinoNet, resolve_runtime

__all__ = ["Codec", "ENCODER_MARGIN", "DECODER_MARGIN"]

ENCODER_MARGIN = 8
DECODER_MARGIN = 6
DEFAULT_TILE = 64  # latent cells: 512 x 512 px cores


# The runtimes that run the ONNX graphs built from a preset's weights (runtime.py).
_GRAPH_RUNTIMES = {"onnx": OnnxNet, "openvino": OpenVinoNet}


def _spans(n: int, tile: int, margin: int) -> Iterable[tuple[int, int, int, int]]:
    """Yields (core_start, core_stop, window_start, window_stop) along one axis of length n."""
    for start in range(0, n, tile):
        stop = min(start + tile, n)
        yield start, stop, max(0, start - margin), min(n, stop + margin)


class Codec:
    """A preset's network with its latent coder: compresses and decompresses images.

    ``Codec`` = ``coder`` (a ``LatentCoder``: latents <-> bytes, numpy only) + ``net`` (the
    network on a runtime, images <-> latents: ``runtime.OnnxNet`` on ONNX Runtime,
    ``runtime.OpenVinoNet`` on OpenVINO, or ``runtime.KerasNet`` around the Keras ``L3ICModel``,
    the reference and training path).

    Args:
        preset: "16c", "32c" or "64c" (default ``presets.DEFAULT_PRESET``); its weights and
            sidecar come from the models folder (``presets.models_dir``); ``model=`` is its
            deprecated name.
        tile: tile core size in latent cells (8 px each) for large images.
        runtime: "auto", "onnx", "openvino" or "keras" (default ``$L3IC_RUNTIME``, else
            "auto": OpenVINO in bf16 on CPUs with AMX or AVX512-BF16, else ONNX Runtime).

    Attributes:
        preset: the preset name stored in every file.
        coder: the ``LatentCoder`` (priors, channel order, fingerprint).
        net: the network on its runtime (``net.runtime``; ``net.model`` is the ``L3ICModel``
            of a Keras one).
        runtime: the runtime that runs, "onnx", "openvino" or "keras".
        num_channels: latent channels C.
        fingerprint: 8 bytes identifying the weights.
        priors: (C, 32) int64 per-channel prior tables.
        channel_order: (C,) channel indices, most important first.
    """

    def __init__(
        self,
        preset: str | None = None,
        *,
        tile: int = DEFAULT_TILE,
        runtime: str | None = None,
        model: str | None = None,
    ):
        preset = resolve_preset(preset, model)
        runtime = resolve_runtime(runtime)
        num_channels = preset_num_channels(preset)
        path = _weights_path(preset)
        sidecar = load_sidecar(preset)
        arrays = read_arrays(path)
        fp = fingerprint(arrays)
        if sidecar.get("fingerprint", fp.hex()) != fp.hex():
            raise L3ICError(
                f"the weights of preset {preset!r} ({path}, {fp.hex()}) are not those its "
                f"sidecar describes ({sidecar['fingerprint']}): export them again"
            )
        if runtime in _GRAPH_RUNTIMES:
            net = _GRAPH_RUNTIMES[runtime](arrays, num_channels, key=f"{preset}-{fp.hex()}")
        else:
            net = KerasNet(_keras_model(num_channels))
            assign_arrays(net.model, arrays, path)
        tables = load_context_tables(preset, fp)
        self._setup(LatentCoder.from_sidecar(preset, sidecar, fp, num_channels, tables), net, tile)

    @classmethod
    def untrained(cls, num_channels: int = 16, seed: int = 0, tile: int = DEFAULT_TILE) -> "Codec":
        """A Keras codec with seeded random weights and a generic prior, for tests and
        experiments."""
        model = _keras_model(num_channels, seed)
        return cls.from_model(model, f"untrained-{num_channels}c", {}, tile)

    @classmethod
    def from_model(
        cls,
        net,
        preset: str,
        sidecar: dict,
        tile: int = DEFAULT_TILE,
        runtime: str = "keras",
        context_tables=None,
    ) -> "Codec":
        """Wraps an in-memory ``L3ICModel`` (e.g. during training) with the priors of ``sidecar``.

        Args:
            net: the ``model.L3ICModel``.
            preset: the preset its files will carry (any name: the weights are ``net``'s).
            sidecar: a sidecar dict (priors, channel order; {} for generic ones).
            runtime: "keras" runs ``net`` itself; "onnx" or "openvino" (or "auto") runs the
                ONNX graphs built from its current weights (in memory, not cached).
            context_tables: the context tables of these weights ((C, CONTEXTS, 32) uint16), or
                None to code without the context mode.
        """
        arrays = model_arrays(net)
        fp = fingerprint(arrays)
        runtime = resolve_runtime(runtime)
        if runtime in _GRAPH_RUNTIMES:
            runner = _GRAPH_RUNTIMES[runtime](arrays, net.num_channels, key=None)
        else:
            runner = KerasNet(net)
        self = cls.__new__(cls)
        coder = LatentCoder.from_sidecar(preset, sidecar, fp, net.num_channels, context_tables)
        self._setup(coder, runner, tile)
        return self

    def _setup(self, coder: LatentCoder, net, tile: int) -> None:
        if tile < 1:
            raise L3ICError(f"tile must be at least 1 latent cell, got {tile}")
        if coder.num_channels != net.num_channels:
            raise L3ICError(f"preset {coder.preset!r}: priors for {coder.num_channels} channels")
        self.coder, self.net, self.tile = coder, net, tile

    preset = property(lambda self: self.coder.preset, doc="The preset name stored in files.")
    runtime = property(lambda self: self.net.runtime, doc='"onnx", "openvino" or "keras".')
    num_channels = property(lambda self: self.coder.num_channels, doc="Latent channels C.")
    channels = renamed_property("Codec", "channels", "num_channels")
    fingerprint = property(lambda self: self.coder.fingerprint, doc="8 bytes: the weights.")
    priors = property(lambda self: self.coder.priors, doc="(C, 32) int64 prior tables.")
    channel_order = property(
        lambda self: self.coder.channel_order, doc="(C,) most important first."
    )

    name = renamed_property("Codec", "name", "preset")

    # ----- network: images <-> latents -------------------------------------------------------

    def encode_z(self, image) -> np.ndarray:
        """The encoder's output before quantisation: image (H, W[, 3]) array -> z
        (ceil(H/8), ceil(W/8), C) float32; ``codebook.quantize(z, scale)`` is the latent of a
        file at ``scale``."""
        x, _ = to_rgb8(image)
        return self._encode(x[None])[0]

    def encode_latent(self, image, scale: float = 1.0) -> np.ndarray:
        """Runs the encoder. image: (H, W[, 3]) array; returns (ceil(H/8), ceil(W/8), C) int8,
        quantised at ``scale`` (a multiple of 1/1024 in 0.125..8; 1: the preset as trained)."""
        scale = snap_scale(scale)
        return quantize(self.encode_z(image), scale)

    def encode_z_batch(self, images: Sequence) -> list[np.ndarray]:
        """``encode_z`` of many images; equal sizes run as one batch. Returns a list of
        (ceil(H/8), ceil(W/8), C) float32 arrays."""
        rgb = [to_rgb8(im)[0] for im in images]
        out: list[np.ndarray | None] = [None] * len(rgb)
        for idx in _group_by_shape(rgb):
            for i, z in zip(idx, self._encode(np.stack([rgb[i] for i in idx])), strict=True):
                out[i] = z
        return out

    def encode_latent_batch(self, images: Sequence, scale: float = 1.0) -> list[np.ndarray]:
        """Encodes many images; equal sizes run as one batch. Returns a list of int8 latents,
        quantised at ``scale``."""
        scale = snap_scale(scale)
        return [quantize(z, scale) for z in self.encode_z_batch(images)]

    def decode_latent(
        self, latent, shape: tuple[int, int] | None = None, scale: float = 1.0, **deprecated
    ):
        """Runs the decoder.

        Args:
            latent: (h, w, C) integer array, values -15..16.
            shape: (H, W) of the image (default (8h, 8w)); ``size=`` is its deprecated name.
            scale: the scale the latent was quantised at (a file's ``metadata["scale"]``).

        Returns:
            (H, W, 3) uint8 image.
        """
        shape = _renamed(deprecated, "size", "shape", shape)
        q = self.coder.check_latent(latent)
        return self._decode(q[None], shape, snap_scale(scale))[0]

    def decode_latent_batch(
        self,
        latents: Sequence,
        shapes: Sequence | None = None,
        scales: Sequence[float] | None = None,
        **deprecated,
    ):
        """Decodes many latents; equal shapes and scales run as one batch.

        Args:
            latents: (h, w, C) integer arrays.
            shapes: (H, W) of each image (default (8h, 8w)); ``sizes=`` is its deprecated name.
            scales: the scale of each latent (default all 1).

        Returns:
            A list of (H, W, 3) uint8 images.
        """
        shapes = _renamed(deprecated, "sizes", "shapes", shapes)
        qs = [self.coder.check_latent(q) for q in latents]
        shapes = list(shapes) if shapes is not None else [None] * len(qs)
        scales = [snap_scale(s) for s in scales] if scales is not None else [1.0] * len(qs)
        out: list[np.ndarray | None] = [None] * len(qs)
        for idx in _group_by_shape(qs, list(zip(shapes, scales, strict=True))):
            batch = self._decode(np.stack([qs[i] for i in idx]), shapes[idx[0]], scales[idx[0]])
            for i, y in zip(idx, batch, strict=True):
                out[i] = y
        return out

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 -> z (B, ceil(H/8), ceil(W/8), C) float32, tile by tile."""
        b, height, width, _ = x.shape
        h, w = latent_size(height, width)
        s = STRIDE
        x = np.pad(x, ((0, 0), (0, s * h - height), (0, s * w - width), (0, 0)), mode="edge")
        z = np.empty((b, h, w, self.num_channels), dtype=np.float32)
        for i0, i1, a0, a1 in _spans(h, self.tile, ENCODER_MARGIN):
            for j0, j1, c0, c1 in _spans(w, self.tile, ENCODER_MARGIN):
                t = self.net.encode(np.ascontiguousarray(x[:, s * a0 : s * a1, s * c0 : s * c1]))
                z[:, i0:i1, j0:j1] = t[:, i0 - a0 : i1 - a0, j0 - c0 : j1 - c0]
        return z

    def _decode(self, q: np.ndarray, shape: tuple[int, int] | None, scale: float) -> np.ndarray:
        """(B, h, w, C) int8 at ``scale`` -> (B, H, W, 3) uint8, tile by tile, cropped to
        ``shape`` (H, W)."""
        b, h, w, _ = q.shape
        s = STRIDE
        height, width = shape if shape is not None else (s * h, s * w)
        if latent_size(height, width) != (h, w):
            raise L3ICError(f"image shape {height}x{width} does not fit a {h}x{w} latent")
        y = np.empty((b, s * h, s * w, 3), dtype=np.uint8)
        for i0, i1, a0, a1 in _spans(h, self.tile, DECODER_MARGIN):
            for j0, j1, c0, c1 in _spans(w, self.tile, DECODER_MARGIN):
                t = self.net.decode(np.ascontiguousarray(dequantize(q[:, a0:a1, c0:c1], scale)))
                y[:, s * i0 : s * i1, s * j0 : s * j1] = t[
                    :, s * (i0 - a0) : s * (i1 - a0), s * (j0 - c0) : s * (j1 - c0)
                ]
        return y[:, :height, :width]

    # ----- entropy coding: latents <-> bytes (the coder's) -----------------------------------

    def pack_latent(
        self,
        latent,
        shape: tuple[int, int] | None = None,
        grayscale=False,
        scale: float = 1.0,
        **deprecated,
    ):
        """Entropy-codes a latent into .l3ic bytes (``LatentCoder.pack``).

        Args:
            latent: (h, w, C) integer array, values -15..16.
            shape: (H, W) of the image; ``size=`` is its deprecated name.
            grayscale: mark the file to decode as a (H, W) grayscale image.
            scale: the scale the latent was quantised at (``encode_latent``'s).
        """
        shape = _renamed(deprecated, "size", "shape", shape)
        if shape is None:
            raise TypeError("pack_latent() needs the image shape (H, W)")
        return self.coder.pack(latent, shape, grayscale, scale)

    def read_latent(self, data, channels: Sequence[int] | None = None, *, max_pixels=None):
        """The latent of .l3ic bytes, only ``channels`` if given (``LatentCoder.read``).

        Returns:
            ((h, w, len(channels)) int8 latent, metadata dict).
        """
        return self.coder.read(data, channels, max_pixels=max_pixels)

    def read_partial_latent(self, data, channels: Sequence[int], *, max_pixels=None):
        """The (h, w, C) latent with only ``channels`` decoded, the others at their likeliest
        value (``LatentCoder.read_partial``).

        Returns:
            ((h, w, C) int8 latent, metadata dict).
        """
        return self.coder.read_partial(data, channels, max_pixels=max_pixels)

    def unpack_latent(self, data, channels: Sequence[int] | None = None, *, max_pixels=None):
        """Deprecated (until l3ic 0.20): ``read_latent``."""
        warn_deprecated("Codec.unpack_latent", "Codec.read_latent")
        return self.read_latent(data, channels, max_pixels=max_pixels)

    def partial_latent(self, data, channels: Sequence[int], *, max_pixels=None):
        """Deprecated (until l3ic 0.20): ``read_partial_latent``."""
        warn_deprecated("Codec.partial_latent", "Codec.read_partial_latent")
        return self.read_partial_latent(data, channels, max_pixels=max_pixels)

    # ----- whole images <-> bytes ------------------------------------------------------------

    def compress(
        self,
        image,
        drop_alpha: bool = False,
        *,
        quality: float | None = None,
        scale: float | None = None,
        bpp: float | None = None,
        max_bytes: int | None = None,
    ) -> bytes:
        """Compresses an image array or a path to an image file; returns .l3ic bytes.

        At most one of ``quality``, ``scale``, ``bpp`` and ``max_bytes`` sets the rate; by default
        the file is coded at scale 1, the preset as trained (quality 50).

        Args:
            image: (H, W), (H, W, 3) or (H, W, 4) array, or a path to an image file.
            drop_alpha: compress an RGBA image without its alpha channel (else an error).
            quality: 0..100, the scale ``rate_control.quality_scale`` gives (0.354 to 1.68).
            scale: the quantisation scale itself, 0.125..8 (snapped to 1/1024).
            bpp: the largest file of at most ``bpp`` bits per pixel (H x W pixels).
            max_bytes: the largest file of at most ``max_bytes`` bytes.

        Raises:
            L3ICError: bad input, or a ``bpp`` or ``max_bytes`` that even scale 0.125 exceeds.
        """
        asked = {"quality": quality, "scale": scale, "bpp": bpp, "max_bytes": max_bytes}
        asked = {k: v for k, v in asked.items() if v is not None}
        if len(asked) > 1:
            raise L3ICError(
                f"give one of quality, scale, bpp, max_bytes, not {' and '.join(asked)}"
            )
        if bpp is not None:
            check_bpp(bpp)
        fixed = _fixed_scale(quality, scale)
        x, gray = _rgb_input(image, drop_alpha)
        z = self._encode(x[None])[0]
        shape = x.shape[:2]

        def pack(s: float) -> bytes:
            return self.coder.pack_checked(quantize(z, s), shape, gray, s)

        if bpp is None and max_bytes is None:
            return pack(fixed)
        budget = max_bytes if max_bytes is not None else int(bpp * shape[0] * shape[1] // 8)
        what = f"this {shape[1]}x{shape[0]} image, with preset {self.preset!r},"
        return fit_scale(pack, budget, what)[1]

    def compress_batch(
        self,
        images: Sequence,
        drop_alpha: bool = False,
        *,
        quality: float | None = None,
        scale: float | None = None,
    ) -> list[bytes]:
        """Compresses many images at one rate, as ``compress`` does each; images of one size go
        through the encoder as one batch, which is how a runtime with bf16 units earns its speed
        (docs/runtimes.md). The files are ``compress``'s but for a latent value on a rounding
        boundary now and then (a batch sums in another order), as between runtimes.

        Args:
            images: (H, W), (H, W, 3) or (H, W, 4) arrays or paths to image files (all are
                read before the encoder runs; the encoder sees a batch tile by tile).
            drop_alpha, quality, scale: as ``compress``'s (at most one of quality and scale).

        Returns:
            The .l3ic bytes of each image, in order.

        Raises:
            L3ICError: a bad image (nothing is returned then: ``compress`` tells which).
        """
        if quality is not None and scale is not None:
            raise L3ICError("give one of quality and scale, not both")
        s = _fixed_scale(quality, scale)
        rgb = [_rgb_input(image, drop_alpha) for image in images]
        latents = self.encode_latent_batch([x for x, _ in rgb], s)
        return [
            self.coder.pack_checked(q, x.shape[:2], gray, s)
            for (x, gray), q in zip(rgb, latents, strict=True)
        ]

    def decompress(
        self,
        data,
        channels: Sequence[int] | None = None,
        *,
        top_channels: int | None = None,
        max_pixels: int | None = None,
    ) -> np.ndarray:
        """Decodes .l3ic bytes to (H, W, 3) uint8, or (H, W) uint8 for grayscale files.

        Args:
            data: the .l3ic file, or its parsed ``container.Container``.
            channels: decode only these channel indices, the others at their likeliest value
                (see ``LatentCoder.read_partial``); default all. A number here is the
                deprecated spelling of ``top_channels``.
            top_channels: progressive preview: decode only the ``top_channels`` most important
                channels (``channel_order``), 0..C.
            max_pixels: refuse files declaring more pixels, before decoding anything
                (default ``container.pixel_limit()``: $L3IC_MAX_PIXELS or 33.5 Mpx).

        Raises:
            DecompressionBombError: the file declares more pixels than the limit.
            L3ICError: any other bad input.
        """
        channels, top_channels = channels_arg(channels, top_channels)
        if top_channels is not None:
            channels = self.coder.top_channels(top_channels)
        if channels is None:
            q, meta = self.coder.read(data, max_pixels=max_pixels)
        else:
            q, meta = self.coder.read_partial(data, channels, max_pixels=max_pixels)
        y = self._decode(q[None], (meta["height"], meta["width"]), meta["scale"])[0]
        if meta["grayscale"]:  # the rounded mean of three values: (sum + 1) // 3, no ties
            return ((y.sum(axis=2, dtype=np.uint16) + 1) // 3).astype(np.uint8)
        return y


def _keras_model(num_channels: int, seed: int | None = None):
    """A new ``L3ICModel`` (Keras imported quietly here), with seeded weights if ``seed``."""
    from .keras_import import import_keras_quietly

    try:
        import_keras_quietly()
    except ImportError as e:
        raise L3ICError(
            f'the keras runtime needs Keras and TensorFlow ({e}): pip install "l3ic[train]", '
            "or use the default runtime, auto"
        ) from None
    import keras

    from .model import L3ICModel

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return L3ICModel(num_channels)


def _renamed(deprecated: dict, old: str, new: str, value):
    """The value of keyword ``new``, or of its deprecated name ``old`` (with a warning)."""
    if set(deprecated) - {old}:
        raise TypeError(f"unexpected keyword arguments {sorted(set(deprecated) - {old})}")
    return renamed_keyword(old, new, deprecated.get(old), value)


def _rgb_input(image, drop_alpha: bool) -> tuple[np.ndarray, bool]:
    """``to_rgb8`` of an image array or of the image file at a path."""
    if isinstance(image, str | os.PathLike):
        image = read_image(image)
    return to_rgb8(image, drop_alpha=drop_alpha)


def _fixed_scale(quality: float | None, scale: float | None) -> float:
    """The scale of a file at ``quality`` (0..100), else at ``scale``, else 1."""
    return quality_scale(quality) if quality is not None else snap_scale(scale or 1.0)


def _group_by_shape(arrays: Sequence[np.ndarray], keys: Sequence | None = None) -> list[list[int]]:
    """Indices of ``arrays`` grouped by shape (and by ``keys`` if given), in first-seen order."""
    groups: dict = {}
    for i, a in enumerate(arrays):
        groups.setdefault((a.shape, None if keys is None else keys[i]), []).append(i)
    return list(groups.values())
