"""The entropy model of a trained network: prior tables, channel order, and real-rate validation.

The network's rate term is a differentiable estimate; what a file costs is decided by the
per-channel prior tables and context tables the entropy coder uses (``l3ic.channel_modes``)
and, for progressive decoding, by the order in which channels are stored. All are learned here,
after (or during) training, from the latents of training images, and frozen into the preset's
sidecar (the context tables into ``PRESET.contexts.npz``) by ``export``. ``validate``
codes images for real with such tables, so training logs and ``ship`` compare presets by
the bytes of actual files.

Notation: images are (H, W, 3) uint8; latents are (ceil(H / 8), ceil(W / 8), C) int8 with values
-15..16; prior tables are (C, 32) int64, one row per channel, each summing to 4096.
"""

import numpy as np
from keras import ops

from .. import context_model, entropy, metrics
from ..codebook import (
    ALPHABET,
    MAX_SCALE,
    MIN_SCALE,
    SCALE_UNIT,
    from_symbols,
    quantize,
    to_symbols,
)
from ..codec import Codec
from ..errors import L3ICError
from ..latent_coder import LatentCoder
from ..model import L3ICModel

__all__ = [
    "CHUNK",
    "learn_priors",
    "priors_of",
    "learn_entropy_model",
    "validate",
    "scale_for_rate",
    "channel_order",
]

CHUNK = 64  # images per network call


def _encode_all(codec: Codec, images: list[np.ndarray]) -> list[np.ndarray]:
    """int8 latents of uint8 images, ``CHUNK`` images per network call."""
    return [
        q
        for i in range(0, len(images), CHUNK)
        for q in codec.encode_latent_batch(images[i : i + CHUNK])
    ]


def _encode_z_all(codec: Codec, images: list[np.ndarray]) -> list[np.ndarray]:
    """float32 latents before rounding (``Codec.encode_z_batch``), ``CHUNK`` images per call."""
    return [
        z for i in range(0, len(images), CHUNK) for z in codec.encode_z_batch(images[i : i + CHUNK])
    ]


def _file_bpp(coder: LatentCoder, q: np.ndarray, shape: tuple[int, int]) -> float:
    """Bits per pixel of the coded stream of int8 latent ``q`` (h, w, C) of an image of ``shape``
    (H, W), without context tables: what ``validate`` and ``scale_for_rate`` measure."""
    return metrics.bpp(len(coder.pack_checked(q, shape, False)), *shape)


def _decode_all(
    codec: Codec, latents: list[np.ndarray], sizes: list[tuple[int, int]]
) -> list[np.ndarray]:
    """uint8 images of int8 latents (cropped to ``sizes``, (H, W) each), ``CHUNK`` per call."""
    return [
        y
        for i in range(0, len(latents), CHUNK)
        for y in codec.decode_latent_batch(latents[i : i + CHUNK], sizes[i : i + CHUNK])
    ]


def learn_priors(net: L3ICModel, images: list[np.ndarray]) -> np.ndarray:
    """Per-channel prior tables from the latents of ``images`` (``priors_of``).

    Args:
        net: the model (its encoder runs here).
        images: (H, W, 3) uint8 images, any sizes.

    Returns:
        (C, 32) int64 tables, each summing to 4096.
    """
    return priors_of(_encode_all(Codec.from_model(net, "priors", {}), images), net.num_channels)


def priors_of(latents: list[np.ndarray], channels: int) -> np.ndarray:
    """Per-channel prior tables of (h, w, C) int8 latents.

    The histogram of codebook indices (``codebook.to_symbols``: q + 15) of each channel, plus 1
    in every bin so that no symbol is impossible, quantised by ``entropy.quantize_counts``.

    Returns:
        (C, 32) int64 tables, each summing to 4096.
    """
    hist = np.ones((channels, ALPHABET), dtype=np.int64)
    for q in latents:
        symbols = to_symbols(q.reshape(-1, channels))
        for k in range(channels):
            hist[k] += np.bincount(symbols[:, k], minlength=ALPHABET)
    return np.stack([entropy.quantize_counts(h) for h in hist])


def learn_entropy_model(codec: Codec, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A preset's priors and context tables from the latents of training ``images``.

    Args:
        codec: the preset's codec (its encoder runs here).
        images: (H, W, 3) uint8 images, any sizes.

    Returns:
        ((C, 32) int64 priors, each summing to 4096; (C, CONTEXTS, 32) uint16 context tables
        (``context_model.learn_tables``)).
    """
    latents = _encode_all(codec, images)
    priors = priors_of(latents, codec.num_channels)
    return priors, context_model.learn_tables(latents, priors)


def validate(
    net: L3ICModel,
    images: list[np.ndarray],
    prior_images: list[np.ndarray],
    priors: np.ndarray | None = None,
) -> dict[str, float]:
    """Codes ``images`` for real and measures them.

    Args:
        net: the model.
        images: (H, W, 3) uint8 validation images.
        prior_images: (H, W, 3) uint8 images whose latents give the priors (when ``priors`` is
            None).
        priors: (C, 32) prior tables to use instead.

    Returns:
        Means over ``images`` of ``psnr``, ``ssim`` (``l3ic.metrics``), ``bpp`` (bytes of the
        coded latent stream x 8 / pixels) and ``bpp_est`` (the model's differentiable estimate),
        and ``ms_ssim`` when every image has both sides of at least
        ``metrics.MS_SSIM_MIN_SIDE`` pixels.
    """
    if priors is None:
        priors = learn_priors(net, prior_images)
    codec = Codec.from_model(net, "val", {"priors": priors.tolist()})
    latents = _encode_all(codec, images)
    decoded = _decode_all(codec, latents, [x.shape[:2] for x in images])
    multiscale = all(min(x.shape[:2]) >= metrics.MS_SSIM_MIN_SIDE for x in images)
    names = ("psnr", "ssim", "bpp", "bpp_est") + (("ms_ssim",) if multiscale else ())
    rows = []
    for x, q, y in zip(images, latents, decoded, strict=True):
        z = net.encoder(x[None].astype(np.float32) / 255.0, training=False)
        row = (
            metrics.psnr(x, y),
            metrics.ssim(x, y),
            _file_bpp(codec.coder, q, x.shape[:2]),
            float(ops.convert_to_numpy(net.estimated_bpp(z))),
        )
        rows.append(row + ((metrics.ms_ssim(x, y),) if multiscale else ()))
    return dict(zip(names, np.mean(rows, axis=0).tolist(), strict=True))


def scale_for_rate(
    codec: Codec, train_images: list[np.ndarray], val_images: list[np.ndarray], target_bpp: float
) -> tuple[float, float, float]:
    """The quantisation scale at which ``val_images`` code at ``target_bpp``, as ``validate``
    measures files: priors from the latents of ``train_images`` quantised at that scale, no
    context tables.

    Each image is encoded once; for each scale tried only the rounding, the priors and the
    coding are redone. The scale is the largest multiple of 1/1024 (``codebook.snap_scale``'s
    grid, within 0.125..8) whose mean bpp is at most the target, found by bisection (the rate
    rises with the scale).

    Args:
        codec: the weights' codec (its encoder runs here; its priors are not used).
        train_images, val_images: (H, W, 3) uint8 images.
        target_bpp: the mean bpp wanted on ``val_images``.

    Returns:
        (scale, mean bpp at it, mean bpp at scale 1).

    Raises:
        L3ICError: the target lies outside the rates of scales 0.125..8.
    """
    train_z, val_z = _encode_z_all(codec, train_images), _encode_z_all(codec, val_images)
    channels, shapes = codec.num_channels, [x.shape[:2] for x in val_images]

    def bpp(k: int) -> float:
        s = k / SCALE_UNIT
        priors = priors_of([quantize(z, s) for z in train_z], channels)
        coder = LatentCoder.from_sidecar("val", {"priors": priors.tolist()}, bytes(8), channels)
        rates = [_file_bpp(coder, quantize(z, s), hw) for z, hw in zip(val_z, shapes, strict=True)]
        return float(np.mean(rates))

    lo, hi = int(MIN_SCALE * SCALE_UNIT), int(MAX_SCALE * SCALE_UNIT)
    at = {k: bpp(k) for k in (lo, SCALE_UNIT, hi)}
    if not at[lo] <= target_bpp < at[hi]:
        raise L3ICError(
            f"no scale in {MIN_SCALE}..{MAX_SCALE} codes the validation split at {target_bpp} bpp "
            f"({at[lo]:.4f} to {at[hi]:.4f})"
        )
    lo, hi = (lo, SCALE_UNIT) if at[SCALE_UNIT] > target_bpp else (SCALE_UNIT, hi)
    while hi - lo > 1:  # bpp(lo) <= target < bpp(hi)
        mid = (lo + hi) // 2
        at[mid] = bpp(mid)
        lo, hi = (mid, hi) if at[mid] <= target_bpp else (lo, mid)
    return lo / SCALE_UNIT, at[lo], at[SCALE_UNIT]


def channel_order(
    net: L3ICModel, images: list[np.ndarray], priors: np.ndarray
) -> tuple[list[int], list[float]]:
    """Ranks channels by the PSNR lost when each is set to its most likely value.

    Args:
        net: the model.
        images: (H, W, 3) uint8 validation images.
        priors: (C, 32) prior tables (the mode of a channel's table is its most likely value).

    Returns:
        (channel indices, biggest loss first; mean PSNR loss in dB of every channel, by index).
    """
    codec = Codec.from_model(net, "order", {"priors": priors.tolist()})
    latents = _encode_all(codec, images)
    sizes = [x.shape[:2] for x in images]

    def mean_psnr(qs: list[np.ndarray]) -> float:
        decoded = _decode_all(codec, qs, sizes)
        return float(np.mean([metrics.psnr(x, y) for x, y in zip(images, decoded, strict=True)]))

    base = mean_psnr(latents)
    losses = []
    for k in range(net.num_channels):
        mode = from_symbols(np.argmax(priors[k]))
        flat = []
        for q in latents:
            q = q.copy()
            q[..., k] = mode
            flat.append(q)
        losses.append(base - mean_psnr(flat))
    order = sorted(range(net.num_channels), key=lambda k: -losses[k])
    return order, losses
