"""Throughput of ``l3ic convert`` and of ``l3ic.datasets.keras_data.LatentDataset`` on one
folder of images.

usage: python examples/loader_throughput.py [FOLDER] [-m 32c] [--workers 1 2]
           [--batch-sizes 8 32] [--repeat 2] [--out examples/results]

Converts FOLDER (default ../shared/data/kodak beside the repository) into a fresh temporary
folder once per worker count, then reads the converted set as latents (all channels) and as
decoded images, for each batch size, timing whole epochs (the first, which loads the model
and traces the decoder, is a warm-up and is not counted). Writes ``loader_throughput.json``.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import keras

from l3ic.datasets.convert import convert
from l3ic.datasets.keras_data import LatentDataset

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def epoch_rate(ds: LatentDataset, repeat: int) -> float:
    """Images per second over ``repeat`` epochs, after one warm-up epoch."""
    for i in range(len(ds)):
        ds[i]
    t0 = time.perf_counter()
    for _ in range(repeat):
        for i in range(len(ds)):
            ds[i]
    return repeat * len(ds.files) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, nargs="?", default=DEFAULT_DATA)
    p.add_argument("-m", "--preset", default="32c")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)

    results = {
        "folder": str(args.folder),
        "preset": args.preset,
        "backend": keras.backend.backend(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "convert": [],
        "loader": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            dst = Path(tmp, f"w{workers}")
            r = convert(args.folder, dst, args.preset, workers, progress=False)
            row = {
                "workers": workers,
                "images": r.converted,
                "seconds": r.seconds,
                "img_per_s": r.converted / r.seconds,
                "mb_in_per_s": r.bytes_in / 1e6 / r.seconds,
                "bytes_in": r.bytes_in,
                "bytes_out": r.bytes_out,
            }
            results["convert"].append(row)
            print(r.summary())
        for decode in (False, True):
            for batch_size in args.batch_sizes:
                ds = LatentDataset(dst, batch_size=batch_size, decode=decode)
                rate = epoch_rate(ds, args.repeat)
                x, _ = ds[0]
                row = {"decode": decode, "batch_size": batch_size, "x": list(x.shape[1:])}
                results["loader"].append(row | {"img_per_s": rate})
                print(f"loader decode={decode} batch {batch_size}: {rate:.1f} img/s, x {x.shape}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loader_throughput.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
