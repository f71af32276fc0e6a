"""Training runs (and the shipped preset) compared at several quantisation scales.

    python -m bench.scale_runs ../shared/data/train-gpu RUN_DIR [RUN_DIR ...] --preset 32c

What training with random scales (``l3ic train --scale-range``) buys: each run's last
checkpoint and the shipped weights code the validation split at the scales of ``--scales``
(default 0.5 ... 2, the qualities 0, 25, 50, 75 and 100), all through one coder (the shipped
preset's priors, without context tables, so the rates compare though the runs' own entropy
models were never learned), and are scored: bpp, PSNR, SSIM, MS-SSIM, and the share of latent
values that clip at the codebook's ends (|round(s z)| beyond -15..16: what the 32 levels cost at
large scales). Validation at s = 1 is what ``l3ic train`` logs; the other scales are what
``--quality`` would give. A run whose decoder is told the scale (``--told-scale``) decodes each
scale with its FiLMs folded into the weights for that scale (``model.fold_scale``).
"""

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from l3ic.codebook import QMAX, QMIN
from l3ic.codec import Codec
from l3ic.evaluate import scored
from l3ic.image import list_images, read_image
from l3ic.model import fold_scale, load_model
from l3ic.presets import PRESETS, load_sidecar, model_arrays, weights_path
from l3ic.training.data import split_files
from l3ic.training.export import _load_run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the training data folder (its validation split)")
    p.add_argument("runs", nargs="*", type=Path, help="l3ic train run folders")
    p.add_argument("--preset", default="32c", choices=list(PRESETS))
    p.add_argument("--scales", nargs="+", type=float, default=[0.5, 0.707, 1.0, 1.414, 2.0])
    p.add_argument("--json", type=Path, help="write every mean here")
    args = p.parse_args(argv)
    images = [read_image(f) for f in split_files(list_images(args.folder))[1]]
    nets = {"shipped": load_model(PRESETS[args.preset], weights_path(args.preset))}
    for run in args.runs:
        nets[run.name] = _load_run(run, args.preset, args.folder)[1]
    sidecar = load_sidecar(args.preset)
    results = {}
    print(
        "| weights | scale | bpp | PSNR dB | SSIM | MS-SSIM | clipped % |\n"
        "|---|---|---|---|---|---|---|"
    )
    for name, net in nets.items():
        codec = Codec.from_model(net, args.preset, sidecar, runtime="onnx")
        z = np.concatenate([codec.encode_z(image).ravel() for image in images])
        results[name] = []
        for scale in tqdm(args.scales, desc=name, leave=False):
            if net.told_scale:
                folded = load_model(net.num_channels, fold_scale(model_arrays(net), scale))
                codec = Codec.from_model(folded, args.preset, sidecar, runtime="onnx")
            m = {"scale": scale, **scored(codec, images, scale=scale)}
            m["clipped"] = clipped_share(z, scale)
            results[name].append(m)
            print(
                f"| {name} | {scale:g} | {m['bpp']:.4f} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
                f"{m['ms-ssim']:.4f} | {100 * m['clipped']:.3f} |",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"images": len(images), "results": results}, indent=1))


def clipped_share(z: np.ndarray, scale: float) -> float:
    """The share of latent values z (float32, any shape) that clip at the codebook's ends when
    quantised at ``scale``: round(scale z) below -15 or above 16."""
    q = np.round(np.float32(scale) * z)
    return float(np.mean((q < QMIN) | (q > QMAX)))


if __name__ == "__main__":
    main()
