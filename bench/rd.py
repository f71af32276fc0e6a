"""Rate-distortion benchmark: every (codec, quality, image), cached, averaged, plotted.

Each codec's results go to ``<out>/<codec>.json`` (CompressAI schema, means over the images)
and ``<out>/per_image/<codec>.csv``; then the tables and plots of the folder are rebuilt from
every ``<codec>.json`` in it (``bench.report``), so adding one codec later only computes that
codec. Each (codec, quality, image file hash) result is cached as it is computed in
``bench/cache/<codec>.jsonl``; a rerun computes only what is missing.

Threaded codecs run single-threaded here: AVIF's bitstream depends on the thread count, and the
machine is shared. Timings in these results are single runs and only indicative; see
``bench.speed`` for measured speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench import report
from bench.cache import ResultCache, file_digest
from bench.codecs import CODECS, BenchCodec, Quality
from l3ic.metrics import SCORES, mean_scores, score

__all__ = ["average", "evaluate", "main", "run_codec"]

BENCH_DIR = Path(__file__).resolve().parent
TIMES = ("encoding_time", "decoding_time")
METRICS = (*SCORES, *TIMES)
CSV_FIELDS = (
    "image",
    "height",
    "width",
    "bytes",
    "bpp",
    "psnr",
    "ssim",
    "ssim-gaussian",
    "ms-ssim",
)

EPILOG = """examples:
  python -m bench.rd /work/shared/data/kodak-crop512
  python -m bench.rd /work/shared/data/kodak --codecs avif420 hevc444
  python -m bench.rd /work/shared/data/kodak-crop512 --codecs l3ic   # add l3ic to existing results
  python -m bench.rd /work/shared/data/kodak-crop512 --codecs l3ic --refresh   # after retraining
  python -m bench.rd DIR --codecs jxl --qualities 50 70 90 --out /tmp/jxl-test
"""


def load_image(path: Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def evaluate(codec: BenchCodec, image: np.ndarray, quality: Quality) -> dict[str, Any]:
    """Encode and decode one image and score it.

    Args:
        codec: the codec under test.
        image: (H, W, 3) uint8 RGB.
        quality: one value of the codec's quality axis.

    Returns:
        ``l3ic.metrics.score`` of the decoded image (``height, width, bytes, bpp, psnr, ssim,
        ssim-gaussian, ms-ssim, ms-ssim-db``; what ``l3ic.evaluate`` reports too) and the
        single-run ``encoding_time`` / ``decoding_time`` in seconds.
    """
    t0 = time.perf_counter()
    data = codec.encode(image, quality)
    t1 = time.perf_counter()
    recon = codec.decode(data)
    t2 = time.perf_counter()
    if recon.shape != image.shape or recon.dtype != np.uint8:
        raise RuntimeError(
            f"{codec.name} q={quality}: decoded {recon.shape} {recon.dtype}, "
            f"expected {image.shape} uint8"
        )
    return {
        **score(image, recon, len(data)),
        "encoding_time": t1 - t0,
        "decoding_time": t2 - t1,
    }


def run_codec(
    codec: BenchCodec,
    qualities: tuple[Quality, ...],
    images: list[Path],
    cache: ResultCache,
    refresh: bool = False,
) -> dict[Quality, list[dict[str, Any]]]:
    """All (quality, image) results of one codec, computing only what the cache lacks.

    Args:
        codec: the codec under test.
        qualities: the sweep to run.
        images: image files; results are keyed by their content hash.
        cache: the codec's result cache (written as results arrive).
        refresh: recompute even what is cached.

    Returns:
        For each quality, one record per image (in ``images`` order), with an ``image`` field.
    """
    digests = {path: file_digest(path) for path in images}
    pending = [
        (q, p)
        for q in qualities
        for p in images
        if refresh or cache.get(cache.key(q, digests[p])) is None
    ]
    pixels: dict[Path, np.ndarray] = {}
    for quality, path in tqdm(pending, desc=codec.name, unit="img", disable=not pending):
        if path not in pixels:
            pixels[path] = load_image(path)
        record = {"image": path.name, **evaluate(codec, pixels[path], quality)}
        cache.put(cache.key(quality, digests[path]), record)
    return {q: [cache.get(cache.key(q, digests[p])) for p in images] for q in qualities}


def average(results: dict[Quality, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """Per-quality means over the images: ``l3ic.metrics.mean_scores`` plus the mean times.

    CompressAI convention: the mean of per-image values; ``ms-ssim-db`` from the mean MS-SSIM,
    as for published curves that only give the linear mean; None for a NaN mean.
    """
    means = [
        {**mean_scores(recs), **{k: float(np.mean([r[k] for r in recs])) for k in TIMES}}
        for recs in results.values()
    ]
    return {
        "quality": list(results),
        **{metric: [m[metric] for m in means] for metric in (*METRICS, "ms-ssim-db")},
    }


def write_codec_results(
    out: Path, codec: BenchCodec, dataset: Path, results: dict[Quality, list[dict[str, Any]]]
) -> Path:
    """Write ``<out>/<codec>.json`` (averages) and ``<out>/per_image/<codec>.csv``."""
    n_images = len(next(iter(results.values())))
    doc = {
        "name": codec.name,
        "description": codec.description,
        "meta": {
            "label": codec.label,
            "learned": codec.is_learned,
            "quality_unit": codec.quality_unit,
            "threads": codec.threads,
            "dataset": dataset.name,
            "dataset_path": str(dataset),
            "images": n_images,
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "averaging": "mean over images of per-image values; ms-ssim-db from the mean "
            "MS-SSIM; times are single runs (indicative)",
        },
        "results": average(results),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{codec.name}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    (out / "per_image").mkdir(exist_ok=True)
    with (out / "per_image" / f"{codec.name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("quality", *CSV_FIELDS))
        for quality, recs in results.items():
            for r in recs:
                writer.writerow((quality, *(_fmt(r[k]) for k in CSV_FIELDS)))
    return path


def _fmt(value: Any) -> Any:
    """Round floats for the CSV (6 significant digits)."""
    return f"{value:.6g}" if isinstance(value, float) else value


def _quality(text: str) -> Quality:
    """Parse a --qualities value: int, float, or a preset name."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m bench.rd``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.rd",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", type=Path, help="folder of PNG images (e.g. Kodak)")
    parser.add_argument(
        "--codecs",
        nargs="+",
        choices=list(CODECS),
        metavar="CODEC",
        default=list(CODECS),
        help=f"codecs to run (default: all available: {', '.join(CODECS)})",
    )
    parser.add_argument(
        "--qualities",
        nargs="+",
        type=_quality,
        help="override the default sweep (only with a single codec)",
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default: bench/results/<dataset folder name>)"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=BENCH_DIR / "cache",
        help="cache folder (default: %(default)s)",
    )
    parser.add_argument(
        "--refresh", action="store_true", help="recompute the selected codecs even where cached"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    args = build_parser().parse_args(argv)
    if args.qualities and len(args.codecs) != 1:
        print("--qualities needs exactly one codec in --codecs", file=sys.stderr)
        return 2
    images = sorted(args.dataset.glob("*.png"))
    if not images:
        print(f"no PNG images in {args.dataset}", file=sys.stderr)
        return 2
    out = args.out or BENCH_DIR / "results" / args.dataset.resolve().name
    for name in args.codecs:
        cls = CODECS[name]
        availability = cls.is_available()
        if not availability.ok:
            print(f"skipping {name}: {availability.reason}", file=sys.stderr)
            continue
        codec = cls(threads=1 if cls.threaded else None)
        qualities = tuple(args.qualities or codec.sweep())
        cache = ResultCache(args.cache / f"{name}.jsonl", codec.description)
        results = run_codec(codec, qualities, images, cache, refresh=args.refresh)
        print(f"wrote {write_codec_results(out, codec, args.dataset, results)}")
    for path in report.write_report(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
