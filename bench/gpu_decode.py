"""Decoding speed of l3ic's decoder on an accelerator through JAX: 768x512 images from latents.

The decoder of a preset (float32, as the codec runs it) is jitted with Keras' stateless API
and timed at several batch sizes: images/s with the latents already on the device, and with the
host transfers both ways (latents in, uint8 pixels out). The GPU run's device command runs it
after ``l3ic train gpu-run`` on the shipped 32c (docs/training.md, "The GPU run");
on a CPU it runs too (``--dry-run``: a small image and short timings, as CI checks it).

Examples:
  KERAS_BACKEND=jax python -m bench.gpu_decode --json $OUT/decode.json
  KERAS_BACKEND=jax python -m bench.gpu_decode --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["time_decoding", "main"]

SIZE, BATCHES = (512, 768), (1, 16, 64)


def time_decoding(
    preset: str, weights: Path | None, size: tuple[int, int], batches, seconds: float
) -> dict:
    """Images/s of ``preset``'s decoder at each batch size (``{"batch_B": {...}}``)."""
    import jax
    import jax.numpy as jnp
    import keras

    from l3ic.codebook import latent_size
    from l3ic.model import load_model
    from l3ic.presets import PRESETS, weights_path
    from l3ic.training.gpu_run import time_calls

    keras.config.set_dtype_policy("float32")
    channels = PRESETS[preset]
    net = load_model(channels, weights or weights_path(preset))
    dec = net.decoder
    tv = [v.value for v in dec.trainable_variables]
    ntv = [v.value for v in dec.non_trainable_variables]

    @jax.jit
    def decode(q):
        y, _ = dec.stateless_call(tv, ntv, q.astype(jnp.float32))
        return jnp.round(jnp.clip(y, 0.0, 1.0) * 255.0).astype(jnp.uint8)

    h, w = size
    rng = np.random.default_rng(0)
    device = jax.devices()[0]
    result = {
        "device": f"{device.platform}: {device.device_kind}",
        "preset": preset,
        "size": f"{w}x{h}",
        "dtype": "float32",
    }
    for b in batches:
        q_host = rng.integers(-4, 5, (b, *latent_size(h, w), channels), dtype=np.int8)
        q_dev = jax.device_put(q_host)
        t_dev, runs = time_calls(lambda q=q_dev: decode(q).block_until_ready(), seconds)
        t_host, _ = time_calls(lambda q=q_host: np.asarray(decode(jax.device_put(q))), seconds)
        result[f"batch_{b}"] = {
            "images_per_s_on_device": round(b / t_dev, 1),
            "images_per_s_with_transfers": round(b / t_host, 1),
            "timed_calls": runs,
        }
        print(
            f"decode {w}x{h} {preset} batch {b}: {b / t_dev:.1f} images/s on the device, "
            f"{b / t_host:.1f} with host transfers",
            flush=True,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="32c")
    p.add_argument("--weights", type=Path, help="weights .npz (default: the shipped preset's)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--dry-run", action="store_true", help="a 96x64 image, batches 1 and 2")
    args = p.parse_args(argv)
    size, batches, seconds = (SIZE, BATCHES, 2.0) if not args.dry_run else ((64, 96), (1, 2), 0.1)
    result = time_decoding(args.preset, args.weights, size, batches, seconds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
