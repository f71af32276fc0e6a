"""Rate and quality of a preset on a folder of images, through real .l3ic files.

``python -m l3ic.evaluate --preset 32c DIR [--json OUT] [--sidecar-key KEY]``

Each image is compressed with ``l3ic.compress``, written as an .l3ic file to a temporary folder,
read back and decompressed with ``l3ic.decompress``. The rate is the file size x 8 / pixels
(headers included); the quality figures are ``l3ic.metrics`` psnr, ssim (scikit-image default,
7x7 uniform window) and ms_ssim (NaN for images under 161 px, left out of the mean) against the
original 8-bit RGB image.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import api, metrics
from .errors import L3ICError
from .image import read_image, to_rgb8
from .presets import PRESETS, checkout_models, weights_path

__all__ = ["evaluate_folder", "build_parser", "main"]

FIGURES = ("bpp", "psnr", "ssim", "ms_ssim")
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm")


def evaluate_folder(preset: str, folder: Path, verbose: bool = True) -> dict:
    """Compresses and decompresses every image of ``folder`` with ``preset``.

    Args:
        preset: model name ("16c", "32c", "64c").
        folder: folder of images (PNG, JPEG, ...), not recursive.
        verbose: print one line per image.

    Returns:
        {"preset", "set", "images", "seconds", "mean": {bpp, psnr, ssim, ms_ssim},
        "per_image": [{"file", "width", "height", bpp, psnr, ssim, ms_ssim}, ...]}.
    """
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise L3ICError(f"no images in {folder}")
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            x = to_rgb8(read_image(path), drop_alpha=True)[0]
            coded = Path(tmp) / f"{path.stem}.l3ic"
            coded.write_bytes(api.compress(x, model=preset))
            y = api.decompress(coded.read_bytes())
            row = {
                "file": path.name,
                "width": x.shape[1],
                "height": x.shape[0],
                "bpp": metrics.bpp(coded.stat().st_size, x.shape[0], x.shape[1]),
                "psnr": metrics.psnr(x, y),
                "ssim": metrics.ssim(x, y),
                "ms_ssim": metrics.ms_ssim(x, y)
                if min(x.shape[:2]) >= metrics.MS_SSIM_MIN_SIDE
                else float("nan"),
            }
            rows.append(row)
            if verbose:
                print(
                    f"{path.name:24s} " + " ".join(f"{k} {row[k]:.4f}" for k in FIGURES),
                    flush=True,
                )
    return {
        "preset": preset,
        "set": Path(folder).resolve().name,
        "images": len(rows),
        "seconds": round(time.perf_counter() - t0, 1),
        "mean": {k: float(np.nanmean([r[k] for r in rows])) for k in FIGURES},
        "per_image": rows,
    }


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m l3ic.evaluate``."""
    p = argparse.ArgumentParser(
        prog="python -m l3ic.evaluate",
        description="Mean bpp (real file bytes), PSNR, SSIM and MS-SSIM of a preset on a folder.",
        epilog="example:\n  python -m l3ic.evaluate --preset 32c ../shared/data/kodak-crop512 "
        "--json runs/kodak512-32c.json --sidecar-key kodak_crop512",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, help="folder of images")
    p.add_argument("--preset", choices=sorted(PRESETS), default="32c", help="model")
    p.add_argument("--json", type=Path, help="write all figures (per image too) to this file")
    p.add_argument(
        "--sidecar-key",
        help="also store the means under this key of models/PRESET.json (e.g. kodak); the "
        "weights evaluated are then those of ./models, the checkout's, not the installed ones",
    )
    p.add_argument("--quiet", action="store_true", help="no per-image lines")
    return p


def _store_in_sidecar(preset: str, key: str, result: dict) -> None:
    path = weights_path(preset).with_suffix(".json")
    sidecar = json.loads(path.read_text())
    sidecar[key] = {
        "set": result["set"],
        "images": result["images"],
        **{k: round(v, 4) for k, v in result["mean"].items()},
        "bpp_rule": "file bytes x 8 / pixels",
        "ssim_rule": "scikit-image default (7x7 uniform window), data range 255",
    }
    path.write_text(json.dumps(sidecar, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m l3ic.evaluate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.sidecar_key:  # the figures describe, and go beside, the repository's weights
            os.environ["L3IC_MODELS_DIR"] = str(checkout_models().resolve())
        result = evaluate_folder(args.preset, args.folder, verbose=not args.quiet)
        mean = result["mean"]
        print(
            f"{args.preset} on {result['set']} ({result['images']} images, "
            f"{result['seconds']} s): " + ", ".join(f"{k} {mean[k]:.4f}" for k in FIGURES)
        )
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
        if args.sidecar_key:
            _store_in_sidecar(args.preset, args.sidecar_key, result)
    except L3ICError as e:
        print(f"l3ic evaluate: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
