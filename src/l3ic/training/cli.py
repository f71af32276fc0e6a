"""Command-line front ends of the model tools: ``l3ic train`` (with its subcommands ``export``,
``ship``, ``contexts``, ``curve`` and ``gpu-run``) and ``python -m l3ic.evaluate``.

Each parses its arguments and calls the tool's module: ``loop`` (training loop),
``export`` (export and ship), ``gpu_run`` (the one-shot GPU call) and
``l3ic.evaluate``. ``python -m l3ic.training ...`` and ``l3ic train ...`` both end in
``train_main``. Exit status, as for every l3ic command: 0 on success, 1 on bad input (an
``L3ICError`` or an ``OSError``: a missing folder, unreadable data; one line
``l3ic: error: ...`` on stderr), 2 on bad usage (argparse).
"""

import argparse
import functools
import math
import os
import sys
from pathlib import Path

from .. import evaluate
from ..atomic_files import write_json_atomic
from ..errors import L3ICError, one_line
from ..presets import (
    DEFAULT_PRESET,
    FROZEN,
    PRESETS,
    SHIP_MIN_SSIM_GAIN,
    SHIP_RATE_TOLERANCE,
    TARGET_BPP,
)
from . import export, gpu_run, loop
from .data import DATA_ENV, default_data_dir
from .recipe import GPU_RUN_OPTIONS, TRAIN_OPTIONS, Recipe, add_arguments

__all__ = [
    "train_main",
    "recipe_of",
    "evaluate_main",
    "build_train_parser",
    "PRESET_COMMANDS",
    "preset_parser",
    "build_gpu_run_parser",
    "build_evaluate_parser",
    "SUBCOMMANDS",
]

TRAIN_EXAMPLES = """
examples:
  # the 32c preset on the default data, 20000 steps, export to models/32c.npz + .json
  l3ic train --preset 32c --steps 20000 --out runs/32c --export 32c

  # continue an interrupted run exactly (weights, optimizer, step, data order, steering)
  l3ic train --out runs/32c --resume

  # fine-tune the shipped 32c toward its rate target (1.04 bpp on the validation split):
  # lmbda is steered every step
  l3ic train --preset 32c --init models/32c.npz --target-bpp 1.04 --lr 1e-4 --batch 8 --out runs/ft

  # export a finished (or partly trained) run later, then ship it if better on validation
  l3ic train export runs/32c --preset 32c --models-dir runs/candidates
  # ... or put its rate at the preset's target first (1.04 bpp on the validation split)
  l3ic train export runs/32c --preset 32c --models-dir runs/candidates --fit-rate
  l3ic train ship runs/candidates --preset 32c

  # on a GPU machine, or a CPU with AMX or AVX512-BF16, bf16 is switched on automatically
  KERAS_BACKEND=jax l3ic train --preset 64c --steps 200000 --batch 50 --out runs/64c

  # all three presets in one timed GPU call (docs/training.md, "The GPU run")
  KERAS_BACKEND=jax l3ic train gpu-run --minutes 7 --data .data/train-gpu --out $OUT
"""

GPU_RUN_EXAMPLES = """
examples:
  # on the GPU machine (docs/training.md has the whole device call and what it carries)
  KERAS_BACKEND=jax l3ic train gpu-run --minutes 6.5 --data .data/train-gpu --out $OUT

  # the same on this CPU in about a minute: tiny patches, a few steps (CI runs this)
  KERAS_BACKEND=jax l3ic train gpu-run --dry-run --out /tmp/gpu-dry

  # afterwards, here: export each preset and ship it only if better on the validation split
  l3ic train export runs/gpu --preset 32c --models-dir runs/candidates
  l3ic train ship runs/candidates --preset 32c
"""

EVALUATE_EXAMPLES = """
example (the weights of the checkout's models/, not an installed copy):
  python -m l3ic.evaluate --preset 32c ../shared/data/kodak-crop512 --models-dir models \\
      --json runs/eval/kodak-crop512-32c.json
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks and shows the options' defaults (but not None/False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _preset_list(text: str) -> list[str]:
    """``--presets 16c,32c``: a list of known presets (argparse reports an unknown one)."""
    names = text.split(",")
    unknown = [p for p in names if p not in PRESETS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown preset {unknown[0]!r}: choose from {', '.join(PRESETS)}"
        )
    return names


def build_train_parser() -> argparse.ArgumentParser:
    """The parser of ``l3ic train`` (training; the subcommands have their own)."""
    p = argparse.ArgumentParser(
        prog="l3ic train",
        description="Train an l3ic model (Adam; constant lr, then cosine decay). Subcommands: "
        "`l3ic train export RUN_DIR --preset P` writes models/P.npz + .json (+ .contexts.npz); "
        "`l3ic train ship DIR --preset P` ships an export if better on the validation split; "
        "`l3ic train contexts --preset P` learns the context tables of shipped weights; "
        "`l3ic train curve --preset P` measures their scale curve; "
        "`l3ic train gpu-run --help` trains all presets in one GPU call.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=_Formatter,
    )
    p.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET, help="model size")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"folder of training images (default ${DATA_ENV} or ../shared/data/train-gpu)",
    )
    add_arguments(p, TRAIN_OPTIONS, num_channels=None)  # None: the --preset's
    p.add_argument("--channels", type=int, dest="deprecated_channels", help=argparse.SUPPRESS)
    p.add_argument("--val-every", type=int, default=500, help="validate every N steps")
    p.add_argument("--ckpt-every", type=int, default=250, help="checkpoint every N steps")
    p.add_argument("--out", type=Path, required=True, help="run folder RUN_DIR")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--export", metavar="PRESET", help="at the end, export to models/PRESET.npz")
    p.add_argument("--stop-at", type=int, help=argparse.SUPPRESS)
    return p


TARGET_TEXT = ", ".join(f"{p} {b:g}" for p, b in TARGET_BPP.items())
PRESET_COMMANDS = {  # the subcommands of one preset: (description, folder argument, models help)
    "export": (
        "Write models/PRESET.npz (float16) and models/PRESET.json from a run's checkpoint, or "
        "from preset PRESET of a gpu-run folder.",
        ("run_dir", "the run folder (--out of the training)"),
        "where to write (default: ./models)",
    ),
    "ship": (
        "Replace a shipped preset by an exported candidate if it is better on the validation "
        f"split, coded for real: for a preset with a rate target ({TARGET_TEXT} bpp), at most "
        f"{SHIP_RATE_TOLERANCE:g} x that and at least {SHIP_MIN_SSIM_GAIN:g} more SSIM; for "
        "another name, higher SSIM at equal or lower bpp.",
        ("candidate_dir", "folder with PRESET.npz + PRESET.json"),
        None,
    ),
    "contexts": (
        "Learn the context tables (format version 4's context mode) of a shipped preset's "
        "weights from every training image, and write them beside the weights "
        "(PRESET.contexts.npz); export does this for new weights.",
        None,
        None,
    ),
    "curve": (
        "Measure a shipped preset's scale curve (mean bpp, PSNR, SSIM and MS-SSIM of the "
        "validation split at scales 0.354 to 2) and write it into its sidecar (scale_curve), which "
        "`l3ic compress --quality/--bpp` without a preset chooses by (docs/quality.md); export "
        "does this for new weights.",
        None,
        None,
    ),
}


def preset_parser(command: str) -> argparse.ArgumentParser:
    """The parser of ``l3ic train COMMAND [FOLDER] --preset P [--models-dir DIR] [--data DIR]``,
    a subcommand of one preset (``PRESET_COMMANDS``; ``--name``, the old spelling of
    ``--preset``, warns)."""
    description, folder, models_help = PRESET_COMMANDS[command]
    p = argparse.ArgumentParser(
        prog=f"l3ic train {command}",
        description=description,
        epilog=f"example:\n  l3ic train {command} {folder[0].upper() + ' ' if folder else ''}"
        "--preset 32c",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if folder:
        p.add_argument(folder[0], type=Path, help=folder[1])
    p.add_argument("--preset", choices=list(PRESETS), help="e.g. 32c (required)")
    p.add_argument("--name", dest="deprecated_name", help=argparse.SUPPRESS)
    p.add_argument(
        "--models-dir", type=Path, help=models_help or "the shipped models (default: ./models)"
    )
    p.add_argument("--data", type=Path, help="training images (default: ../shared/data/train-gpu)")
    if command == "export":
        p.add_argument(
            "--fit-rate",
            nargs="?",
            const="target",
            metavar="BPP",
            help="move the weights along their rate curve until the validation split codes at "
            "BPP (without a value: the preset's target, e.g. 1.93 for 64c); the scale found is "
            "folded into the weights and recorded in the sidecar (rate_fit)",
        )
    return p


def _preset_of(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Sets ``args.preset`` from ``--preset``, or from the old ``--name`` (a warning)."""
    if args.deprecated_name is not None:
        print("l3ic: warning: --name is deprecated: use --preset", file=sys.stderr)
        args.preset = args.preset or args.deprecated_name
    if args.preset is None:
        parser.error("the following arguments are required: --preset")


def build_gpu_run_parser() -> argparse.ArgumentParser:
    """The parser of ``l3ic train gpu-run`` (``gpu_run``)."""
    p = argparse.ArgumentParser(
        prog="l3ic train gpu-run",
        description="Train all presets on one GPU within a wall-clock budget (JAX backend, bf16). "
        "Writes PRESET.npz (float32 weights) per preset, log.csv and gpu-run.json to --out.",
        epilog=GPU_RUN_EXAMPLES,
        formatter_class=_Formatter,
    )
    p.add_argument("--minutes", type=float, default=6.5, help="training budget")
    p.add_argument("--out", type=Path, required=True, help="folder for the weights and logs")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"training images (default ${DATA_ENV} or ../shared/data/train-gpu)",
    )
    p.add_argument("--dry-run", action="store_true", help="a CPU rehearsal: tiny, a few steps")
    p.add_argument(
        "--deadline-minutes",
        type=float,
        default=9.0,
        help="the whole call ends this long after --started-at",
    )
    p.add_argument(
        "--started-at", type=float, help="epoch seconds when the call began (default: now)"
    )
    p.add_argument(
        "--presets",
        type=_preset_list,
        default=[name for name in PRESETS if name not in FROZEN],
        help="comma-separated presets; by default those not frozen (presets.FROZEN)",
    )
    p.add_argument(
        "--init",
        choices=("shipped", "scratch"),
        default="shipped",
        help="start from the shipped weights or from scratch",
    )
    # The recipe's options, with gpu-run's defaults: batch 64 and patch 128 (dry run 4 and 32),
    # lr 3e-4 with a 2 % warm-up, scales in [0.5, 2] (docs/quality.md); lmbda from the shipped
    # sidecar's lmbda_final.
    add_arguments(p, GPU_RUN_OPTIONS, batch=None, patch=None, lr=3e-4, warmup=0.02, scale_range=2.0)
    p.add_argument("--check-steps", type=int, default=3, help="steps per preset before training")
    p.add_argument("--log-every", type=float, default=10.0, help="seconds between log rows")
    p.add_argument("--save-every", type=float, default=60.0, help="seconds between weight saves")
    return p


def build_evaluate_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m l3ic.evaluate``."""
    p = argparse.ArgumentParser(
        prog="python -m l3ic.evaluate",
        description="Mean bpp (real file bytes), PSNR, SSIM and MS-SSIM of a preset on a folder, "
        "scored as the benchmark scores (l3ic.metrics.score).",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", type=Path, help="folder of images")
    p.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET, help="the preset")
    p.add_argument(
        "--models-dir",
        type=Path,
        help="evaluate the weights in this folder (e.g. models, the checkout's) instead of "
        "those l3ic finds (an installed l3ic reads its own copy)",
    )
    p.add_argument(
        "--json",
        type=Path,
        help="write all figures (per image too; the bench's key names) to this file",
    )
    p.add_argument("--quiet", action="store_true", help="no per-image lines")
    return p


def _fail(error: Exception) -> int:
    """Reports bad input in one line on stderr; returns the exit status 1."""
    print(f"l3ic: error: {one_line(error)}", file=sys.stderr)
    return 1


def recipe_of(args: argparse.Namespace) -> Recipe:
    """The recipe of ``l3ic train``'s parsed arguments: ``--num-channels``, else the old
    spelling ``--channels`` (a warning), else the ``--preset``'s channels."""
    fields = {name: getattr(args, name) for name in TRAIN_OPTIONS if name != "mixed_precision"}
    if args.deprecated_channels is not None:
        print("l3ic: warning: --channels is deprecated: use --num-channels", file=sys.stderr)
    num = args.num_channels or args.deprecated_channels
    fields["num_channels"] = num or PRESETS[args.preset]
    for name in ("init", "init_trunk"):
        fields[name] = str(fields[name]) if fields[name] else None
    return Recipe(**fields)


def _train(args: argparse.Namespace) -> int:
    cfg = None
    if not args.resume:
        cfg = loop.new_config(recipe_of(args), args.mixed_precision, args.data)
    run = loop.run_training(args.out, cfg, args.val_every, args.ckpt_every, args.stop_at)
    if args.export and run.step == run.recipe.steps:
        export.export_run(args.out, args.export)
    return 0


def _fit_rate(value: str | None, preset: str) -> float | None:
    """The bpp of ``export --fit-rate``: None, the preset's target ("target"), or a number."""
    if value is None:
        return None
    if value == "target":
        if preset not in TARGET_BPP:
            raise L3ICError(f"preset {preset!r} has no rate target: give --fit-rate a bpp")
        return TARGET_BPP[preset]
    try:
        bpp = float(value)
    except ValueError:
        bpp = math.nan
    if not bpp > 0 or math.isinf(bpp):
        raise L3ICError(f"--fit-rate must be a positive number of bits per pixel, not {value!r}")
    return bpp


def _export(args: argparse.Namespace) -> int:
    fit_rate = _fit_rate(args.fit_rate, args.preset)
    export.export_run(args.run_dir, args.preset, args.models_dir, args.data, fit_rate)
    return 0


def _ship(args: argparse.Namespace) -> int:
    export.ship(args.candidate_dir, args.preset, args.models_dir, args.data)
    return 0


def _contexts(args: argparse.Namespace) -> int:
    export.learn_contexts(args.preset, args.models_dir, args.data)
    return 0


def _curve(args: argparse.Namespace) -> int:
    export.write_curve(args.preset, args.models_dir, args.data)
    return 0


def _gpu_run(args: argparse.Namespace) -> int:
    if not args.presets:
        raise L3ICError(
            "every preset is frozen (presets.FROZEN): name the presets to train with --presets; "
            "their weights can only ship under a new preset name"
        )
    if args.data is None:
        args.data = default_data_dir()
    return gpu_run.GpuRun(args).run()


SUBCOMMANDS = {
    "export": (functools.partial(preset_parser, "export"), _export),
    "ship": (functools.partial(preset_parser, "ship"), _ship),
    "contexts": (functools.partial(preset_parser, "contexts"), _contexts),
    "curve": (functools.partial(preset_parser, "curve"), _curve),
    "gpu-run": (build_gpu_run_parser, _gpu_run),
}


def train_main(argv: list[str]) -> int:
    """``l3ic train ARGV`` / ``python -m l3ic.training ARGV``; returns the exit status.

    ``ARGV`` starting with ``export``, ``ship``, ``contexts``, ``curve`` or ``gpu-run`` runs
    that subcommand; anything else trains.
    """
    argv = list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        build, command = SUBCOMMANDS[argv[0]]
        argv = argv[1:]
    else:
        build, command = build_train_parser, _train
    parser = build()
    args = parser.parse_args(argv)
    if hasattr(args, "deprecated_name"):  # the subcommands of one preset (preset_parser)
        _preset_of(parser, args)
    try:
        return command(args)
    except (L3ICError, OSError) as e:
        return _fail(e)


def _finite_or_none(value):
    """A JSON-safe copy of evaluation results: NaN (MS-SSIM of small images) becomes None."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def evaluate_main(argv: list[str]) -> int:
    """``python -m l3ic.evaluate ARGV``; returns the exit status."""
    args = build_evaluate_parser().parse_args(argv)
    try:
        if args.models_dir is not None:
            if not args.models_dir.is_dir():
                raise L3ICError(f"models folder not found: {args.models_dir}")
            os.environ["L3IC_MODELS_DIR"] = str(args.models_dir.resolve())
        result = evaluate.evaluate_folder(args.preset, args.folder, verbose=not args.quiet)
        mean = result["mean"]
        figures = ", ".join(
            f"{k} {mean[k]:.4f}" if mean[k] is not None else f"{k} n/a" for k in evaluate.SHOWN
        )
        print(
            f"{args.preset} on {result['dataset']} ({result['images']} images, "
            f"{result['seconds']} s): {figures}"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(args.json, _finite_or_none(result))
    except (L3ICError, OSError) as e:
        return _fail(e)
    return 0
