"""Each preset's rate-quality curve over ``--quality``, and how closely ``--bpp`` lands.

    python -m bench.quality_curve ../shared/data/kodak-crop512 [--presets 16c 32c 64c]
    python -m bench.quality_curve ../shared/data/train-gpu --validation   # the validation split
    python -m bench.quality_curve ../shared/data/kodak-crop512 --chosen   # no preset named

For every image and preset: the files of each ``--qualities`` (default 0, 10, ..., 100), written by
``l3ic.compress(quality=...)`` (the encoder runs once per image and quality; each file is decoded
and scored: bpp, PSNR, SSIM (scikit-image's default, RGB), MS-SSIM), and the files of
``l3ic.compress(bpp=B)`` for each ``--bpp`` target B, with the bpp they reached. Prints the mean
curve per preset and the share of ``--bpp`` files within 3 % under their target; ``--json``
keeps every number. ``--chosen`` measures ``--quality`` without a preset instead: each quality
coded by the preset and scale ``l3ic.rate_control.choose_for_quality`` picks.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

import l3ic
from l3ic.api import get_codec
from l3ic.evaluate import scored
from l3ic.image import list_images, read_image
from l3ic.presets import PRESETS
from l3ic.rate_control import choose_for_quality, quality_scale
from l3ic.training.data import split_files

QUALITIES = list(range(0, 101, 10))


def curve(codec: "l3ic.Codec", images: list[np.ndarray], qualities: list[float]) -> list[dict]:
    """One mean ``score`` row per quality."""
    return [
        {"quality": q, "scale": quality_scale(q), **scored(codec, images, quality=q)}
        for q in tqdm(qualities, desc=f"{codec.preset} curve", leave=False)
    ]


def chosen_curve(images: list[np.ndarray], qualities: list[float]) -> list[dict]:
    """One mean ``score`` row per quality without a preset, with the preset and scale chosen."""
    rows = []
    for q in tqdm(qualities, desc="chosen curve", leave=False):
        preset, scale = choose_for_quality(q)
        rows.append(
            {
                "quality": q,
                "preset": preset,
                "scale": scale,
                **scored(get_codec(preset), images, scale=scale),
            }
        )
    return rows


def _print_rows(rows: list[dict]) -> None:
    chosen = "preset" in rows[0]
    print(f"| quality |{' preset |' if chosen else ''} scale | bpp | PSNR dB | SSIM | MS-SSIM |")
    print("|---|---|---|---|---|---|" + ("---|" if chosen else ""))
    for r in rows:
        ms = "-" if r["ms-ssim"] is None else f"{r['ms-ssim']:.4f}"
        preset = f" {r['preset']} |" if chosen else ""
        print(
            f"| {r['quality']:g} |{preset} {r['scale']:.3f} | {r['bpp']:.3f} | {r['psnr']:.2f} | "
            f"{r['ssim']:.4f} | {ms} |"
        )


def bpp_accuracy(
    codec: "l3ic.Codec | None", images: list[np.ndarray], targets: list[float]
) -> dict:
    """For each target: every image's reached bpp (None where even scale 0.125 exceeds the
    target, which ``compress`` refuses), and the share of all images within 3 % under it.
    ``codec`` None: ``l3ic.compress`` without a preset (the preset chosen for the target)."""
    compress = l3ic.compress if codec is None else codec.compress
    out = {}
    for target in targets:
        reached = []
        for image in images:
            try:
                data = compress(image, bpp=target)
            except l3ic.L3ICError:  # under the preset's least rate
                reached.append(None)
                continue
            reached.append(8 * len(data) / (image.shape[0] * image.shape[1]))
        within = [r is not None and 0.97 * target <= r <= target for r in reached]
        out[str(target)] = {"reached": reached, "within_3_percent": float(np.mean(within))}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="a folder of images")
    p.add_argument("--validation", action="store_true", help="only the training validation split")
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--qualities", nargs="+", type=float, default=QUALITIES)
    p.add_argument("--bpp", nargs="*", type=float, default=[0.25, 0.5, 1.0, 1.5])
    p.add_argument("--json", type=Path, help="write every number here")
    p.add_argument("--chosen", action="store_true", help="--quality without a preset instead")
    args = p.parse_args(argv)
    files = list_images(args.folder)
    if args.validation:
        files = split_files(files)[1]
    images = [read_image(f) for f in tqdm(files, desc="reading", leave=False)]
    results = {"folder": str(args.folder), "images": len(images), "presets": {}}
    runs = {None: "chosen"} if args.chosen else {p: p for p in args.presets}
    for preset, name in runs.items():
        codec = None if preset is None else l3ic.Codec(preset)
        rows = (
            chosen_curve(images, args.qualities)
            if codec is None
            else curve(codec, images, args.qualities)
        )
        accuracy = bpp_accuracy(codec, images, args.bpp)
        results["presets"][name] = {"curve": rows, "bpp_targets": accuracy}
        what = "--quality without a preset" if codec is None else preset
        print(f"\n{what}: {len(images)} images of {args.folder}")
        _print_rows(rows)
        for target, a in accuracy.items():
            reached = [r for r in a["reached"] if r is not None]
            share, refused = 100 * a["within_3_percent"], len(a["reached"]) - len(reached)
            mean = f"{np.mean(reached):.4f}" if reached else "-"
            print(
                f"--bpp {target}: mean {mean}, {share:.0f} % of images within 3 % under, "
                f"{refused} refused (under the least rate)"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
