"""Encode/decode speed and peak memory of every codec at the setting nearest 0.8 bpp.

Test images (never written to disk):
- 768x512: ``kodim23.png`` as it is.
- 1920x1080: a 3x3 mosaic of 640x360 centre crops of nine landscape Kodak images (kodim01, 02,
  03, 05, 06, 07, 08, 11, 12), unresampled, so it keeps Kodak's detail per pixel.

For each (codec, size) the parent picks the sweep point whose bpp on that image is nearest the
target, then runs one fresh subprocess per thread setting: it times a warm-up plus ``--runs``
encodes and decodes (median reported) and reports its peak resident memory (VmHWM from
/proc/self/status; psutil is not installed, and ``getrusage().ru_maxrss`` inherits the parent's
peak across exec on Linux) and its resident size after imports and image loading, before the
first encode. Threaded codecs run with 1 thread and with all cores; JPEG (libjpeg-turbo via
Pillow) and WebP (Pillow) have no thread setting.

l3ic runs on each runtime of its network (``--runtimes``; the "runtime" column): ONNX Runtime,
OpenVINO asked for float32 and for bf16 (a CPU without AMX or AVX512-BF16 runs float32 either way;
the row says what ran), "auto" (the default, which names the runtime it picked) and the Keras
reference, with 1 thread and with all cores (ONNX Runtime and OpenVINO: ``$L3IC_THREADS``; Keras:
TensorFlow's thread pools). It also gets network-only times (``encode_latent`` / ``decode_latent``)
and the entropy coding time (full minus network, timed back to back in each run), and the network's
images/s on 16 crops of 256x256 of the 768x512 image (the size of training samples): one image per
call, as loaders decoded until l3ic 0.12, against one call for the 16 (``encode_latent_batch`` /
``decode_latent_batch``), the same for whole compressions (``compress`` per image against
``compress_batch``, what ``l3ic convert`` runs), and whole-process figures: ``l3ic compress``
and ``l3ic decompress`` of the 768x512 image as a user runs them, one fresh process each (what
the ``l3ic`` script runs: ``l3ic.cli.main``), wall time measured by the parent from start to exit
and peak memory (VmHWM) reported by the process itself, median of ``--runs`` after one warm-up run
that also fills the ONNX graph cache. When a GPU is visible to JAX, l3ic is also timed with
``KERAS_BACKEND=jax`` at batch 1 and 8 (images/s).

Examples:
  python -m bench.speed
  python -m bench.speed --codecs jpeg420 avif420 --runs 7
  python -m bench.speed --codecs l3ic --target-bpp 0.5
  python -m bench.speed --codecs l3ic jpeg420 avif420 --runtimes onnx openvino-bf16 auto
  python -m bench.speed --codecs l3ic-32c avif420 --sizes 768x512
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.codecs import CODECS, BenchCodec, Quality

__all__ = [
    "build_images",
    "main",
    "median_time",
    "nearest_quality",
    "paired_times",
    "whole_process",
]

BENCH_DIR = Path(__file__).resolve().parent
KODAK = Path("/work/shared/data/kodak")
MOSAIC_IMAGES = ("01", "02", "03", "05", "06", "07", "08", "11", "12")
SIZES = ("768x512", "1920x1080")
# The l3ic rows: the environment each runs with.
RUNTIMES = {
    "onnx": {"L3IC_RUNTIME": "onnx"},
    "openvino-f32": {"L3IC_RUNTIME": "openvino", "L3IC_OPENVINO_PRECISION": "f32"},
    "openvino-bf16": {"L3IC_RUNTIME": "openvino", "L3IC_OPENVINO_PRECISION": "bf16"},
    "auto": {"L3IC_RUNTIME": "auto"},
    "keras": {"L3IC_RUNTIME": "keras"},
}
CROP, CROPS = 256, 16  # the batched rows: 16 crops of 256x256

# One `l3ic ...` command in a fresh process, as the `l3ic` script runs it; at exit it reports
# its peak resident memory (VmHWM: this process's own, unlike ru_maxrss) on the last line of
# stderr.
_CLI_CHILD = """
import atexit, json, sys
from pathlib import Path

def report():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(json.dumps({"peak_mib": int(fields["VmHWM"].split()[0]) / 1024}), file=sys.stderr)

atexit.register(report)
from l3ic.cli import main
sys.exit(main(sys.argv[1:]))
"""


def build_images(kodak: Path) -> dict[str, np.ndarray]:
    """The two test images, (H, W, 3) uint8, keyed by "WxH"."""

    def load(num: str) -> np.ndarray:
        with Image.open(kodak / f"kodim{num}.png") as im:
            return np.asarray(im.convert("RGB"))

    tiles = []
    for num in MOSAIC_IMAGES:
        img = load(num)
        top, left = (img.shape[0] - 360) // 2, (img.shape[1] - 640) // 2
        tiles.append(img[top : top + 360, left : left + 640])
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, 9, 3)]
    return {"768x512": load("23"), "1920x1080": np.concatenate(rows, axis=0)}


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    """Median wall time of ``runs`` calls after one warm-up call, and all the times (s)."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def paired_times(
    full: Callable[[], object], part: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Medians of ``part`` and of ``full - part`` over interleaved runs after a warm-up (s).

    Timing the two back to back in each run keeps load changes on a shared machine out of
    their difference (here: network-only vs. network + entropy coding).
    """
    full()
    part()
    parts, rests = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        full()
        t1 = time.perf_counter()
        part()
        t2 = time.perf_counter()
        parts.append(t2 - t1)
        rests.append((t1 - t0) - (t2 - t1))
    return statistics.median(parts), statistics.median(rests)


def nearest_quality(codec: BenchCodec, image: np.ndarray, target: float) -> tuple[Quality, float]:
    """The sweep point whose bpp on ``image`` is nearest ``target``, and that bpp."""
    h, w = image.shape[:2]
    rates = {q: 8 * len(codec.encode(image, q)) / (h * w) for q in codec.sweep()}
    best = min(rates, key=lambda q: abs(rates[q] - target))
    return best, rates[best]


def _memory_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB.

    On Linux this reads VmRSS / VmHWM from /proc/self/status: ``getrusage().ru_maxrss`` is
    no good there, because exec() carries the parent's high-water mark into the child, so
    every worker would report at least the parent's peak. Elsewhere: ru_maxrss for both.
    """
    status = Path("/proc/self/status")
    if status.exists():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    return peak_mib, peak_mib


def _configure_threads(cls: type[BenchCodec], threads: int | None) -> None:
    """Limit l3ic's threads before it builds anything (no-op for others): ONNX Runtime's through
    ``$L3IC_THREADS``, TensorFlow's thread pools on the Keras runtime."""
    if not cls.is_learned or threads is None:
        return
    os.environ["L3IC_THREADS"] = str(threads)
    if os.environ.get("L3IC_RUNTIME") != "keras":
        return
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Time one (codec, size, quality, threads) in this fresh process."""
    cls = CODECS[args.codec]
    _configure_threads(cls, args.threads)
    codec = cls(threads=args.threads if cls.threaded else None)
    image = build_images(args.kodak)[args.size]
    quality = args.quality if cls.is_learned else float(args.quality)
    quality = int(quality) if isinstance(quality, float) and quality.is_integer() else quality
    base, _ = _memory_mib()
    data = codec.encode(image, quality)
    enc, enc_runs = median_time(lambda: codec.encode(image, quality), args.runs)
    dec, dec_runs = median_time(lambda: codec.decode(data), args.runs)
    out = {
        "encode_s": enc,
        "decode_s": dec,
        "encode_runs": enc_runs,
        "decode_runs": dec_runs,
        "bytes": len(data),
        "bpp": 8 * len(data) / (image.shape[0] * image.shape[1]),
    }
    if cls.is_learned:
        l3ic_codec = codec.codec_at(quality)
        latent = l3ic_codec.encode_latent(image)
        out["net_encode_s"], out["entropy_encode_s"] = paired_times(
            lambda: codec.encode(image, quality), lambda: l3ic_codec.encode_latent(image), args.runs
        )
        out["net_decode_s"], out["entropy_decode_s"] = paired_times(
            lambda: codec.decode(data),
            lambda: l3ic_codec.decode_latent(latent, shape=image.shape[:2]),
            args.runs,
        )
        out["ran"] = l3ic_codec.runtime
        out["precision"] = getattr(l3ic_codec.net, "precision", "f32")
        if args.size == SIZES[0]:  # the crops of one image are enough
            out.update(_batched(l3ic_codec, image, args.runs))
    out["rss_base_mib"] = base
    out["rss_peak_mib"] = _memory_mib()[1]
    return out


def _batched(codec: Any, image: np.ndarray, runs: int) -> dict[str, float]:
    """The network's images/s on ``CROPS`` crops of ``CROP`` x ``CROP`` from ``image``: one
    image per call, and all in one call; and the same for whole compressions (network and
    entropy coding: ``compress`` against ``compress_batch``, what ``l3ic convert`` runs)."""
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    crops = [
        image[i : i + CROP, j : j + CROP]
        for i, j in zip(
            rng.integers(0, h - CROP, CROPS), rng.integers(0, w - CROP, CROPS), strict=True
        )
    ]
    latents = codec.encode_latent_batch(crops)
    shapes = [(CROP, CROP)] * CROPS
    times = {
        "encode_one_by_one": lambda: [codec.encode_latent(c) for c in crops],
        "encode_batched": lambda: codec.encode_latent_batch(crops),
        "decode_one_by_one": lambda: [codec.decode_latent(q, (CROP, CROP)) for q in latents],
        "decode_batched": lambda: codec.decode_latent_batch(latents, shapes),
        "compress_one_by_one": lambda: [codec.compress(c) for c in crops],
        "compress_batched": lambda: codec.compress_batch(crops),
    }
    return {f"{k}_img_s": CROPS / median_time(fn, runs)[0] for k, fn in times.items()}


def gpu_worker(args: argparse.Namespace) -> dict[str, Any]:
    """l3ic network images/s on the JAX GPU backend at batch 1 and 8 (KERAS_BACKEND=jax).

    Batch 8 needs ``encode_latent_batch`` / ``decode_latent_batch``, which go beyond the
    minimal l3ic contract; without them the entry says so.
    """
    import jax

    model = CODECS["l3ic"].l3ic_codec(args.quality)
    image = build_images(args.kodak)[args.size]
    size = image.shape[:2]
    latent = model.encode_latent(image)
    enc, _ = median_time(lambda: model.encode_latent(image), args.runs)
    dec, _ = median_time(lambda: model.decode_latent(latent, shape=size), args.runs)
    out: dict[str, Any] = {
        "device": str(jax.devices()[0]),
        "batch1": {"net_encode_img_s": 1 / enc, "net_decode_img_s": 1 / dec},
    }
    if not hasattr(model, "encode_latent_batch"):
        out["batch8"] = "l3ic.Codec has no encode_latent_batch"
        return out
    images, latents = [image] * 8, [latent] * 8
    enc, _ = median_time(lambda: model.encode_latent_batch(images), args.runs)
    dec, _ = median_time(lambda: model.decode_latent_batch(latents, [size] * 8), args.runs)
    out["batch8"] = {"net_encode_img_s": 8 / enc, "net_decode_img_s": 8 / dec}
    return out


def whole_process(
    runtime: str | None, preset: str, image: Path, runs: int, python: str = sys.executable
) -> dict[str, Any]:
    """``l3ic compress -m PRESET IMAGE`` and ``l3ic decompress`` of its output on ``runtime``, each
    in ``runs`` fresh processes after one warm-up: median wall time (s) and peak memory (MiB).

    ``python`` is the interpreter of the l3ic install to run (another virtual environment, say);
    ``runtime`` None leaves ``$L3IC_RUNTIME`` unset (the install's default), else a key of
    ``RUNTIMES``."""
    env = dict(os.environ)
    for name in ("L3IC_THREADS", "L3IC_RUNTIME", "L3IC_OPENVINO_PRECISION"):
        env.pop(name, None)
    if runtime is not None:
        env.update(RUNTIMES[runtime])
    out: dict[str, Any] = {"runtime": runtime, "preset": preset, "image": image.name}
    with tempfile.TemporaryDirectory() as tmp:
        l3ic_file, png = Path(tmp) / "x.l3ic", Path(tmp) / "x.png"
        commands = {
            "compress": ["compress", "-m", preset, str(image), "-o", str(l3ic_file), "--force"],
            "decompress": ["decompress", str(l3ic_file), "-o", str(png), "--force"],
        }
        for command, argv in commands.items():
            times, peaks = [], []
            for run in range(runs + 1):
                t0 = time.perf_counter()
                proc = subprocess.run(
                    [python, "-c", _CLI_CHILD, *argv],
                    capture_output=True, text=True, env=env, cwd=tmp, check=False,
                )  # fmt: skip
                seconds = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise RuntimeError(f"l3ic {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
                if run:  # the first run is the warm-up
                    times.append(seconds)
                    peaks.append(json.loads(proc.stderr.strip().splitlines()[-1])["peak_mib"])
            out[command] = {
                "seconds": statistics.median(times),
                "peak_mib": statistics.median(peaks),
                "runs": times,
            }
    return out


def _thread_settings(cls: type[BenchCodec]) -> list[int | None]:
    """1 and all cores for codecs with a thread setting (l3ic: TensorFlow's pools), else None."""
    if cls.threaded or cls.is_learned:
        return [1, os.cpu_count() or 1]
    return [None]


def _spawn(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m bench.speed <argv>`` in a fresh process; its JSON result."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.speed", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=BENCH_DIR.parent,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {argv} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _jax_gpu_available() -> str | None:
    """None when a GPU is visible to JAX, else the reason there is none."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    probe = "import jax; print(any(d.platform == 'gpu' for d in jax.devices()))"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        return "jax not importable"
    return None if proc.stdout.strip().endswith("True") else "no GPU visible to JAX"


def _markdown(doc: dict[str, Any]) -> str:
    """The Markdown report of a speed run."""
    lines = [
        "# Codec speed",
        "",
        f"Measured {doc['date']} on {doc['machine']}, load average before the run "
        f"{doc['load_before']}. Median of {doc['runs']} runs after one warm-up; each row is a "
        "fresh process. Images: " + doc["images"] + ". Memory: " + doc["memory"] + ". When "
        "other jobs hold the cores, the all-core rows cannot be faster than the 1-thread rows.",
        "",
        "| codec | image | threads | quality | bpp | encode ms | decode ms | "
        "peak RSS MiB (after imports) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        threads = r["threads"] if r["threads"] is not None else "1 (no option)"
        codec = f"{r['codec']} ({r['runtime']})" if r.get("runtime") else r["codec"]
        lines.append(
            f"| {codec} | {r['size']} | {threads} | {r['quality']} | {r['bpp']:.3f} | "
            f"{1000 * r['encode_s']:.1f} | {1000 * r['decode_s']:.1f} | "
            f"{r['rss_peak_mib']:.0f} ({r['rss_base_mib']:.0f}) |"
        )
    learned = [r for r in doc["results"] if "net_encode_s" in r]
    if learned:
        lines += [
            "",
            "## l3ic: which runtime ran, and batches",
            "",
            f"Network images/s on {CROPS} crops of {CROP}x{CROP} from the row's image: one "
            f'image per call, and the {CROPS} in one call; "compress": whole compressions '
            "(network and entropy coding), `compress` per image against `compress_batch`.",
            "",
            "| runtime asked | ran | precision | image | threads | preset | enc one by one | "
            "enc batched | dec one by one | dec batched | compress one by one | "
            "compress batched |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in learned:
            lines.append(
                f"| {r['runtime']} | {r.get('ran', '?')} | {r.get('precision', '?')} | "
                f"{r['size']} | {r['threads']} | {r['quality']} | "
                + " | ".join(
                    f"{r.get(f'{k}_img_s', 0):.1f}"
                    for k in (
                        "encode_one_by_one",
                        "encode_batched",
                        "decode_one_by_one",
                        "decode_batched",
                        "compress_one_by_one",
                        "compress_batched",
                    )
                )
                + " |"
            )
    if learned:
        lines += [
            "",
            "## l3ic: network and entropy coding",
            "",
            "Entropy = median over interleaved runs of (full - network-only) time.",
            "",
            "| runtime | image | threads | preset | net enc ms | net dec ms | entropy enc ms | "
            "entropy dec ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in learned:
            lines.append(
                f"| {r.get('runtime', 'keras')} | {r['size']} | {r['threads']} | {r['quality']} | "
                f"{1000 * r['net_encode_s']:.1f} | {1000 * r['net_decode_s']:.1f} | "
                f"{1000 * r['entropy_encode_s']:.1f} | {1000 * r['entropy_decode_s']:.1f} |"
            )
    if doc.get("whole_process"):
        lines += [
            "",
            "## l3ic: whole process",
            "",
            "`l3ic compress` / `l3ic decompress` of the 768x512 image, each a fresh process: wall "
            "time from start to exit (imports, loading the network, coding, writing the file) "
            "and peak RSS; median of the runs after one warm-up.",
            "",
            "| runtime | preset | compress s | compress peak MiB | decompress s | "
            "decompress peak MiB |",
            "|---|---|---|---|---|---|",
        ]
        for w in doc["whole_process"]:
            c, d = w["compress"], w["decompress"]
            lines.append(
                f"| {w['runtime']} | {w['preset']} | {c['seconds']:.2f} | {c['peak_mib']:.0f} | "
                f"{d['seconds']:.2f} | {d['peak_mib']:.0f} |"
            )
    lines += ["", "## JAX on GPU", "", f"```\n{json.dumps(doc['gpu'], indent=1)}\n```"]
    lines += ["", "Skipped codecs: " + (", ".join(doc["skipped"]) or "none")]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m bench.speed``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("Examples:") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--codecs",
        nargs="+",
        choices=list(CODECS),
        metavar="CODEC",
        default=list(CODECS),
        help=f"codecs to time (default: all available: {', '.join(CODECS)})",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default: %(default)s)")
    parser.add_argument(
        "--target-bpp",
        type=float,
        default=0.8,
        help="pick the sweep point nearest this (default: %(default)s)",
    )
    parser.add_argument("--kodak", type=Path, default=KODAK, help="Kodak folder (%(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "results" / "speed",
        help="output folder (default: %(default)s)",
    )
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=list(RUNTIMES),
        default=["onnx", "openvino-f32", "openvino-bf16", "auto"],
        help="runtimes of l3ic's network to time (default: %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=SIZES,
        default=list(SIZES),
        help="test images to time (default: %(default)s)",
    )
    parser.add_argument(
        "--every-preset",
        action="store_true",
        help="time every l3ic preset, not only the one nearest --target-bpp",
    )
    parser.add_argument(
        "--worker", nargs=4, metavar=("CODEC", "SIZE", "QUALITY", "THREADS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--gpu-worker", nargs=2, metavar=("SIZE", "PRESET"), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the speed benchmark (or one worker measurement); returns the exit status."""
    from bench.report import machine

    args = build_parser().parse_args(argv)
    if args.runs < 5:
        print("--runs must be at least 5", file=sys.stderr)
        return 2
    if args.worker:
        codec, size, quality, threads = args.worker
        ns = argparse.Namespace(
            codec=codec,
            size=size,
            quality=quality,
            kodak=args.kodak,
            threads=None if threads == "none" else int(threads),
            runs=args.runs,
        )
        print(json.dumps(worker(ns)))
        return 0
    if args.gpu_worker:
        size, preset = args.gpu_worker
        ns = argparse.Namespace(size=size, quality=preset, kodak=args.kodak, runs=args.runs)
        print(json.dumps(gpu_worker(ns)))
        return 0

    load_before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    images = build_images(args.kodak)
    results, skipped, gpu, whole = [], [], {}, []
    common = ["--runs", str(args.runs), "--kodak", str(args.kodak)]
    for name in args.codecs:
        cls = CODECS[name]
        availability = cls.is_available()
        if not availability.ok:
            skipped.append(f"{name} ({availability.reason})")
            continue
        for size in args.sizes:
            if cls.is_learned and args.every_preset:
                settings = list(cls.qualities)
            else:
                quality, rate = nearest_quality(cls(), images[size], args.target_bpp)
                print(f"{name} {size}: quality {quality} ({rate:.3f} bpp)", file=sys.stderr)
                settings = [quality]
            runtimes = args.runtimes if cls.is_learned else [None]
            for runtime, quality, threads in itertools.product(
                runtimes, settings, _thread_settings(cls)
            ):
                argv_w = ["--worker", name, size, str(quality), str(threads).lower(), *common]
                env = None if runtime is None else {**os.environ, **RUNTIMES[runtime]}
                row = _spawn(argv_w, env)
                results.append(
                    {"codec": name, "runtime": runtime, "size": size, "threads": threads,
                     "quality": quality, **row}
                )  # fmt: skip
            preset = cls().codec_at(settings[0]).preset if cls.is_learned else None
            if cls.is_learned and size == "768x512":
                for runtime in runtimes:
                    whole.append(
                        whole_process(runtime, preset, args.kodak / "kodim23.png", args.runs)
                    )
            if cls.is_learned:
                reason = _jax_gpu_available()
                gpu[f"{size} {preset}"] = reason or _spawn(
                    ["--gpu-worker", size, preset, *common],
                    env={**os.environ, "KERAS_BACKEND": "jax", "L3IC_RUNTIME": "keras"},
                )
    doc = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "load_before": load_before,
        "runs": args.runs,
        "target_bpp": args.target_bpp,
        "images": "768x512 = kodim23; 1920x1080 = 3x3 mosaic of 640x360 centre crops of kodim"
        + ", ".join(MOSAIC_IMAGES)
        + " (no resampling)",
        "memory": "peak RSS (VmHWM) of a fresh process per row; in brackets its RSS after "
        "imports and image loading, before the first encode",
        "results": results,
        "whole_process": whole,
        "skipped": skipped,
        "gpu": gpu or "l3ic unavailable, so no JAX-on-GPU run",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "speed.md").write_text(_markdown(doc))
    print(f"wrote {args.out / 'speed.json'} and {args.out / 'speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
