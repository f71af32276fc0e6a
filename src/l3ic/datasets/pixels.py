"""Latents back to pixels for the loaders that decode (``decode=True``)."""

from collections.abc import Sequence

import numpy as np

__all__ = ["decode_to_pixels"]


def decode_to_pixels(
    preset: str,
    runtime: str | None,
    latents: Sequence[np.ndarray],
    shapes: Sequence[tuple[int, int]],
    scales: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Images decoded from latents by the preset's network, in one call
    (``Codec.decode_latent_batch``: batches of equal shapes).

    Args:
        preset: the preset that wrote the latents.
        runtime: the network's runtime (``api.get_codec``; None: ``$L3IC_RUNTIME`` or auto).
        latents: (h, w, C) int8 latents, all channels (``LatentCoder.read_partial``).
        shapes: each image's (H, W).
        scales: each latent's quantisation scale (default 1).

    Returns:
        float32 (H, W, 3) images in [0, 1], in order.
    """
    from ..api import get_codec  # the network, only when decoding

    images = get_codec(preset, runtime).decode_latent_batch(latents, shapes, scales)
    return [image.astype(np.float32) / 255.0 for image in images]
