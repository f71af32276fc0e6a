"""PSNR of the progressive preview against the number of latent channels decoded, per preset.

usage: python examples/progressive_curve.py [FOLDER] [-m 16c 32c 64c] [--ks 0 1 2 4 ...]
           [--out examples/results]

Every image of FOLDER (default ../shared/data/kodak beside the repository) is compressed once
per preset; then, for each k, the first k channels in the preset's importance order are decoded
and the rest set to their likeliest value (``Codec.decompress(data, top_channels=k)``). Reported per
k: mean RGB PSNR against the original, and the bits per pixel a reader fetches for that preview
(header plus the first k channels' streams; the file CRC is not counted). Presets without
weights are skipped. Writes ``progressive_curve.json`` and ``progressive_curve.png`` to --out.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from l3ic import L3ICError, container
from l3ic.api import get_codec
from l3ic.datasets.convert import find_images
from l3ic.image import read_image
from l3ic.metrics import psnr

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
DEFAULT_KS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def curve(preset: str, images: list[np.ndarray], ks: list[int]) -> dict:
    """Mean PSNR and bits per pixel read for each k in ``ks`` (those up to C are used)."""
    codec = get_codec(preset)
    ks = sorted({k for k in ks if k <= codec.num_channels} | {codec.num_channels})
    files = [codec.compress(x) for x in images]
    sizes = [x.shape[:2] for x in images]
    pixels = sum(h * w for h, w in sizes)
    streams = [[len(code.stream) for code in container.parse(d).codes] for d in files]
    rows = []
    for k in ks:
        first = codec.channel_order[:k].tolist()
        latents = [codec.read_partial_latent(d, first)[0] for d in files]
        decoded = codec.decode_latent_batch(latents, sizes)
        read = sum(
            len(d) - 4 - sum(s) + sum(s[c] for c in first)
            for d, s in zip(files, streams, strict=True)
        )
        rows.append(
            {
                "k": k,
                "psnr": float(np.mean([psnr(x, y) for x, y in zip(images, decoded, strict=True)])),
                "bpp_read": 8 * read / pixels,
            }
        )
        print(f"{preset} k={k:3d}: {rows[-1]['psnr']:.2f} dB, {rows[-1]['bpp_read']:.3f} bpp")
    return {
        "preset": preset,
        "channels": codec.num_channels,
        "bpp": 8 * sum(map(len, files)) / pixels,
        "curve": rows,
    }


def plot(results: list[dict], path: Path) -> None:
    """PSNR against k, one line per preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ks = [row["k"] for row in r["curve"]]
        ax.plot(ks, [row["psnr"] for row in r["curve"]], "o-", label=f"{r['preset']}")
    ax.set_xlabel("latent channels decoded (importance order)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_title("l3ic progressive preview")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, nargs="?", default=DEFAULT_DATA)
    p.add_argument("-m", "--presets", nargs="+", default=["16c", "32c", "64c"])
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)

    images = [read_image(args.folder / rel) for rel in find_images(args.folder)]
    if not images:
        sys.exit(f"no images in {args.folder}")
    results = []
    for preset in args.presets:
        try:
            results.append(curve(preset, images, args.ks))
        except L3ICError as e:
            print(f"skipping {preset}: {e}", file=sys.stderr)
    if not results:
        sys.exit("no preset has weights")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"folder": str(args.folder), "images": len(images), "presets": results}
    (args.out / "progressive_curve.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(results, args.out / "progressive_curve.png")
    return results


if __name__ == "__main__":
    main()
