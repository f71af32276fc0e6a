"""Rate and quality of a preset on a folder of images, through real .l3ic files.

``python -m l3ic.evaluate --preset 32c DIR [--json OUT]`` (front end in ``l3ic.training.cli``).

Each image is compressed with ``l3ic.compress``, written as an .l3ic file to a temporary folder,
read back and decompressed with ``l3ic.decompress``, then scored by ``l3ic.metrics.score``, the
function the benchmark (``bench.rd``) scores every codec with: the same figures under the same
keys (bpp = file bytes x 8 / pixels, headers included; psnr, ssim (scikit-image default, 7x7
uniform window), ssim-gaussian, ms-ssim, ms-ssim-db against the original 8-bit RGB image).
Nothing is written into the preset's sidecar.

``scale_curve`` measures a codec's mean figures at several quantisation scales (the sidecar's
``scale_curve``, which ``rate_control`` chooses presets by; ``l3ic train export`` and
``l3ic train curve`` write it).
"""

import tempfile
import time
from pathlib import Path

from . import api, metrics
from .errors import L3ICError
from .image import list_images, read_image, to_rgb8

__all__ = ["SHOWN", "CURVE_SCALES", "evaluate_folder", "scored", "scale_curve"]

SHOWN = ("bpp", "psnr", "ssim", "ms-ssim")  # the figures printed per image and in the summary
CURVE_SCALES = tuple(2.0 ** (k / 4) for k in range(-6, 5))  # 0.354 .. 2, quarter-octave steps


def evaluate_folder(preset: str, folder: Path, verbose: bool = True) -> dict:
    """Compresses and decompresses every image of ``folder`` with ``preset`` and scores them.

    Args:
        preset: "16c", "32c" or "64c".
        folder: folder of images (``l3ic.image.IMAGE_SUFFIXES``), not recursive.
        verbose: print one line per image.

    Returns:
        ``{"preset", "dataset" (the folder's name), "images", "seconds",
        "mean": metrics.mean_scores of the images, "per_image": [{"image" (file name),
        **metrics.score}, ...]}``; JSON-ready except NaN MS-SSIM of images under 161 px.

    Raises:
        L3ICError: ``folder`` is missing or holds no images, or an image cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise L3ICError(f"image folder not found: {folder}")
    files = list_images(folder)
    if not files:
        raise L3ICError(f"no images in {folder}")
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            x = to_rgb8(read_image(path), drop_alpha=True)[0]
            coded = Path(tmp) / f"{path.stem}.l3ic"
            coded.write_bytes(api.compress(x, preset))
            y = api.decompress(coded.read_bytes())
            row = {"image": path.name, **metrics.score(x, y, coded.stat().st_size)}
            rows.append(row)
            if verbose:
                figures = " ".join(f"{k} {row[k]:.4f}" for k in SHOWN)
                print(f"{path.name:24s} {figures}", flush=True)
    return {
        "preset": preset,
        "dataset": folder.resolve().name,
        "images": len(rows),
        "seconds": round(time.perf_counter() - t0, 1),
        "mean": metrics.mean_scores(rows),
        "per_image": rows,
    }


def scored(codec, images, **rate) -> dict:
    """The mean ``metrics.score`` of ``images`` ((H, W, 3) uint8 arrays) compressed by
    ``codec`` (a ``Codec``) at ``rate`` (``Codec.compress``'s keyword: quality= or scale=) and
    decoded."""
    records = []
    for image in images:
        data = codec.compress(image, **rate)
        records.append(metrics.score(image, codec.decompress(data), len(data)))
    return metrics.mean_scores(records)


def scale_curve(codec, images, scales=CURVE_SCALES) -> list[dict]:
    """A codec's rate and quality at each of ``scales``: one ``{"scale", "bpp", "psnr", "ssim",
    "ms-ssim"}`` per scale (means of ``scored``, rounded to 4 decimals; MS-SSIM None on images
    under 161 px)."""
    rows = []
    for s in scales:
        mean = scored(codec, images, scale=s)
        row = {"scale": round(s, 4)}
        for key in SHOWN:
            row[key] = None if mean[key] is None else round(float(mean[key]), 4)
        rows.append(row)
    return rows


if __name__ == "__main__":  # python -m l3ic.evaluate: the front end sits above this module
    import sys

    from .training.cli import evaluate_main

    sys.exit(evaluate_main(sys.argv[1:]))
