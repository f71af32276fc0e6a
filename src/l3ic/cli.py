"""The ``l3ic`` command: compress, decompress, info, convert, cache (and train: docs/training.md).

Exit codes, for every command (``train`` too): 0 success, 1 bad input (one line on stderr per
failed file), 2 bad usage, 141 when the reader of the output went away (``l3ic info --json f
| head -1``: quietly, as a Unix tool stopped by SIGPIPE). Warnings raised while processing a
file are shown as one line each, ``l3ic: warning: PATH: MESSAGE``. ``info`` needs no network.
The network runs on the ``auto`` runtime (OpenVINO in bf16 on CPUs with AMX or AVX512-BF16 where
it is installed, else ONNX Runtime) unless ``--runtime`` (or ``$L3IC_RUNTIME``) names another;
Keras (``--runtime keras``) is imported only then.
"""

import argparse
import functools
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .datasets import ENGINES
from .errors import L3ICError, one_line
from .keras_import import import_keras_quietly
from .metrics import bpp
from .presets import DEFAULT_PRESET, PRESETS, load_sidecar
from .runtime import RUNTIMES

PNG_LEVEL = 1  # zlib level of decompress's PNG output (--png-level)

__all__ = ["main"]

EXAMPLES = """examples:
  l3ic compress photo.png                      # -> photo.l3ic (preset 32c)
  l3ic compress -m 16c photo.png -o small.l3ic
  l3ic compress -m 64c *.png --outdir out/     # many files, with a progress bar
  l3ic compress --quality 30 photo.png         # smaller file, lower quality (default 50)
  l3ic compress --bpp 0.5 photo.png            # at most 0.5 bits per pixel
  l3ic compress --size 40KB photo.png          # at most 40 KiB (40,960 bytes)
  l3ic compress --runtime keras photo.png      # the Keras reference instead of ONNX Runtime
  l3ic decompress --runtime openvino photo.l3ic  # OpenVINO (pip install "l3ic[openvino]")
  l3ic decompress photo.l3ic                   # -> photo.png (kept if it exists: --force)
  l3ic decompress small.l3ic -o small.webp     # any format imageio writes
  l3ic decompress photo.l3ic --top-channels 8  # preview from the 8 most important channels
  l3ic decompress huge.l3ic --max-pixels 100000000  # a file over the 33.5 Mpx limit
  l3ic info photo.l3ic small.l3ic --json
  l3ic convert photos/ latents/ --workers 2    # a folder tree -> .l3ic files + index.json
  l3ic convert photos/ shards/ --layout shards --engine dask  # -> tar shards, on Dask
  l3ic cache --prune                           # remove cached graphs no preset uses any more
  l3ic train --help                            # train a preset (docs/training.md)
"""


def _parser(figures: bool = True) -> argparse.ArgumentParser:
    """The command's parser; ``figures``: put the presets' bpp and SSIM (read from their
    sidecars) in the help of ``-m`` (only worth it when help is shown)."""
    p = argparse.ArgumentParser(
        prog="l3ic",
        description="l3ic: a lightweight learned lossy image codec.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"l3ic {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    c = add(
        "compress",
        "compress images to .l3ic files",
        "examples:\n  l3ic compress photo.png\n  l3ic compress -m 16c a.png b.jpg --outdir out/\n"
        "  l3ic compress --quality 30 photo.png      # the preset that codes quality 30 best\n"
        "  l3ic compress -m 32c --quality 30 photo.png\n"
        "  l3ic compress --bpp 0.5 photo.png          # the preset that codes 0.5 bpp best\n"
        "  l3ic compress --size 40KB photo.png",
    )
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="image files (PNG, JPEG, ...)")
    _add_preset(c, figures, chooses=True)
    rate = c.add_mutually_exclusive_group()
    rate.add_argument(
        "-q",
        "--quality",
        type=_quality,
        metavar="Q",
        help="0-100: lower makes smaller files (default 50, the preset as trained; without "
        "-m, 50 is 32c and 0-100 spans all presets: docs/quality.md)",
    )
    rate.add_argument(
        "--bpp", type=_bpp, metavar="B", help="the best file of at most B bits per pixel"
    )
    rate.add_argument(
        "--size",
        type=_size,
        metavar="BYTES",
        help="the best file of at most BYTES (e.g. 40000, or 40KB: K is 1024)",
    )
    c.add_argument("--drop-alpha", action="store_true", help="discard alpha instead of refusing")
    _add_runtime(c)
    _add_outputs(c)

    d = add(
        "decompress",
        "decode .l3ic files to images",
        "examples:\n  l3ic decompress photo.l3ic\n  l3ic decompress *.l3ic --outdir png/\n"
        "  l3ic decompress photo.l3ic -o photo.png --png-level 9    # smallest PNG, slower",
    )
    d.add_argument("inputs", nargs="+", metavar="INPUT", help=".l3ic files")
    d.add_argument("--format", default="png", help="output extension with --outdir (default png)")
    d.add_argument(
        "--png-level",
        type=int,
        choices=range(10),
        default=PNG_LEVEL,
        metavar="0-9",
        help=f"zlib level of PNG output (default {PNG_LEVEL}, the fastest, as OpenCV's; 6 is "
        "Pillow's default: about 4x the time for a 12 %% smaller file; 9 the smallest)",
    )
    d.add_argument(
        "--top-channels",
        type=int,
        metavar="K",
        help="progressive preview: decode only the K most important latent channels",
    )
    d.add_argument("--channels", type=int, dest="deprecated_channels", help=argparse.SUPPRESS)
    d.add_argument(
        "--max-pixels",
        type=_positive_int,
        metavar="N",
        help="refuse files declaring more pixels (default $L3IC_MAX_PIXELS or 33554432: a guard "
        "against decompression bombs; raise it for large images you trust)",
    )
    _add_runtime(d)
    _add_outputs(d)

    i = add(
        "info",
        "show what .l3ic files hold",
        "examples:\n  l3ic info photo.l3ic --json\n  l3ic info *.l3ic    # one block per file",
    )
    i.add_argument("files", nargs="+", metavar="FILE")
    i.add_argument(
        "--json", action="store_true", help="print JSON (a list when given several files)"
    )

    v = add(
        "convert",
        "convert a folder tree of images to .l3ic files or to tar shards",
        "Layout files (default): one .l3ic file per image, class sub-folders kept (ImageFolder\n"
        "layout), and DST/index.json. Layout shards: WebDataset-style tar shards of a few\n"
        "hundred MB with an index per shard and DST/shards.json (docs/latents.md), written a\n"
        "task per shard on this machine or on a Dask cluster. Either way a second run resumes\n"
        "an interrupted one, skipping what is finished. Exit 1 if any image failed (the others\n"
        "are converted).\n\nexamples:\n"
        "  l3ic convert photos/ latents/ -m 32c --workers 2\n"
        "  l3ic convert imagenet/train/ shards/ --layout shards --engine dask --workers 16\n"
        "  l3ic convert imagenet/train/ shards/ --layout shards --engine dask \\\n"
        "      --address tcp://scheduler:8786",
    )
    v.add_argument("src", metavar="SRC", help="folder of images, e.g. SRC/<class>/<image>.png")
    v.add_argument("dst", metavar="DST", help="output folder (created if needed)")
    _add_preset(v, figures)
    v.add_argument("--workers", type=int, default=1, metavar="N", help="processes (default 1)")
    v.add_argument("--drop-alpha", action="store_true", help="discard alpha instead of failing")
    v.add_argument(
        "-q",
        "--quality",
        type=_quality,
        metavar="Q",
        help="0-100, as for compress (default 50; --layout files only, for now)",
    )
    _add_runtime(v)
    v.add_argument(
        "--layout",
        choices=("files", "shards"),
        help="files: one .l3ic per image (default); shards: tar shards (implied by the options "
        "below)",
    )
    v.add_argument(
        "--shard-size",
        type=_size,
        metavar="SIZE",
        help="aimed size of a shard, e.g. 256MB (the default), 1GB",
    )
    v.add_argument(
        "--engine",
        choices=ENGINES,
        help="where shards are written: local (processes on this machine, the default) or "
        'dask (a Dask cluster; pip install "l3ic[dask]")',
    )
    v.add_argument(
        "--address", metavar="URL", help="a running Dask scheduler, e.g. tcp://10.0.0.1:8786"
    )

    k = add(
        "cache",
        "show or empty the cache of built graphs",
        "The runtimes build each preset's network graphs at first use and keep them in\n"
        "~/.cache/l3ic ($L3IC_CACHE_DIR), 10-12 MB per preset and runtime. Graphs of older\n"
        "weights or l3ic versions go by themselves once unused for 30 days; --prune removes\n"
        "them now. Only files named as l3ic names them are removed (docs/runtimes.md).\n\n"
        "examples:\n  l3ic cache            # where, how much, and what is in use\n"
        "  l3ic cache --prune    # remove what the installed presets do not use\n"
        "  l3ic cache --clear    # remove everything (rebuilt when next needed)",
    )
    what = k.add_mutually_exclusive_group()
    what.add_argument(
        "--prune", action="store_true", help="remove the graphs the installed presets do not use"
    )
    what.add_argument("--clear", action="store_true", help="remove every graph l3ic cached")
    k.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("train", help="train a model (l3ic train --help)", add_help=False)
    return p


def _presets_help(figures: bool, chooses: bool = False) -> str:
    """The presets' help; with ``figures``, their bits and quality from the sidecars'
    validation figures; ``chooses``: without a preset, a rate option picks one."""
    default = f"default {DEFAULT_PRESET}"
    if chooses:
        default += "; with --quality, --bpp or --size, the preset that codes that rate best"
    text = f"preset: fewer latent channels, smaller files ({default})"
    shown = []
    for name in PRESETS if figures else ():
        try:
            v = load_sidecar(name)["validation"]
        except (L3ICError, KeyError, OSError, ValueError):
            continue
        shown.append(f"{name} {v['bpp']:.2f} bpp at SSIM {v['ssim']:.3f}")
    if shown:
        text += "; on l3ic's validation photos " + ", ".join(shown)
    return text


def _add_preset(p: argparse.ArgumentParser, figures: bool, chooses: bool = False) -> None:
    p.add_argument("-m", "--preset", choices=list(PRESETS), help=_presets_help(figures, chooses))
    p.add_argument(
        "--model", choices=list(PRESETS), dest="deprecated_model", help=argparse.SUPPRESS
    )


def _add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="where the network runs: auto (OpenVINO in bf16 on CPUs with AMX or AVX512-BF16 "
        "where it is installed, else ONNX Runtime), onnx (ONNX Runtime), openvino (needs pip "
        'install "l3ic[openvino]") or keras (the reference; needs pip install "l3ic[train]"); '
        "default $L3IC_RUNTIME, else auto. Files do not depend on it",
    )


def _deprecated_options(args: argparse.Namespace) -> None:
    """Maps the old spellings --model and --channels to --preset and --top-channels, warning."""
    for old_dest, dest, old, new in (
        ("deprecated_model", "preset", "--model", "-m/--preset"),
        ("deprecated_channels", "top_channels", "--channels", "--top-channels"),
    ):
        value = getattr(args, old_dest, None)
        if value is None:
            continue
        print(f"l3ic: warning: {old} is deprecated: use {new}", file=sys.stderr)
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    if hasattr(args, "preset") and args.preset is None and args.command != "compress":
        args.preset = DEFAULT_PRESET  # compress without one lets a rate choose (api.compress)


def _add_outputs(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="OUT", help="output file (one input only)")
    out.add_argument("--outdir", metavar="DIR", help="folder for the outputs")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")


def _version() -> str:
    from . import __version__

    return __version__


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _number(within, expected: str):
    """An argparse type: a real number for which ``within(value)`` holds, else the error
    "expected <expected>"."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")  # fails every bound
        if not within(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_quality = _number(lambda v: 0 <= v <= 100, "a number from 0 to 100")
_bpp = _number(lambda v: 0 < v < 1e6, "bits per pixel above 0")


def _size(text: str) -> int:
    """argparse type: a byte count such as 256MB (``l3ic.datasets.shard_convert.parse_size``)."""
    from .datasets.shard_convert import parse_size

    try:
        return parse_size(text)
    except L3ICError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _output_for(path: Path, args, suffix: str) -> Path:
    if args.output:
        return Path(args.output)
    folder = Path(args.outdir) if args.outdir else path.parent
    return folder / (path.stem + suffix)


def _compress_one(path: Path, args) -> str:
    from . import container
    from .api import compress
    from .atomic_files import write_atomic

    _check_input(path, "an image")
    out = _output_for(path, args, ".l3ic")
    if out.exists() and not args.force:
        raise L3ICError(f"{out} exists (use --force to overwrite)")
    t0 = time.perf_counter()
    data = compress(
        path,
        preset=args.preset,
        drop_alpha=args.drop_alpha,
        quality=args.quality,
        bpp=args.bpp,
        max_bytes=args.size,
        runtime=args.runtime,
    )
    write_atomic(out, data, force=args.force)
    c = container.parse_header(data)
    return (
        f"{path} -> {out}: {len(data):,} bytes, {bpp(len(data), c.height, c.width):.3f} bpp, "
        f"{time.perf_counter() - t0:.2f} s"
    )


def _decompress_one(path: Path, args) -> str:
    import imageio.v3 as iio

    from .api import decompress
    from .atomic_files import write_atomic

    _check_input(path)
    out = _output_for(path, args, "." + args.format.lstrip("."))
    if out.exists() and not args.force:
        raise L3ICError(f"{out} exists (use --force to overwrite)")
    _check_writable(out)
    t0 = time.perf_counter()
    image = decompress(
        path.read_bytes(),
        top_channels=args.top_channels,
        max_pixels=args.max_pixels,
        runtime=args.runtime,
    )
    suffix = out.suffix.lower()
    options = {"compress_level": args.png_level} if suffix == ".png" else {}
    try:
        encoded = iio.imwrite("<bytes>", image, extension=suffix, **options)
    except Exception as e:  # imageio raises many types for unknown formats
        raise L3ICError(f"cannot write {out}: {e}") from None
    write_atomic(out, encoded, force=args.force)
    return f"{path} -> {out}: {image.shape[1]}x{image.shape[0]}, {time.perf_counter() - t0:.2f} s"


def _check_input(path: Path, what: str = "an .l3ic file") -> None:
    """Raises L3ICError unless ``path`` is a file with some content (one wording for every
    command: "is a folder, not WHAT", "no such file", "is empty (0 bytes)")."""
    if path.is_dir():
        raise L3ICError(f"is a folder, not {what}")
    if not path.is_file():
        raise L3ICError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise L3ICError("is empty (0 bytes)")


def _check_writable(out: Path) -> None:
    """Raises L3ICError unless imageio writes images in the format of ``out``'s extension."""
    import imageio

    suffix = out.suffix.lower()
    if not suffix:
        why = "no file extension to choose the image format by"
    elif _writable(suffix):
        return
    elif suffix in imageio.config.known_extensions:
        why = f"no installed imageio plugin writes '{suffix}' images"
    else:
        why = f"unknown image format '{suffix}'"
    usable = [s for s in (".png", ".jpg", ".webp", ".tif", ".bmp") if _writable(s)]
    raise L3ICError(f"cannot write {out}: {why} (this install writes {', '.join(usable)})")


@functools.cache
def _writable(suffix: str) -> bool:
    """Whether imageio writes a 1x1 image in the format of file extension ``suffix``."""
    import imageio.v3 as iio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            iio.imwrite("<bytes>", np.zeros((1, 1, 3), np.uint8), extension=suffix)
    except Exception:  # imageio raises many types for unknown formats
        return False
    return True


def _check_compress_output(output: str) -> bool:
    """False (after one error line) when ``compress -o`` names an image format, which would
    put an .l3ic file under an image's name; other names that are not .l3ic get a warning."""
    import imageio

    suffix = Path(output).suffix.lower()
    if suffix in set(imageio.config.known_extensions) - {".l3ic"}:
        print(
            f"l3ic: error: -o {output}: compress writes an .l3ic file, not a '{suffix}' image "
            "(name it .l3ic; decompress writes images)",
            file=sys.stderr,
        )
        return False
    if suffix != ".l3ic":
        print(f"l3ic: warning: {output}: an .l3ic file is written", file=sys.stderr)
    return True


def _run_many(args, one) -> int:
    paths = [Path(p) for p in args.inputs]
    if args.output and len(paths) > 1:
        print("l3ic: error: -o/--output takes one input; use --outdir for several", file=sys.stderr)
        return 2
    if args.outdir and not Path(args.outdir).is_dir():
        Path(args.outdir).mkdir(parents=True, exist_ok=True)
    failed = 0
    # a bar for 3 files and more where show_progress draws one; it and tqdm are imported only
    # then (they cost a one-file command about 50 ms), and tqdm.write keeps lines clear of the bar
    write, bar = print, paths
    if len(paths) >= 3:
        from .datasets.convert import show_progress

        if show_progress(None):
            from tqdm import tqdm

            write, bar = tqdm.write, tqdm(paths, unit="file", file=sys.stderr, leave=False)
    for path in bar:
        with warnings.catch_warnings(record=True) as caught:
            try:
                line, stream = one(path, args), sys.stdout
            except (L3ICError, OSError) as e:
                failed += 1
                line, stream = f"l3ic: error: {path}: {one_line(e)}", sys.stderr
        for w in caught:
            write(f"l3ic: warning: {path}: {one_line(w.message)}", file=sys.stderr)
        write(line, file=stream)
    if failed and len(paths) > 1:
        print(f"l3ic: {failed} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _convert(args) -> int:
    from .datasets.convert import convert
    from .datasets.shard_convert import DEFAULT_SHARD_SIZE, convert_shards

    try:
        if args.layout == "shards" or _sharded(args):
            report = convert_shards(
                args.src,
                args.dst,
                args.preset,
                workers=args.workers,
                engine=args.engine or ("dask" if args.address else "local"),
                address=args.address,
                shard_size=args.shard_size or DEFAULT_SHARD_SIZE,
                drop_alpha=args.drop_alpha,
                runtime=args.runtime,
            )
        else:
            report = convert(
                args.src,
                args.dst,
                args.preset,
                args.workers,
                args.drop_alpha,
                quality=args.quality,
                runtime=args.runtime,
            )
    except (L3ICError, OSError) as e:
        print(f"l3ic: error: {one_line(e)}", file=sys.stderr)
        return 1
    for rel, message in report.warnings:
        print(f"l3ic: warning: {Path(args.src) / rel}: {message}", file=sys.stderr)
    for rel, why in report.failed:
        print(f"l3ic: error: {Path(args.src) / rel}: {' '.join(why.split())}", file=sys.stderr)
    print(report.summary())
    return 1 if report.failed else 0


def _sharded(args: argparse.Namespace) -> bool:
    """Whether ``convert`` was given an option of the shards layout."""
    return (args.shard_size, args.engine, args.address) != (None, None, None)


def _check_convert_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits 2 (bad usage) on options of ``convert`` that contradict each other."""
    if args.layout == "files" and _sharded(args):
        parser.error("--shard-size, --engine and --address need --layout shards")
    if args.address is not None and args.engine == "local":
        parser.error("--address needs --engine dask")
    if args.quality is not None and (args.layout == "shards" or _sharded(args)):
        parser.error("--quality works with --layout files only, for now (shards are quality 50)")


def _info(args) -> int:
    failed, found = 0, []
    for name in args.files:
        try:
            info = _read_info(Path(name))
        except (L3ICError, OSError) as e:
            failed += 1
            print(f"l3ic: error: {name}: {one_line(e)}", file=sys.stderr)
            continue
        if args.json:
            found.append(info)
        else:
            _print_info(info)
    if args.json and found:
        print(json.dumps(found[0] if len(args.files) == 1 else found, indent=2))
    return 1 if failed else 0


def _cache(args) -> int:
    """``l3ic cache``: the cache's folder and files (which the installed presets use), after
    removing what ``--prune`` or ``--clear`` asks."""
    from . import graph_cache

    folder = graph_cache.graph_cache_dir()
    keep = graph_cache.in_use_keys()
    removed = freed = 0
    if args.prune or args.clear:
        removed, freed = graph_cache.prune(folder, keep=None if args.clear else keep)
    files = graph_cache.cached_files(folder)
    used = [f for f in files if f.in_use(keep)]
    if args.json:
        report = {
            "folder": str(folder),
            "bytes": sum(f.size for f in files),
            "in_use_bytes": sum(f.size for f in used),
            "removed_files": removed,
            "removed_bytes": freed,
            "files": [
                {
                    "name": f.path.name,
                    "bytes": f.size,
                    "runtime": f.runtime,
                    "in_use": f.in_use(keep),
                    "last_used": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(f.last_used)),
                }
                for f in files
            ],
        }
        print(json.dumps(report, indent=2))
        return 0
    if args.prune or args.clear:
        print(f"removed {removed} files ({_megabytes(freed)})")
    total, in_use = sum(f.size for f in files), sum(f.size for f in used)
    print(f"{folder}: {_megabytes(total)} in {len(files)} files")
    print(f"  in use by the installed presets: {_megabytes(in_use)} in {len(used)} files")
    if len(files) > len(used):
        print(
            f"  not used by them: {_megabytes(total - in_use)} in {len(files) - len(used)} "
            "files (l3ic cache --prune removes them)"
        )
    return 0


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _read_info(path: Path) -> dict:
    """What the .l3ic file ``path`` holds (its header, parsed and checked), as a dict."""
    from . import container

    _check_input(path)
    data = path.read_bytes()
    c = container.parse(data)
    streams = list(c.stream_lengths)
    modes = [code.kind.name for code in c.codes]
    return {
        "file": str(path),
        "preset": c.preset,
        "fingerprint": c.fingerprint.hex(),
        "width": c.width,
        "height": c.height,
        "grayscale": c.grayscale,
        "latent_shape": list(c.latent_shape),
        "scale": c.scale,
        "bytes": len(data),
        "bpp": bpp(len(data), c.height, c.width),
        "header_bytes": c.header_bytes,
        "channel_bytes": streams,
        "channel_modes": modes,
    }


def _print_info(info: dict) -> None:
    """``l3ic info``'s text for one file (``_read_info``'s dict)."""
    gray = " grayscale" if info["grayscale"] else ""
    print(f"{info['file']}: l3ic preset {info['preset']}, {info['width']}x{info['height']}{gray}")
    print(f"  {info['bytes']:,} bytes, {info['bpp']:.4f} bpp, header {info['header_bytes']} bytes")
    scale = f", scale {info['scale']:g}" if info["scale"] != 1 else ""
    print("  latent " + "x".join(str(n) for n in info["latent_shape"]) + scale)
    streams, modes = info["channel_bytes"], info["channel_modes"]
    order = np.argsort(streams)[::-1]
    print("  channel bytes (mode): " + ", ".join(f"{k}:{streams[k]}({modes[k]})" for k in order))


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "train":
        if argv[1:2] == ["gpu-run"]:  # the GPU run is written for JAX
            os.environ.setdefault("KERAS_BACKEND", "jax")
        try:
            import_keras_quietly()
        except ImportError as e:
            why = f"training needs Keras and TensorFlow ({e})"
            print(f'l3ic: error: {why}: pip install "l3ic[train]"', file=sys.stderr)
            return 1
        from .training.cli import train_main

        return train_main(argv[1:])
    parser = _parser(figures=bool({"-h", "--help"} & set(argv)))
    args = parser.parse_args(argv)
    _deprecated_options(args)
    if args.command == "convert":
        _check_convert_options(parser, args)
    try:
        if args.command == "info":
            return _info(args)
        if args.command == "cache":
            return _cache(args)
        if args.command == "convert":
            return _convert(args)
        if args.command == "decompress":
            return _run_many(args, _decompress_one)
        if args.output and not _check_compress_output(args.output):
            return 2
        return _run_many(args, _compress_one)
    except KeyboardInterrupt:
        print("l3ic: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """The reader of stdout went away (``| head``): no traceback, nothing more written.

    stdout is pointed at /dev/null so that Python's flush at exit does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (e.g. captured): nothing to redirect
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
