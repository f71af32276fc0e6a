"""The recipe of a training run and the machine it runs on, defined once for ``l3ic train`` and
``l3ic train gpu-run``.

``Recipe`` holds every choice that shapes the trained weights (the fields of ``config.json``
and of a sidecar's ``recipe``); ``add_arguments`` puts the options of some of its fields on an
argparse parser with one help text each, so both commands spell and explain them alike.
``machine`` describes the hardware and ``choose_mixed_precision`` decides what
``--mixed-precision auto`` means on it: bf16 on a GPU and on a CPU with AMX or AVX512-BF16,
float32 elsewhere (measured: docs/training.md, "bf16 on the CPU").
"""

import argparse
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..codebook import STRIDE
from ..cpu import FAST_BF16_FLAGS, cpu_has_fast_bf16, cpu_model
from ..errors import L3ICError
from ..model import RATES, SSIM_KINDS, default_lmbda
from ..quantizer import BACKWARDS
from .rules import STEER_GAIN

__all__ = [
    "Recipe",
    "RECIPE",
    "TRAIN_OPTIONS",
    "GPU_RUN_OPTIONS",
    "add_arguments",
    "num_channels_in",
    "machine",
    "choose_mixed_precision",
]


def _opt(help_text: str, **argparse_kwargs) -> dict:
    return {"help": help_text, **argparse_kwargs}


@dataclass
class Recipe:
    """What a training run does, as ``config.json`` and the sidecar's ``recipe`` record it.

    ``lmbda`` None means ``default_lmbda(num_channels)`` (``resolved`` fills it in); the rest are
    the options of ``l3ic train`` (docs/training.md). ``mixed_precision`` is the decision
    (bool); the command line's ``auto`` is resolved by ``choose_mixed_precision``.
    """

    num_channels: int = field(default=32, metadata=_opt("latent channels (overrides --preset)"))
    steps: int = field(default=20000, metadata=_opt("total optimizer steps"))
    batch: int = field(default=16, metadata=_opt("patches per step"))
    patch: int = field(default=128, metadata=_opt("patch side in pixels (multiple of 8)"))
    lr: float = field(default=3e-4, metadata=_opt("Adam learning rate, held at first"))
    decay_start: float = field(
        default=0.5, metadata=_opt("fraction of the schedule after which the lr decays (cosine)")
    )
    lr_final: float = field(default=0.1, metadata=_opt("final lr as a fraction of --lr"))
    warmup: float = field(
        default=0.0, metadata=_opt("fraction of the schedule over which the lr rises to --lr")
    )
    lmbda: float | None = field(
        default=None, metadata=_opt("rate weight on bpp (default 2.03e-4 * 64 / C)")
    )
    target_bpp: float | None = field(
        default=None,
        metadata=_opt("steer lmbda every step so that the real validation bpp nears this"),
    )
    steer_gain: float = field(
        default=STEER_GAIN,
        metadata=_opt("with a target: lmbda *= exp(gain * relative rate error) every step"),
    )
    ssim_weight: float = field(
        default=0.01,
        metadata=_opt(
            "distortion = MSE + W * (1 - SSIM) (7x7 uniform window, the targets' SSIM); "
            "0 = plain MSE"
        ),
    )
    ssim_kind: str = field(
        default="ssim",
        metadata=_opt(
            "the SSIM of --ssim-weight: ssim (7x7 uniform window) or ms-ssim (Gaussian, the "
            "scales the patch holds: 4 of 5 at 128 px)",
            choices=tuple(SSIM_KINDS),
        ),
    )
    scale_range: float = field(
        default=1.0,
        metadata=_opt(
            "train each step at a quantisation scale drawn log-uniform in [1/R, R] (the "
            "rates of --quality: docs/quality.md); 1 = scale 1 only"
        ),
    )
    told_scale: bool = field(
        default=False,
        metadata=_opt(
            "tell the decoder log2 of the scale (--scale-range) through a FiLM after each of its "
            "convolutions: an experiment (docs/quality.md); such a run cannot be exported"
        ),
    )
    clipnorm: float | None = field(
        default=None, metadata=_opt("clip the gradients' global norm to this (default: no clip)")
    )
    ema: float = field(
        default=0.0,
        metadata=_opt(
            "keep a moving average of the weights, updated every step with this momentum (e.g. "
            "0.999), and validate and export it instead of the latest weights; 0: off"
        ),
    )
    backward: str = field(
        default="ste", metadata=_opt("quantiser gradient", choices=tuple(BACKWARDS))
    )
    rate: str = field(default="channel", metadata=_opt("rate estimate", choices=sorted(RATES)))
    mixed_precision: bool = field(
        default=False,
        metadata=_opt(
            "bf16 compute: auto = on with a GPU or a CPU with AMX/AVX512-BF16, else off",
            choices=("auto", "on", "off"),
        ),
    )
    seed: int = field(default=0, metadata=_opt("seed of weights and data order"))
    flips: bool = field(default=True, metadata=_opt("no random h/v flips"))
    init: str | None = field(
        default=None, metadata=_opt("start from these .npz weights (fresh optimizer)")
    )
    init_trunk: str | None = field(
        default=None,
        metadata=_opt("start from the layers of these .npz weights that fit (another preset's)"),
    )

    def __post_init__(self):
        if self.patch % STRIDE or self.patch < 2 * STRIDE:
            raise L3ICError(f"--patch must be a multiple of {STRIDE} and >= 16, got {self.patch}")
        if self.steps < 1 or self.batch < 1:
            raise L3ICError("--steps and --batch must be positive")
        if not 1.0 <= self.scale_range <= 8.0:
            raise L3ICError(f"--scale-range must be within 1..8, got {self.scale_range}")
        if not 0.0 <= self.warmup < 1.0:
            raise L3ICError(f"--warmup must be a fraction in [0, 1), got {self.warmup}")
        if not 0.0 <= self.ema < 1.0:
            raise L3ICError(f"--ema must be a momentum in [0, 1), got {self.ema}")

    def resolved(self) -> "Recipe":
        """This recipe with ``lmbda`` filled in."""
        lmbda = self.lmbda if self.lmbda is not None else default_lmbda(self.num_channels)
        return dataclasses.replace(self, lmbda=lmbda)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """The recipe of a ``config.json`` or sidecar; fields it lacks (older runs) default, and
        the count of channels that l3ic 0.18 and before called ``channels`` is read too."""
        fields = {k: d[k] for k in RECIPE if k in d}
        num_channels = num_channels_in(d)
        if num_channels is not None:
            fields["num_channels"] = num_channels
        return cls(**fields)


def num_channels_in(record: dict) -> int | None:
    """The count of latent channels a run config, sidecar or gpu-run entry records
    (``"num_channels"``; ``"channels"`` in those l3ic 0.18 and before wrote), or None."""
    return record.get("num_channels", record.get("channels"))


RECIPE = tuple(f.name for f in dataclasses.fields(Recipe))
# The recipe's options on each command line: ``l3ic train`` takes them all; ``gpu-run`` sets
# the channels, steps (a time budget), lmbda's start, target, bf16 and init per preset itself.
TRAIN_OPTIONS = tuple(name for name in RECIPE if name != "num_channels") + ("num_channels",)
GPU_RUN_OPTIONS = (
    "batch",
    "patch",
    "lr",
    "warmup",
    "decay_start",
    "lr_final",
    "lmbda",
    "steer_gain",
    "ssim_weight",
    "ssim_kind",
    "scale_range",
    "clipnorm",
    "flips",
    "seed",
)


def add_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...], **defaults) -> None:
    """Adds the options of the recipe fields ``names`` to ``parser``.

    ``defaults`` overrides a field's default for this parser (e.g. gpu-run's batch of 64);
    ``flips`` becomes ``--no-flips``, ``told_scale`` a switch and ``mixed_precision`` takes
    auto/on/off.
    """
    by_name = {f.name: f for f in dataclasses.fields(Recipe)}
    for name in names:
        f = by_name[name]
        flag = "--" + name.replace("_", "-")
        meta = dict(f.metadata)
        default = defaults.get(name, f.default)
        if name == "flips":
            parser.add_argument("--no-flips", dest="flips", action="store_false", **meta)
        elif name == "told_scale":
            parser.add_argument(flag, action="store_true", **meta)
        elif name == "mixed_precision":
            parser.add_argument(flag, default=defaults.get(name, "auto"), **meta)
        elif name in ("init", "init_trunk"):
            parser.add_argument(flag, type=Path, default=default, **meta)
        else:
            kinds = typing.get_args(f.type) or (f.type,)
            kind = next((k for k in (int, float) if k in kinds), str)
            parser.add_argument(flag, type=kind, default=default, **meta)


def machine() -> dict:
    """This machine for the current Keras backend: {"hardware": text, "gpu": bool, "cpu": model}."""
    import keras

    if keras.backend.backend() == "torch":  # keras.distribution does not cover torch
        import torch

        gpus = torch.cuda.device_count()
    else:
        gpus = sum("gpu" in d.lower() for d in keras.distribution.list_devices())
    cpu = cpu_model()
    if gpus:
        hardware = f"{gpus} GPU ({keras.backend.backend()})"
    else:
        hardware = f"CPU, {os.cpu_count()} cores ({cpu})"
    return {"hardware": hardware, "gpu": bool(gpus), "cpu": cpu}


def choose_mixed_precision(setting: str, gpu: bool) -> tuple[bool, str]:
    """(bf16 on?, why) for ``--mixed-precision`` ``setting`` ("auto", "on" or "off").

    auto: on with a GPU and on a CPU with AMX or AVX512-BF16; off elsewhere, where bf16 runs
    emulated (measured 10x slower than float32 on an AMD EPYC with AVX2 only, 2026-12-06).
    """
    if setting in ("on", "off"):
        return setting == "on", f"{setting} (asked)"
    if gpu:
        return True, "auto: on (GPU)"
    flags = cpu_has_fast_bf16()
    if flags:
        return True, f"auto: on ({cpu_model()} has {', '.join(flags)})"
    return False, f"auto: off ({cpu_model()} has no {' or '.join(FAST_BF16_FLAGS)})"
