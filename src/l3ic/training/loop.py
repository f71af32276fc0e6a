"""The training loop of one preset: the model of a recipe, checkpoints, validation, the log.

``python -m l3ic.training`` (``l3ic train``; front end in ``cli``, docs/training.md).
The recipe is ``recipe.Recipe``; the schedule, rate steering, divergence rule and log
are those of ``rules``, which the GPU run (``gpu_run``) follows too. A run lives
in one folder RUN_DIR:

- ``config.json``: the recipe, the training data identity and the hardware (and whether bf16
  was chosen, and why);
- ``ckpt.npz`` + ``ckpt-STEP-K.npz``: the latest checkpoint (step, seconds, the steering's
  calibration, the list of shards; the shards hold the float32 model weights and optimizer
  variables, at most 12 MiB each), replaced atomically, so ``--resume`` continues exactly where
  it stopped;
- ``log.csv``: one row per validation.

Batches are a pure function of (seed, step) (``data.PatchSampler``), so a resumed run
trains on the same patches as an uninterrupted one. Validation codes images for real
(``entropy_model.validate``); turning a run into a shipped preset is ``export``.
"""

import contextlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
from keras import ops

from ..atomic_files import write_json_atomic, write_npz_atomic
from ..codebook import STRIDE
from ..errors import L3ICError
from ..model import L3ICModel, load_model
from ..presets import lineage
from .data import (
    PatchSampler,
    data_identity,
    default_data_dir,
    list_images,
    load_images,
    split_files,
)
from .entropy_model import validate
from .recipe import Recipe, choose_mixed_precision, machine
from .rules import (
    EST_PER_REAL,
    DivergenceGuard,
    HoldCosine,
    RateSteering,
    RunLog,
    step_scale,
)

__all__ = [
    "build_model",
    "averaged_weights",
    "read_checkpoint",
    "Run",
    "new_config",
    "run_training",
    "CKPT_NAME",
    "CONFIG_NAME",
    "LOG_NAME",
    "LOG_FIELDS",
]

CKPT_NAME, CONFIG_NAME, LOG_NAME = "ckpt.npz", "config.json", "log.csv"
SHARD_BYTES = 12 << 20  # checkpoint shards stay under the 16 MiB a GPU machine returns per file
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
    "val_ms_ssim",
    "val_bpp",
    "val_bpp_est",
    "steps_per_s",
)


def build_model(recipe: Recipe, weights=None, schedule: bool = True) -> L3ICModel:
    """The model of ``recipe`` with its Adam optimizer built, ready to train.

    Args:
        recipe: the recipe (``lmbda`` filled in: ``Recipe.resolved``).
        weights: starting weights (a ``.npz`` path or arrays); None: ``recipe.init``, else the
            trunk of ``recipe.init_trunk``, else fresh weights from ``recipe.seed``.
        schedule: the learning rate follows ``HoldCosine`` over ``recipe.steps``; False: a plain
            ``learning_rate`` variable that the loop sets (the GPU run's time-based schedule).

    Under ``recipe.mixed_precision`` the model computes in bf16 (``mixed_bfloat16``) except the
    latent, the quantiser, the rate estimate and the loss, which stay float32.
    """
    keras.utils.set_random_seed(recipe.seed)
    keras.config.set_dtype_policy("mixed_bfloat16" if recipe.mixed_precision else "float32")
    net = load_model(
        recipe.num_channels,
        weights if weights is not None else recipe.init,
        trunk=recipe.init_trunk if weights is None else None,
        lmbda=recipe.lmbda,
        patch=recipe.patch,
        backward=recipe.backward,
        rate=recipe.rate,
        ssim_weight=recipe.ssim_weight,
        ssim_kind=recipe.ssim_kind,
        seed=recipe.seed,
        told_scale=recipe.told_scale,
    )
    lr = recipe.lr
    if schedule:
        lr = HoldCosine(recipe.lr, recipe.steps, recipe.decay_start, recipe.lr_final, recipe.warmup)
    optimizer = keras.optimizers.Adam(
        lr, global_clipnorm=recipe.clipnorm, use_ema=recipe.ema > 0, ema_momentum=recipe.ema
    )
    net.compile(optimizer=optimizer)
    net.optimizer.build(net.trainable_variables)
    return net


@contextlib.contextmanager
def averaged_weights(net: L3ICModel):
    """Within the block, ``net``'s trainable weights are their moving average (``Recipe.ema``;
    unchanged without one); the latest weights come back after it."""
    if not net.optimizer.use_ema:
        yield net
        return
    latest = [ops.convert_to_numpy(v) for v in net.trainable_variables]
    net.optimizer.finalize_variable_values(net.trainable_variables)
    try:
        yield net
    finally:
        for v, a in zip(net.trainable_variables, latest, strict=True):
            v.assign(a)


def _shard_names(head: Path) -> list[str]:
    with np.load(head) as f:
        return [str(n) for n in f["shards"]]


def read_checkpoint(run_dir: Path) -> dict[str, np.ndarray]:
    """All arrays of RUN_DIR's checkpoint: "step", "seconds", "est_per_real" (runs begun
    before 2026-12-06 lack it) and the variables "v0000", ...

    Raises:
        L3ICError: a shard named by ckpt.npz is missing.
    """
    head = Path(run_dir) / CKPT_NAME
    with np.load(head) as f:
        arrays = {k: f[k] for k in ("step", "seconds", "est_per_real") if k in f.files}
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
        cfg: its ``config.json`` (the recipe's fields, ``data`` and the machine).
        fresh: build the model with fresh weights, not the recipe's ``init`` (the weights come
            from the checkpoint next: resume and export).
    """

    def __init__(self, out: Path, cfg: dict, fresh: bool = False):
        self.out, self.cfg = Path(out), cfg
        self.recipe = Recipe.from_dict(cfg).resolved()
        build = replace(self.recipe, init=None, init_trunk=None) if fresh else self.recipe
        self.net = build_model(build)
        self.step, self.seconds = 0, 0.0
        self.steering = None
        if self.recipe.target_bpp:
            self.steering = RateSteering(
                self.recipe.target_bpp,
                self.recipe.lmbda,
                self.recipe.steer_gain,
                EST_PER_REAL.get(self.recipe.num_channels, 1.0),
            )
        self.log = RunLog(self.out / LOG_NAME, LOG_FIELDS)

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
            write_npz_atomic(self.out / names[-1], arrays)
        head = self.out / CKPT_NAME
        old = _shard_names(head) if head.is_file() else []
        calibration = self.steering.est_per_real if self.steering else 1.0
        write_npz_atomic(
            head,
            {
                "step": np.int64(self.step),
                "seconds": np.float64(self.seconds),
                "est_per_real": np.float64(calibration),
                "shards": names,
            },
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
        scalars = {k: arrays.pop(k) for k in ("step", "seconds", "est_per_real") if k in arrays}
        variables = self._variables()
        if len(arrays) != len(variables):
            raise L3ICError(f"checkpoint {path} does not fit this recipe")
        for i, v in enumerate(variables):
            a = arrays[f"v{i:04d}"]
            if a.shape != tuple(v.shape):
                raise L3ICError(f"checkpoint {path} does not fit this recipe (at {v.path})")
            v.assign(a)
        self.step, self.seconds = int(scalars["step"]), float(scalars["seconds"])
        if self.steering is not None and "est_per_real" in scalars:
            self.steering.est_per_real = float(scalars["est_per_real"])

    # ----- training ---------------------------------------------------------------------------

    def train(
        self,
        sampler: PatchSampler,
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

        With a target rate, the rate weight is steered after every step
        (``rules.RateSteering``). Divergence (``rules.DivergenceGuard``): at a step
        that is validated, validation comes before the checkpoint, and a validation PSNR far
        below the run's best stops the run (L3ICError) without saving; at each checkpoint step
        the interval's mean loss is judged: "unsaved" skips the checkpoint, "diverged" stops
        the run. So the checkpoint on disk always predates a divergence.
        """
        last = self.recipe.steps if stop_at is None else min(stop_at, self.recipe.steps)
        sums = np.zeros(3)
        count, t_mark, step_mark = 0, time.perf_counter(), self.step
        guard = DivergenceGuard(saved_step=self.step if self.step else None)
        while self.step < last:
            t0 = time.perf_counter()
            if self.recipe.scale_range != 1.0:
                scale = step_scale(self.recipe.seed, self.step, self.recipe.scale_range)
                self.net.train_scale.assign(scale)
            logs = self.net.train_on_batch(sampler(self.step), return_dict=True)
            values = [float(logs[k]) for k in ("loss", "mse", "bpp_est")]
            if self.steering is not None:
                self.net.rate_weight.assign(self.steering.step(self.net.rate_weight, values[2]))
            self.step += 1
            self.seconds += time.perf_counter() - t0
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
            if self.step % val_every == 0 or done:  # before the checkpoint
                rate = (self.step - step_mark) / (time.perf_counter() - t_mark)
                self._validate(sums / max(count, 1), rate, val_images, prior_images, guard)
                sums[:] = 0
                count, t_mark, step_mark = 0, time.perf_counter(), self.step
            if self.step % ckpt_every == 0 or done:
                verdict = guard.end_interval(self.step)
                if verdict == "diverged":
                    raise guard.diverged(f"mean loss {guard.last_loss:.4g} up to step {self.step}")
                if verdict == "ok":
                    self.save()
                else:
                    print(
                        f"step {self.step}: training loss far above its best, checkpoint not "
                        f"written (the one of step {guard.saved_step} is kept)",
                        flush=True,
                    )

    def _validate(self, means, rate, val_images, prior_images, guard) -> None:
        """Logs the interval's means and the validation figures; recalibrates the steering.

        Raises:
            L3ICError: the validation PSNR fell far below the run's best (the checkpoint on
                disk is from before; nothing is saved at this step).
        """
        loss, mse, bpp = means
        row = {
            "step": self.step,
            "seconds": round(self.seconds, 1),
            "lr": f"{float(self.net.optimizer.learning_rate):.3g}",
            "loss": f"{loss:.6f}",
            "mse": f"{mse:.6f}",
            "bpp_est": f"{bpp:.4f}",
            "bits_per_value": f"{bpp * STRIDE**2 / self.recipe.num_channels:.4f}",
            "lmbda": f"{float(ops.convert_to_numpy(self.net.rate_weight)):.4g}",
            "steps_per_s": f"{rate:.3f}",
        }
        val = None
        if val_images:
            with averaged_weights(self.net):
                val = validate(self.net, val_images, prior_images)
            row.update({f"val_{k}": f"{v:.4f}" for k, v in val.items()})
            if self.steering is not None:
                self.steering.calibrate(bpp, val["bpp"])
        self.log.write(row)
        if val is not None:
            guard.add_validation(val["psnr"], self.step)


def new_config(recipe: Recipe, mixed_precision: str = "auto", data: Path | None = None) -> dict:
    """The ``config.json`` of a new run: the recipe, its data, lineage and hardware.

    Args:
        recipe: the recipe (its ``mixed_precision`` is replaced by the decision).
        mixed_precision: "auto", "on" or "off" (``recipe.choose_mixed_precision``).
        data: the training images; None means ``data.default_data_dir()``.
    """
    where = machine()
    bf16, why = choose_mixed_precision(mixed_precision, where["gpu"])
    recipe = replace(recipe, mixed_precision=bf16).resolved()
    return {
        **recipe.to_dict(),
        "mixed_precision_choice": why,
        "lineage": lineage(recipe.init or recipe.init_trunk),
        "data": str(Path(data or default_data_dir()).resolve()),
        "backend": keras.backend.backend(),
        **where,
    }


def run_training(
    out: Path,
    cfg: dict | None,
    val_every: int,
    ckpt_every: int,
    stop_at: int | None = None,
) -> Run:
    """Runs a new training run (``cfg`` from ``new_config``) or resumes the one in ``out``.

    Args:
        out: the run folder RUN_DIR.
        cfg: the config of a new run; None resumes RUN_DIR from its config.json and checkpoint.
        val_every: validate every this many steps (and at the end); a resumed run keeps its
            own (``config.json``).
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
        # The validations recalibrate the rate steering: a resumed run validates where it did.
        val_every = cfg.get("val_every", val_every)
    elif (out / CKPT_NAME).exists():
        raise L3ICError(f"{out} already holds a run: use --resume or another --out")
    else:
        cfg["val_every"] = val_every
    files = list_images(cfg["data"])
    train_files, val_files = split_files(files)
    cfg["training_data"] = data_identity(cfg["data"], train_files)
    cfg["validation_data"] = data_identity(cfg["data"], val_files)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json_atomic(config_path, cfg, indent=2)

    t0 = time.perf_counter()
    train_images = load_images(train_files, cfg["patch"])
    val_images = load_images(val_files)
    print(
        f"{len(train_images)} training / {len(val_images)} validation images loaded in "
        f"{time.perf_counter() - t0:.1f} s; {cfg['hardware']}, backend {keras.backend.backend()}, "
        f"bf16 {cfg.get('mixed_precision_choice', cfg['mixed_precision'])}",
        flush=True,
    )
    run = Run(out, cfg, fresh=resume)
    if resume:
        run.restore()
        print(f"resumed at step {run.step}", flush=True)
    elif run.net.fresh:
        print(f"trunk from {cfg['init_trunk']}; fresh: {', '.join(run.net.fresh)}", flush=True)
    sampler = PatchSampler(train_images, cfg["batch"], cfg["patch"], cfg["seed"], cfg["flips"])
    # Validation priors come from a fixed sample of training images (spread over the set).
    prior_images = train_images[:: max(1, len(train_images) // 64)][:64]
    run.train(sampler, val_images, prior_images, val_every, ckpt_every, stop_at)
    return run


if __name__ == "__main__":  # python -m l3ic.training.loop: the front end sits above this module
    from .cli import train_main

    sys.exit(train_main(sys.argv[1:]))
