"""Loader and conversion throughput of tar shards: l3ic latents against JPEG and PNG shards.

    python -m bench.shard_loader [--images DIR] [-n 512] [--large DIR] [-m 32c]
                                 [--convert-n 128] [--json bench/results/shard-loader.json]

On this machine, in one run, one process, one thread each:

- loaders, in samples/s over whole epochs (best of ``--epochs`` after a warm-up epoch):
  (a) ``LatentShards`` of l3ic shards, all channels, latents only (float32), read by the
      compiled record reader (``l3ic.record_decoder``);
  (a2) the same shards through a ``webdataset`` pipeline with ``l3ic.wds_decoder``;
  (a3) (a) with the Python reader (container parsing in Python, constriction decoding), as
      where no C compiler was found at install time;
  (a4) (a) on shards of the same images written as format version 3 (no context-coded
      channels, docs/format.md), by the compiled reader;
  (b) ``LatentShards``, the 8 most important channels, with the fraction of the stream bytes
      and of the record bytes read;
  (c) ``LatentShards(decode=True)``: pixels decoded by the network (ONNX Runtime);
  (d) the same images as JPEG quality 90 (Pillow's default 4:2:0) in WebDataset shards,
      decoded by ``webdataset``'s ``decode("rgb8")`` (Pillow);
  (e) the same as PNG;
  and what the Python reader could reach on (a4)'s shards: constriction decoding their streams
  with nothing else (version 3: one table per channel).
  On the first ``-n`` images of ``--images`` (default ../shared/data/train-gpu, 256x256) and on
  every image of ``--large`` (default ../shared/data/kodak, 768x512 and 512x768), each epoch
  read ``--repeat`` times over for the small set of 24.
- conversion (``convert_shards``, engine dask, a LocalCluster of 1 and of 2 single-threaded
  workers, ``L3IC_THREADS=1``): images/s on ``--convert-n`` images, after each worker has
  loaded the network on a warm-up set (cluster start and model loading are not counted).

The ratios against (d) are the figures to compare across machines. Writes ``--json``.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _epochs(iterate, epochs: int, repeat: int = 1) -> tuple[float, int]:
    """(best samples/s, samples per epoch) of ``iterate()`` over ``epochs`` after a warm-up."""
    n = sum(1 for _ in iterate())
    best = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for _ in range(repeat):
            for _ in iterate():
                pass
        best = max(best, repeat * n / (time.perf_counter() - t0))
    return best, n


def _image_shards(images: list[Path], dst: Path, fmt: str) -> list[str]:
    """The images as WebDataset shards of JPEG q90 or PNG (Pillow's defaults otherwise)."""
    import webdataset as wds

    dst.mkdir(parents=True)
    ext = {"JPEG": "jpg", "PNG": "png"}[fmt]
    options = {"quality": 90} if fmt == "JPEG" else {}
    with wds.ShardWriter(str(dst / "shard-%06d.tar"), maxsize=256 * 2**20, verbose=0) as sink:
        for i, path in enumerate(images):
            buf = io.BytesIO()
            Image.open(path).convert("RGB").save(buf, fmt, **options)
            sink.write({"__key__": f"{i:09d}", ext: buf.getvalue(), "cls": 0})
    return sorted(str(p) for p in dst.glob("shard-*.tar"))


def _stream_fraction(shards, channels: list[int]) -> tuple[float, float]:
    """(read / all stream bytes, read / all record bytes) for reading ``channels``."""
    at = np.argsort(shards.coder.channel_order)  # each channel's position in the file
    read_streams = all_streams = read_total = all_total = 0
    for i in range(len(shards.names)):
        for s in shards.samples(i):
            st = s["streams"]
            picked = sum(st[at[k] + 1] - st[at[k]] for k in channels)
            read_streams += picked
            all_streams += st[-1] - st[0]
            read_total += st[0] + picked
            all_total += s["bytes"]
    return read_streams / all_streams, read_total / all_total


def entropy_floor(shards, repeat: int) -> dict:
    """The entropy decoding alone: constriction decoding every stream of ``shards`` (format
    version 3: one table per channel) with the models built beforehand, nothing else (best of
    ``repeat``)."""
    import constriction

    from l3ic import channel_modes, container, entropy

    coder, jobs, samples = shards.coder, [], 0
    models = [entropy.table_model(p) for p in coder.priors]
    for i in range(len(shards.names)):
        for j in range(len(shards.samples(i))):
            c = container.parse(shards.read_bytes(i, j), coder.channel_order)
            h, w, _ = c.latent_shape
            samples += 1
            for k, code in enumerate(c.codes):
                if code.mode == channel_modes.CONSTANT:
                    continue
                model = code.kind.ans_model(code, coder.priors[k], models[k])
                jobs.append((np.frombuffer(code.stream, "<u4").astype(np.uint32), model, h * w))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for words, model, n in jobs:
            constriction.stream.stack.AnsCoder(words).decode(model, n)
        best = min(best, time.perf_counter() - t0)
    symbols = sum(n for _, _, n in jobs)
    return {"samples_per_s": samples / best, "ns_per_symbol": best / symbols * 1e9}


@contextlib.contextmanager
def _writing(preset: str, version: int):
    """The process's shared codec of ``preset`` (the one a conversion with one worker uses, in
    this process) writes format ``version`` inside the block."""
    from l3ic.api import get_codec

    coder = get_codec(preset).coder
    saved, coder.write_version = coder.write_version, version
    try:
        yield
    finally:
        coder.write_version = saved


def loaders(images: list[Path], work: Path, preset: str, epochs: int, repeat: int) -> dict:
    """Samples/s of loaders (a)-(e) on ``images``."""
    import webdataset as wds

    from l3ic.datasets.latent_shards import LatentShards, wds_decoder
    from l3ic.datasets.shard_convert import convert_shards
    from l3ic.latent_coder import get_coder

    src = work / "src" / "all"
    src.mkdir(parents=True)
    for i, path in enumerate(images):
        shutil.copy(path, src / f"{i:06d}{path.suffix}")
    convert_shards(work / "src", work / "l3ic", preset, progress=False)
    with _writing(preset, 3):
        convert_shards(work / "src", work / "l3ic-v3", preset, progress=False)
    jpg = _image_shards(images, work / "jpg", "JPEG")
    png = _image_shards(images, work / "png", "PNG")
    l3 = sorted(str(p) for p in (work / "l3ic").glob("shard-*.tar"))

    def pipe(urls, decoder, ext):
        return lambda: wds.DataPipeline(
            wds.SimpleShardList(urls), wds.tarfile_to_samples(), wds.decode(decoder),
            wds.to_tuple(ext, "cls"),
        )  # fmt: skip

    def python_reader():
        coder = get_coder(preset)
        compiled, coder.compiled = coder.compiled, None
        try:
            yield from LatentShards(work / "l3ic")
        finally:
            coder.compiled = compiled

    top8 = LatentShards(work / "l3ic", top_channels=8)
    rows = {}
    cases = {
        "a_latents_all": lambda: LatentShards(work / "l3ic"),
        "a2_latents_all_webdataset": pipe(l3, wds_decoder(), "l3ic"),
        "a3_latents_all_python_reader": python_reader,
        "a4_latents_all_v3": lambda: LatentShards(work / "l3ic-v3"),
        "b_latents_top8": lambda: top8,
        "c_pixels_decoded": lambda: LatentShards(work / "l3ic", decode=True),
        "d_jpeg_q90_pillow": pipe(jpg, "rgb8", "jpg"),
        "e_png_pillow": pipe(png, "rgb8", "png"),
    }
    for name, make in cases.items():
        slow = name.startswith("c_")
        rate, n = _epochs(make, 1 if slow else epochs, 1 if slow else repeat)
        rows[name] = {"samples_per_s": rate, "samples": n}
    floor = entropy_floor(LatentShards(work / "l3ic-v3").shards, epochs)
    rows["entropy_decoding_alone"] = floor | {"samples": rows["a_latents_all"]["samples"]}
    streams, records = _stream_fraction(top8.shards, top8.channels)
    rows["b_latents_top8"].update(stream_bytes_read=streams, record_bytes_read=records)
    sizes = {
        "l3ic": sum(os.path.getsize(u) for u in l3),
        "l3ic_v3": sum(os.path.getsize(u) for u in (work / "l3ic-v3").glob("shard-*.tar")),
        "jpeg_q90": sum(os.path.getsize(u) for u in jpg),
        "png": sum(os.path.getsize(u) for u in png),
    }
    jpeg = rows["d_jpeg_q90_pillow"]["samples_per_s"]
    for row in rows.values():
        row["vs_jpeg"] = row["samples_per_s"] / jpeg
    return {"loaders": rows, "shard_bytes": sizes, "images": len(images)}


def conversion(images: list[Path], work: Path, preset: str) -> dict:
    """Images/s of ``convert_shards`` on Dask LocalClusters of 1 and 2 single-threaded workers
    (``L3IC_THREADS=1``, set here before the clusters start)."""
    from distributed import Client

    from l3ic.datasets.shard_convert import convert_shards, local_cluster

    src, warm = work / "csrc" / "all", work / "cwarm" / "all"
    src.mkdir(parents=True)
    warm.mkdir(parents=True)
    for i, path in enumerate(images):
        shutil.copy(path, src / f"{i:06d}{path.suffix}")
    for i, path in enumerate(images[:8]):
        shutil.copy(path, warm / f"{i:06d}{path.suffix}")
    os.environ["L3IC_THREADS"] = "1"
    out = {}
    for workers in (1, 2):
        cluster = local_cluster(workers)
        client = Client(cluster)
        try:
            kw = dict(engine="dask", address=cluster.scheduler_address, progress=False)
            convert_shards(warm.parent, work / f"cwarm-{workers}", preset, shard_size=1, **kw)
            per_shard = max(1, len(images) // 16)  # 16 shards: work for both workers to share
            size = int(per_shard * 6000)
            report = convert_shards(
                src.parent, work / f"conv-{workers}", preset, shard_size=size, **kw
            )
        finally:
            client.close()
            cluster.close()
        out[f"workers_{workers}"] = {
            "images": report.converted,
            "seconds": report.seconds,
            "images_per_s": report.converted / report.seconds,
        }
    out["speedup_2_vs_1"] = out["workers_2"]["images_per_s"] / out["workers_1"]["images_per_s"]
    return out


NAMES = {
    "a_latents_all": "(a) l3ic shards, all channels, latents (`LatentShards`)",
    "a2_latents_all_webdataset": "(a) the same through `webdataset` + `wds_decoder`",
    "a3_latents_all_python_reader": "(a) with the Python reader (no compiled reader)",
    "a4_latents_all_v3": "(a) on format version 3 shards (no context-coded channels)",
    "entropy_decoding_alone": "(a4) in Python: constriction's entropy decoding alone",
    "b_latents_top8": "(b) l3ic shards, 8 most important channels",
    "c_pixels_decoded": "(c) l3ic shards decoded to pixels (ONNX Runtime)",
    "d_jpeg_q90_pillow": "(d) JPEG q90 shards, Pillow (`webdataset` rgb8)",
    "e_png_pillow": "(e) PNG shards, Pillow (`webdataset` rgb8)",
}


def table(result: dict) -> str:
    """The loader figures of ``result`` as a markdown table."""
    small, large = result["256x256"], result["768x512"]
    lines = [
        "| loader | 256x256 samples/s | vs (d) | 768x512 samples/s | vs (d) |",
        "|---|---|---|---|---|",
    ]
    for key, name in NAMES.items():
        a, b = small["loaders"][key], large["loaders"][key]
        lines.append(
            f"| {name} | {a['samples_per_s']:.0f} | {a['vs_jpeg']:.2f}x | "
            f"{b['samples_per_s']:.1f} | {b['vs_jpeg']:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=Path, default=DATA / "train-gpu")
    p.add_argument("-n", type=int, default=512, help="images of --images to read")
    p.add_argument("--large", type=Path, default=DATA / "kodak")
    p.add_argument("-m", "--preset", default="32c")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeat-large", type=int, default=8)
    p.add_argument("--convert-n", type=int, default=128)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    small = sorted(args.images.glob("*.jpg"))[: args.n]
    large = sorted(args.large.glob("*.png"))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "preset": args.preset,
        "threads": "one process, one thread (OMP/ORT threads 1)",
    }
    os.environ["L3IC_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["256x256"] = loaders(small, tmp / "small", args.preset, args.epochs, 1)
        result["768x512"] = loaders(
            large, tmp / "large", args.preset, args.epochs, args.repeat_large
        )
        result["conversion_256x256"] = conversion(small[: args.convert_n], tmp, args.preset)
    text = json.dumps(result, indent=1)
    print(text)
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
