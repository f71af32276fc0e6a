"""The training loop of one preset: recipe, learning-rate schedule, rate steering, checkpoints.

``python -m l3ic.train`` (``l3ic train``; front end in ``l3ic.cli_train``, docs/training.md).
A run lives in one folder RUN_DIR:

- ``config.json``: the recipe (all arguments), the training data identity and the hardware;
- ``ckpt.npz`` + ``ckpt-STEP-K.npz``: the latest checkpoint (step, seconds, the list of shards;
  the shards hold the float32 model weights and optimizer variables, at most 12 MiB each),
  replaced atomically, so ``--resume`` continues exactly where it stopped;
- ``log.csv``: one row per validation.

Batches are a pure function of (seed, step) (``l3ic.train_data.PatchSampler``), so a resumed run
trains on the same patches as an uninterrupted one. Validation codes images for real
(``l3ic.entropy_model.validate``); turning a run into a shipped preset is ``l3ic.export``.
"""

import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

from . import train_data
from .codebook import STRIDE
from .entropy_model import validate
from .errors import L3ICError
from .model import L3ICModel, default_lmbda
from .presets import lineage, load_matching, load_weights, save_npz_atomic
from .train_data import default_data_dir

__all__ = [
    "HoldCosine",
    "steer_lmbda",
    "build_model",
    "read_checkpoint",
    "Run",
    "new_recipe",
    "run_training",
    "CKPT_NAME",
    "CONFIG_NAME",
    "LOG_NAME",
    "RECIPE",
]

CKPT_NAME, CONFIG_NAME, LOG_NAME = "ckpt.npz", "config.json", "log.csv"
SHARD_BYTES = 12 << 20  # checkpoint shards stay under the 16 MiB a GPU machine returns per file
# Divergence guard (see Run.train): a validation this far below the run's best PSNR stops the
# run, and an unvalidated checkpoint whose interval's mean loss is this many times the best
# interval's is not written, so the checkpoint left on disk is from before the divergence.
DIVERGED_PSNR_DROP_DB = 3.0
DIVERGED_LOSS_RATIO = 10.0
LOG_FIELDS = (
    "step",
    "seconds",
    "lr",
    "loss",
    "mse",
    "bpp_est",
    "bits_per_value",
    "lmbda",
    "val_psnr",
    "val_ssim",
    "val_bpp",
    "val_bpp_est",
    "steps_per_s",
)
# Fields of config.json that --resume takes from the run, not from the command line.
RECIPE = (
    "channels",
    "steps",
    "batch",
    "patch",
    "lr",
    "decay_start",
    "lr_final",
    "warmup",
    "lmbda",
    "target_bpp",
    "ssim_weight",
    "backward",
    "rate",
    "mixed_precision",
    "seed",
    "flips",
    "init",
    "init_trunk",
)
STEER_GAIN, STEER_CLAMP = 2.0, 2.0  # lmbda *= clip((bpp / target) ** GAIN, 1 / CLAMP, CLAMP)


def steer_lmbda(lmbda: float, bpp: float, target: float) -> float:
    """The rate weight after one steering step toward ``target`` bits per pixel.

    Rate falls slowly as lmbda grows (roughly as a low power of it), so the correction is the
    squared ratio of measured to target rate, clamped to a factor of 2 either way.
    """
    ratio = (bpp / target) ** STEER_GAIN
    return lmbda * min(max(ratio, 1.0 / STEER_CLAMP), STEER_CLAMP)


@keras.saving.register_keras_serializable(package="l3ic")
class HoldCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, a constant learning rate, then a cosine decay to ``lr * final``.

    Args:
        lr: the peak (and held) learning rate.
        total: the last step of the schedule.
        decay_start: fraction of ``total`` after which the cosine decay begins.
        final: the ratio of the last learning rate to ``lr``.
        warmup: fraction of ``total``; over its first ``W = warmup * total`` steps the rate
            rises linearly from ``lr / W`` to ``lr`` (0: no warm-up).
    """

    def __init__(
        self,
        lr: float,
        total: int,
        decay_start: float = 0.5,
        final: float = 0.1,
        warmup: float = 0.0,
    ):
        self.lr, self.total, self.decay_start, self.final = lr, total, decay_start, final
        self.warmup = warmup

    def __call__(self, step):
        step = ops.cast(step, "float32")
        start = float(int(self.decay_start * self.total))
        span = max(float(self.total) - start, 1.0)
        t = ops.clip((step - start) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(np.pi * t))
        ramp = ops.clip((step + 1.0) / max(self.warmup * self.total, 1.0), 0.0, 1.0)
        return self.lr * ramp * (self.final + (1.0 - self.final) * cosine)

    def get_config(self):
        return {
            "lr": self.lr,
            "total": self.total,
            "decay_start": self.decay_start,
            "final": self.final,
            "warmup": self.warmup,
        }


def _hardware() -> tuple[str, bool]:
    """(description, whether a GPU is used) of this machine for the current Keras backend."""
    if keras.backend.backend() == "torch":  # keras.distribution does not cover torch
        import torch

        gpus = torch.cuda.device_count()
    else:
        gpus = sum("gpu" in d.lower() for d in keras.distribution.list_devices())
    if gpus:
        return f"{gpus} GPU ({keras.backend.backend()})", True
    return f"CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()})", False


def build_model(cfg: dict) -> L3ICModel:
    """A compiled L3ICModel with built optimizer variables for the recipe ``cfg``."""
    keras.utils.set_random_seed(cfg["seed"])
    keras.config.set_dtype_policy("mixed_bfloat16" if cfg["mixed_precision"] else "float32")
    net = L3ICModel(
        cfg["channels"],
        backward=cfg["backward"],
        rate=cfg["rate"],
        lmbda=cfg["lmbda"],
        ssim_weight=cfg.get("ssim_weight", 0.0),
        seed=cfg["seed"],
    )
    net(np.zeros((1, cfg["patch"], cfg["patch"], 3), dtype=np.float32))
    schedule = HoldCosine(
        cfg["lr"], cfg["steps"], cfg["decay_start"], cfg["lr_final"], cfg.get("warmup", 0.0)
    )
    net.compile(optimizer=keras.optimizers.Adam(schedule))
    net.optimizer.build(net.trainable_variables)
    return net


def _shard_names(head: Path) -> list[str]:
    with np.load(head) as f:
        return [str(n) for n in f["shards"]]


def read_checkpoint(run_dir: Path) -> dict[str, np.ndarray]:
    """All arrays of RUN_DIR's checkpoint: "step", "seconds" and the variables "v0000", ...

    Raises:
        L3ICError: a shard named by ckpt.npz is missing.
    """
    head = Path(run_dir) / CKPT_NAME
    with np.load(head) as f:
        arrays = {"step": f["step"], "seconds": f["seconds"]}
    for name in _shard_names(head):
        if not (Path(run_dir) / name).is_file():
            raise L3ICError(f"checkpoint shard {Path(run_dir) / name} is missing")
        with np.load(Path(run_dir) / name) as f:
            arrays.update({k: f[k] for k in f.files})
    return arrays


class Run:
    """A training run in a folder: its recipe, checkpoint and log.

    Args:
        out: the run folder.
        cfg: the recipe (the keys of ``RECIPE`` plus ``data``).
    """

    def __init__(self, out: Path, cfg: dict):
        self.out, self.cfg = out, cfg
        self.net = build_model(cfg)
        self.step, self.seconds = 0, 0.0

    # ----- checkpoint -------------------------------------------------------------------------

    def _variables(self) -> list:
        return [*self.net.variables, *self.net.optimizer.variables]

    def save(self) -> Path:
        """Writes the checkpoint: RUN_DIR/ckpt.npz (step, seconds, shard list) + its shards.

        Variables (float32 weights and optimizer variables, in order) go to shard files of at
        most SHARD_BYTES each, named by step, so each fits the 16 MiB a GPU machine returns per
        file. The shards are written first and ckpt.npz last (atomically), then the previous
        step's shards are removed, so an interruption never leaves a mixed checkpoint.
        """
        shards, current, size = [], {}, 0
        for i, v in enumerate(self._variables()):
            a = ops.convert_to_numpy(v)
            if current and size + a.nbytes > SHARD_BYTES:
                shards.append(current)
                current, size = {}, 0
            current[f"v{i:04d}"] = a
            size += a.nbytes
        shards.append(current)
        names = []
        for k, arrays in enumerate(shards):
            names.append(f"ckpt-{self.step:08d}-{k:02d}.npz")
            save_npz_atomic(self.out / names[-1], arrays)
        head = self.out / CKPT_NAME
        old = _shard_names(head) if head.is_file() else []
        save_npz_atomic(
            head,
            {"step": np.int64(self.step), "seconds": np.float64(self.seconds), "shards": names},
        )
        for name in set(old) - set(names):
            (self.out / name).unlink(missing_ok=True)
        return head

    def restore(self) -> None:
        """Loads the checkpoint into the model and optimizer; raises L3ICError on mismatch."""
        path = self.out / CKPT_NAME
        if not path.is_file():
            raise L3ICError(f"no checkpoint to resume from: {path} not found")
        arrays = read_checkpoint(self.out)
        variables = self._variables()
        if len(arrays) != len(variables) + 2:
            raise L3ICError(f"checkpoint {path} does not fit this recipe")
        for i, v in enumerate(variables):
            a = arrays[f"v{i:04d}"]
            if a.shape != tuple(v.shape):
                raise L3ICError(f"checkpoint {path} does not fit this recipe (at {v.path})")
            v.assign(a)
        self.step, self.seconds = int(arrays["step"]), float(arrays["seconds"])

    # ----- training ---------------------------------------------------------------------------

    def log_row(self, row: dict) -> None:
        """Appends one row to RUN_DIR/log.csv (writing the header first if the file is new)."""
        path = self.out / LOG_NAME
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})

    def train(
        self,
        sampler: train_data.PatchSampler,
        val_images: list[np.ndarray],
        prior_images: list[np.ndarray],
        val_every: int,
        ckpt_every: int,
        stop_at: int | None = None,
    ) -> None:
        """Trains up to ``stop_at`` (default: the recipe's steps), validating and checkpointing.

        Args:
            sampler: the batches, by step.
            val_images: (H, W, 3) uint8 validation images (real bpp, PSNR and SSIM).
            prior_images: training images whose latent histograms give the validation priors.
            val_every: validate every this many steps (and at the end).
            ckpt_every: write a checkpoint every this many steps (and at the end).
            stop_at: stop at this step (for tests of ``--resume``).

        Divergence guard: at a step that is validated, validation comes before the checkpoint;
        a validation PSNR ``DIVERGED_PSNR_DROP_DB`` below the run's best stops the run
        (L3ICError) without saving, and a checkpoint between validations is skipped when its
        interval's mean loss exceeds ``DIVERGED_LOSS_RATIO`` x the best interval's. So the
        checkpoint on disk always predates a divergence, and export or ``--init`` can use it.
        """
        last = self.cfg["steps"] if stop_at is None else min(stop_at, self.cfg["steps"])
        sums = np.zeros(3)
        count, t_mark, step_mark = 0, time.perf_counter(), self.step
        guard = _DivergenceGuard(saved_step=self.step if self.step else None)
        while self.step < last:
            t0 = time.perf_counter()
            logs = self.net.train_on_batch(sampler(self.step), return_dict=True)
            self.step += 1
            self.seconds += time.perf_counter() - t0
            values = [float(logs[k]) for k in ("loss", "mse", "bpp_est")]
            if not np.isfinite(values[0]):
                raise L3ICError(f"loss is {values[0]} at step {self.step}: lower --lr")
            sums += values
            count += 1
            guard.add_loss(values[0])
            if self.step % 50 == 0:
                print(
                    f"step {self.step}: loss {values[0]:.5f} mse {values[1]:.5f} "
                    f"bpp_est {values[2]:.4f}",
                    flush=True,
                )
            done = self.step == last
            validated = self.step % val_every == 0 or done
            if validated:  # before the checkpoint, so a diverged state is never saved
                rate = (self.step - step_mark) / (time.perf_counter() - t_mark)
                self._validate(sums / max(count, 1), rate, val_images, prior_images, done, guard)
                sums[:] = 0
                count, t_mark, step_mark = 0, time.perf_counter(), self.step
            if self.step % ckpt_every == 0 or done:
                keep = validated or guard.interval_ok()
                if keep:
                    self.save()
                else:
                    print(
                        f"step {self.step}: training loss far above its best, checkpoint not "
                        f"written (the one of step {guard.saved_step} is kept)",
                        flush=True,
                    )
                guard.end_interval(self.step, saved=keep)

    def _validate(self, means, rate, val_images, prior_images, done: bool, guard) -> None:
        """Logs the interval's means and the validation figures; steers lmbda toward the target.

        Raises:
            L3ICError: the validation PSNR fell ``DIVERGED_PSNR_DROP_DB`` below the run's best
                (the checkpoint on disk is from before; nothing is saved at this step).
        """
        loss, mse, bpp = means
        lmbda = float(ops.convert_to_numpy(self.net.rate_weight))
        row = {
            "step": self.step,
            "seconds": round(self.seconds, 1),
            "lr": f"{float(self.net.optimizer.learning_rate):.3g}",
            "loss": f"{loss:.6f}",
            "mse": f"{mse:.6f}",
            "bpp_est": f"{bpp:.4f}",
            "bits_per_value": f"{bpp * STRIDE**2 / self.cfg['channels']:.4f}",
            "lmbda": f"{lmbda:.4g}",
            "steps_per_s": f"{rate:.3f}",
        }
        val = None
        if val_images:
            val = validate(self.net, val_images, prior_images)
            row.update({f"val_{k}": f"{v:.4f}" for k, v in val.items()})
            target = self.cfg.get("target_bpp")
            if target and not done:
                self.net.rate_weight.assign(steer_lmbda(lmbda, val["bpp"], target))
        self.log_row(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if val is not None:
            guard.add_validation(val["psnr"], self.step)


class _DivergenceGuard:
    """What ``Run.train`` remembers to tell a diverging run: best validation PSNR, best mean
    training loss of a checkpoint interval, and the step of the last checkpoint written."""

    def __init__(self, saved_step: int | None = None):
        self.best_psnr, self.best_loss = -np.inf, np.inf
        self.saved_step = saved_step
        self._sum, self._count = 0.0, 0

    def add_validation(self, psnr: float, step: int) -> None:
        """Records a validation PSNR (dB) of ``step``.

        Raises:
            L3ICError: it is ``DIVERGED_PSNR_DROP_DB`` or more below the best so far.
        """
        if psnr < self.best_psnr - DIVERGED_PSNR_DROP_DB:
            kept = "no checkpoint was written"
            if self.saved_step is not None:
                kept = (
                    f"the checkpoint of step {self.saved_step} is kept: export it, or start "
                    "again from it with a lower --lr"
                )
            raise L3ICError(
                f"training diverged: validation PSNR {psnr:.2f} dB at step {step}, "
                f"best {self.best_psnr:.2f} dB; {kept}"
            )
        self.best_psnr = max(self.best_psnr, psnr)

    def add_loss(self, loss: float) -> None:
        self._sum += loss
        self._count += 1

    def interval_ok(self) -> bool:
        """Whether this interval's mean loss is under ``DIVERGED_LOSS_RATIO`` x the best one's."""
        return self._sum / max(self._count, 1) <= DIVERGED_LOSS_RATIO * self.best_loss

    def end_interval(self, step: int, saved: bool) -> None:
        if saved:
            self.best_loss = min(self.best_loss, self._sum / max(self._count, 1))
            self.saved_step = step
        self._sum, self._count = 0.0, 0


def new_recipe(
    *,
    channels: int,
    steps: int,
    batch: int,
    patch: int,
    lr: float,
    decay_start: float,
    lr_final: float,
    warmup: float = 0.0,
    lmbda: float | None,
    target_bpp: float | None,
    ssim_weight: float,
    backward: str,
    rate: str,
    mixed_precision: str,
    seed: int,
    flips: bool,
    init: Path | None,
    init_trunk: Path | None,
    data: Path | None,
) -> dict:
    """The ``config.json`` of a new run: the recipe (``RECIPE``), its data, lineage and hardware.

    ``lmbda`` None means ``default_lmbda(channels)``; ``mixed_precision`` is "auto" (on with a
    GPU), "on" or "off"; ``data`` None means ``train_data.default_data_dir()``. The other
    arguments are the options of ``l3ic train`` (docs/training.md).

    Raises:
        L3ICError: ``patch`` is not a multiple of ``STRIDE`` (8) of at least 16, ``steps``
            or ``batch`` is below 1, or ``warmup`` is outside [0, 1).
    """
    if patch % STRIDE or patch < 2 * STRIDE:
        raise L3ICError(f"--patch must be a multiple of {STRIDE} and >= 16, got {patch}")
    if steps < 1 or batch < 1:
        raise L3ICError("--steps and --batch must be positive")
    if not 0.0 <= warmup < 1.0:
        raise L3ICError(f"--warmup must be a fraction in [0, 1), got {warmup}")
    hardware, gpu = _hardware()
    return {
        "channels": channels,
        "steps": steps,
        "batch": batch,
        "patch": patch,
        "lr": lr,
        "decay_start": decay_start,
        "lr_final": lr_final,
        "warmup": warmup,
        "lmbda": lmbda if lmbda is not None else default_lmbda(channels),
        "target_bpp": target_bpp,
        "ssim_weight": ssim_weight,
        "backward": backward,
        "rate": rate,
        "mixed_precision": {"auto": gpu, "on": True, "off": False}[mixed_precision],
        "seed": seed,
        "flips": flips,
        "init": str(init) if init else None,
        "init_trunk": str(init_trunk) if init_trunk else None,
        "lineage": lineage(init or init_trunk),
        "data": str(Path(data or default_data_dir()).resolve()),
        "backend": keras.backend.backend(),
        "hardware": hardware,
        "gpu": gpu,
    }


def run_training(
    out: Path,
    cfg: dict | None,
    val_every: int,
    ckpt_every: int,
    stop_at: int | None = None,
) -> Run:
    """Runs a new training run (``cfg`` from ``new_recipe``) or resumes the one in ``out``.

    Args:
        out: the run folder RUN_DIR.
        cfg: the recipe of a new run; None resumes RUN_DIR from its config.json and checkpoint.
        val_every: validate every this many steps (and at the end).
        ckpt_every: write a checkpoint every this many steps (and at the end).
        stop_at: stop at this step (for tests of resuming).

    Returns:
        The run, at its last step.

    Raises:
        L3ICError: nothing to resume, a run already in ``out``, missing or unreadable data.
    """
    out = Path(out)
    config_path = out / CONFIG_NAME
    resume = cfg is None
    if resume:
        if not config_path.is_file():
            raise L3ICError(f"--resume: {config_path} not found")
        cfg = json.loads(config_path.read_text())
    elif (out / CKPT_NAME).exists():
        raise L3ICError(f"{out} already holds a run: use --resume or another --out")
    files = train_data.list_images(cfg["data"])
    train_files, val_files = train_data.split_files(files)
    cfg["training_data"] = train_data.data_identity(cfg["data"], train_files)
    cfg["validation_data"] = train_data.data_identity(cfg["data"], val_files)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        config_path.write_text(json.dumps(cfg, indent=2) + "\n")

    t0 = time.perf_counter()
    train_images = train_data.load_images(train_files, cfg["patch"])
    val_images = train_data.load_images(val_files)
    print(
        f"{len(train_images)} training / {len(val_images)} validation images loaded in "
        f"{time.perf_counter() - t0:.1f} s; {cfg['hardware']}, backend {keras.backend.backend()}",
        flush=True,
    )
    run = Run(out, cfg)
    if resume:
        run.restore()
        print(f"resumed at step {run.step}", flush=True)
    elif cfg["init"]:
        load_weights(run.net, cfg["init"])
    elif cfg.get("init_trunk"):
        skipped = load_matching(run.net, cfg["init_trunk"])
        print(f"trunk from {cfg['init_trunk']}; fresh: {', '.join(skipped)}", flush=True)
    sampler = train_data.PatchSampler(
        train_images, cfg["batch"], cfg["patch"], cfg["seed"], cfg["flips"]
    )
    # Validation priors come from a fixed sample of training images (spread over the set).
    prior_images = train_images[:: max(1, len(train_images) // 64)][:64]
    run.train(sampler, val_images, prior_images, val_every, ckpt_every, stop_at)
    return run


if __name__ == "__main__":  # python -m l3ic.train: the front end sits above this module
    from .cli_train import train_main

    sys.exit(train_main(sys.argv[1:]))
