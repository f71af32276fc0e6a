"""Training and export of l3ic models (``python -m l3ic.train``; see docs/training.md).

A run lives in one folder RUN_DIR:

- ``config.json``: the recipe (all arguments), the training data identity and the hardware;
- ``ckpt.npz`` + ``ckpt-STEP-K.npz``: the latest checkpoint (step, seconds, the list of shards;
  the shards hold the float32 model weights and optimizer variables, at most 12 MiB each),
  replaced atomically, so ``--resume`` continues exactly where it stopped;
- ``log.csv``: one row per validation.

Batches are a pure function of (seed, step) (``l3ic.train_data.PatchSampler``), so a resumed run
trains on the same patches as an uninterrupted one.
"""

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

from . import entropy, gpu_run, metrics, train_data
from .codec import Codec
from .errors import L3ICError
from .image import write_atomic
from .model import RATES, L3ICModel, default_lmbda
from .presets import (
    PRESETS,
    checkout_models,
    lineage,
    load_matching,
    load_weights,
    save_npz_atomic,
    save_weights,
)
from .quantizer import BACKWARDS, QMIN
from .train_data import DATA_ENV, default_data_dir

__all__ = [
    "build_parser",
    "main",
    "HoldCosine",
    "default_lmbda",
    "steer_lmbda",
    "Run",
    "learn_priors",
    "channel_order",
    "validate",
    "export_run",
    "ship",
    "read_checkpoint",
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
TERMS = (
    "Trained on photos of research benchmark sets (BSDS500, one ImageNet image per class, "
    "Sun-Hays 80, Urban100; sources in shared/data/README.md) whose sources state no licence: "
    "they are available for research use, and so are these weights. The l3ic code is MIT."
)
STEER_GAIN, STEER_CLAMP = 2.0, 2.0  # lmbda *= clip((bpp / target) ** GAIN, 1 / CLAMP, CLAMP)


def steer_lmbda(lmbda: float, bpp: float, target: float) -> float:
    """The rate weight after one steering step toward ``target`` bits per pixel.

    Rate falls slowly as lmbda grows (roughly as a low power of it), so the correction is the
    squared ratio of measured to target rate, clamped to a factor of 2 either way.
    """
    ratio = (bpp / target) ** STEER_GAIN
    return lmbda * min(max(ratio, 1.0 / STEER_CLAMP), STEER_CLAMP)


EXAMPLES = """
examples:
  # the 32c preset on the default data, 20000 steps, export to models/32c.npz + .json
  python -m l3ic.train --preset 32c --steps 20000 --out runs/32c --export 32c

  # continue an interrupted run exactly (weights, optimizer, step, data order)
  python -m l3ic.train --out runs/32c --resume

  # fine-tune shipped weights with a fresh optimizer at a lower rate weight
  python -m l3ic.train --preset 32c --init models/32c.npz --lmbda 3e-4 --lr 1e-4 --out runs/ft

  # hold the validation rate near 0.81 bpp: lmbda is steered after every validation
  python -m l3ic.train --preset 32c --init models/32c.npz --target-bpp 0.81 --out runs/32c-steer

  # export a finished (or partly trained) run later, then ship it if better on validation
  python -m l3ic.train export runs/32c --name 32c --models-dir runs/candidates
  python -m l3ic.train ship runs/candidates --name 32c

  # on a GPU machine (bf16 mixed precision is switched on automatically there)
  KERAS_BACKEND=jax python -m l3ic.train --preset 64c --steps 200000 --batch 50 --out runs/64c

  # all three presets in one timed GPU call (docs/training.md, "The GPU run")
  KERAS_BACKEND=jax python -m l3ic.train gpu-run --minutes 7 --data .data/train-gpu --out $OUT
"""


@keras.saving.register_keras_serializable(package="l3ic")
class HoldCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then a cosine decay to ``lr * final`` at ``total`` steps.

    Args:
        lr: the initial (and held) learning rate.
        total: the last step of the schedule.
        decay_start: fraction of ``total`` after which the cosine decay begins.
        final: the ratio of the last learning rate to ``lr``.
    """

    def __init__(self, lr: float, total: int, decay_start: float = 0.5, final: float = 0.1):
        self.lr, self.total, self.decay_start, self.final = lr, total, decay_start, final

    def __call__(self, step):
        start = float(int(self.decay_start * self.total))
        span = max(float(self.total) - start, 1.0)
        t = ops.clip((ops.cast(step, "float32") - start) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(np.pi * t))
        return self.lr * (self.final + (1.0 - self.final) * cosine)

    def get_config(self):
        return {
            "lr": self.lr,
            "total": self.total,
            "decay_start": self.decay_start,
            "final": self.final,
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
    schedule = HoldCosine(cfg["lr"], cfg["steps"], cfg["decay_start"], cfg["lr_final"])
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
        """
        last = self.cfg["steps"] if stop_at is None else min(stop_at, self.cfg["steps"])
        sums = np.zeros(3)
        count, t_mark, step_mark = 0, time.perf_counter(), self.step
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
            if self.step % 50 == 0:
                print(
                    f"step {self.step}: loss {values[0]:.5f} mse {values[1]:.5f} "
                    f"bpp_est {values[2]:.4f}",
                    flush=True,
                )
            done = self.step == last
            if self.step % ckpt_every == 0 or done:
                self.save()
            if self.step % val_every == 0 or done:
                rate = (self.step - step_mark) / (time.perf_counter() - t_mark)
                loss, mse, bpp = sums / max(count, 1)
                lmbda = float(ops.convert_to_numpy(self.net.rate_weight))
                row = {
                    "step": self.step,
                    "seconds": round(self.seconds, 1),
                    "lr": f"{float(self.net.optimizer.learning_rate):.3g}",
                    "loss": f"{loss:.6f}",
                    "mse": f"{mse:.6f}",
                    "bpp_est": f"{bpp:.4f}",
                    "bits_per_value": f"{bpp * 64 / self.cfg['channels']:.4f}",
                    "lmbda": f"{lmbda:.4g}",
                    "steps_per_s": f"{rate:.3f}",
                }
                if val_images:
                    val = validate(self.net, val_images, prior_images)
                    row.update({f"val_{k}": f"{v:.4f}" for k, v in val.items()})
                    target = self.cfg.get("target_bpp")
                    if target and not done:
                        self.net.rate_weight.assign(steer_lmbda(lmbda, val["bpp"], target))
                self.log_row(row)
                print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                sums[:] = 0
                count, t_mark, step_mark = 0, time.perf_counter(), self.step


# ----- validation and export ---------------------------------------------------------------


CHUNK = 64  # images per network call in validation and export


def _encode_all(codec: Codec, images: list[np.ndarray]) -> list[np.ndarray]:
    """int8 latents of uint8 images, ``CHUNK`` images per network call."""
    return [
        q
        for i in range(0, len(images), CHUNK)
        for q in codec.encode_latent_batch(images[i : i + CHUNK])
    ]


def _decode_all(codec: Codec, latents: list[np.ndarray], sizes: list) -> list[np.ndarray]:
    """uint8 images of int8 latents, ``CHUNK`` latents per network call."""
    return [
        y
        for i in range(0, len(latents), CHUNK)
        for y in codec.decode_latent_batch(latents[i : i + CHUNK], sizes[i : i + CHUNK])
    ]


def learn_priors(net: L3ICModel, images: list[np.ndarray]) -> np.ndarray:
    """Per-channel prior tables from the latents of ``images``.

    The histogram of codebook indices (q + 15) of each channel, plus 1 in every bin so that no
    symbol is impossible, quantised by ``entropy.quantize_counts``.

    Returns:
        (C, 32) int64 tables, each summing to 4096.
    """
    codec = Codec.from_model(net, "train", {})
    hist = np.ones((net.channels, entropy.ALPHABET), dtype=np.int64)
    for q in _encode_all(codec, images):
        idx = q.reshape(-1, net.channels).astype(np.int64) - QMIN
        for k in range(net.channels):
            hist[k] += np.bincount(idx[:, k], minlength=entropy.ALPHABET)
    return np.stack([entropy.quantize_counts(h) for h in hist])


def validate(
    net: L3ICModel,
    images: list[np.ndarray],
    prior_images: list[np.ndarray],
    priors: np.ndarray | None = None,
) -> dict:
    """Codes ``images`` for real and measures them.

    Args:
        net: the model.
        images: (H, W, 3) uint8 validation images.
        prior_images: images whose latents give the priors (when ``priors`` is None).
        priors: (C, 32) prior tables to use instead.

    Returns:
        Means over ``images`` of psnr, ssim (l3ic.metrics), bpp (bytes of the .l3ic file x 8 /
        pixels) and bpp_est (the model's differentiable estimate).
    """
    if priors is None:
        priors = learn_priors(net, prior_images)
    codec = Codec.from_model(net, "val", {"priors": priors.tolist()})
    latents = _encode_all(codec, images)
    decoded = _decode_all(codec, latents, [x.shape[:2] for x in images])
    rows = []
    for x, q, y in zip(images, latents, decoded, strict=True):
        pixels = x.shape[0] * x.shape[1]
        z = net.encoder(x[None].astype(np.float32) / 255.0, training=False)
        rows.append(
            (
                metrics.psnr(x, y),
                metrics.ssim(x, y),
                8.0 * len(codec.pack_latent(q, x.shape[:2])) / pixels,
                float(ops.convert_to_numpy(net.estimated_bpp(z))),
            )
        )
    return dict(
        zip(("psnr", "ssim", "bpp", "bpp_est"), np.mean(rows, axis=0).tolist(), strict=True)
    )


def channel_order(
    net: L3ICModel, images: list[np.ndarray], priors: np.ndarray
) -> tuple[list[int], list[float]]:
    """Ranks channels by the PSNR lost when each is set to its most likely value.

    Args:
        net: the model.
        images: (H, W, 3) uint8 validation images.
        priors: (C, 32) prior tables (their mode is the most likely value).

    Returns:
        (channel indices, biggest loss first; mean PSNR loss in dB of every channel, by index).
    """
    codec = Codec.from_model(net, "order", {"priors": priors.tolist()})
    latents = _encode_all(codec, images)
    sizes = [x.shape[:2] for x in images]

    def mean_psnr(qs: list[np.ndarray]) -> float:
        decoded = _decode_all(codec, qs, sizes)
        return float(np.mean([metrics.psnr(x, y) for x, y in zip(images, decoded, strict=True)]))

    base = mean_psnr(latents)
    losses = []
    for k in range(net.channels):
        flat = []
        for q in latents:
            q = q.copy()
            q[..., k] = int(np.argmax(priors[k])) + QMIN
            flat.append(q)
        losses.append(base - mean_psnr(flat))
    order = sorted(range(net.channels), key=lambda k: -losses[k])
    return order, losses


def _load_source(run_dir: Path, name: str, data: Path | None) -> tuple[dict, L3ICModel, int, float]:
    """(export config, float32 model, steps, training seconds) of a run or gpu-run folder."""
    if (run_dir / gpu_run.RUN_JSON).is_file():
        return gpu_run.load_for_export(run_dir, name, data or default_data_dir())
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise L3ICError(f"{run_dir} is not a training run: {config_path} not found")
    cfg = json.loads(config_path.read_text())
    run = Run(run_dir, {**cfg, "mixed_precision": False})
    run.restore()
    if data is not None:
        cfg["data"] = str(data)
    cfg["recipe"] = {k: cfg.get(k) for k in RECIPE}
    cfg["patches"] = run.step * cfg["batch"]
    if "lineage" not in cfg:  # runs begun before lineage was recorded at the start
        cfg["lineage"] = lineage(cfg.get("init"))
    return cfg, run.net, run.step, run.seconds


def export_run(
    run_dir: Path, name: str, out_dir: Path | None = None, data: Path | None = None
) -> Path:
    """Writes ``out_dir/NAME.npz`` (float16 weights) and ``NAME.json`` from a run.

    ``run_dir`` is a training run (its latest checkpoint) or the folder of ``l3ic train gpu-run``
    (its weights of preset ``name``). The sidecar holds the recipe, training data identity, steps,
    patches (this run's and in all, through the weights it started from), hardware and status,
    the per-channel priors (all training images), the channel order (validation images), the
    fingerprint, validation figures and the PSNR change caused by float16 storage.

    Returns:
        The path of the .npz file.
    """
    run_dir = Path(run_dir)
    cfg, net, steps, seconds = _load_source(run_dir, name, data)
    out_dir = Path(out_dir) if out_dir is not None else checkout_models()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = train_data.list_images(cfg["data"])
    train_files, val_files = train_data.split_files(files)
    t0 = time.perf_counter()
    priors = learn_priors(net, train_data.load_images(train_files))
    val_images = train_data.load_images(val_files)
    if not val_images:
        raise L3ICError("no validation images: the channel order cannot be measured")
    print(f"priors from {len(train_files)} images in {time.perf_counter() - t0:.0f} s", flush=True)
    val32 = validate(net, val_images, [], priors)
    order, losses = channel_order(net, val_images, priors)
    print(f"channel order in {time.perf_counter() - t0:.0f} s", flush=True)

    npz = out_dir / f"{name}.npz"
    fp = save_weights(net, npz)
    half = L3ICModel(cfg["channels"])
    half(np.zeros((1, 16, 16, 3), dtype=np.float32))
    load_weights(half, npz)
    val16 = validate(half, val_images, [], priors)
    sidecar = {
        "name": name,
        "channels": cfg["channels"],
        "status": "trained" if cfg["gpu"] else "cpu-short-schedule",
        "hardware": cfg["hardware"] + ("" if cfg["gpu"] else ", short schedule"),
        "recipe": cfg["recipe"],
        "lmbda_final": float(ops.convert_to_numpy(net.rate_weight)),
        "backend": cfg["backend"],
        "training_data": cfg["training_data"],
        "validation_data": {**cfg["validation_data"], "rule": "sha1(file name) % 20 == 0"},
        "terms": TERMS,
        "steps": steps,
        "patches": cfg["patches"],
        "patches_total": cfg["patches"] + ((cfg["lineage"] or {}).get("patches_total") or 0),
        "init": cfg["lineage"],
        "train_seconds": round(seconds),
        "fingerprint": fp.hex(),
        "validation": {k: round(v, 4) for k, v in val16.items()},
        "float16_psnr_delta_db": round(val16["psnr"] - val32["psnr"], 5),
        "channel_order": order,
        "channel_psnr_loss_db": [round(v, 4) for v in losses],
        "priors": priors.tolist(),
    }
    old = npz.with_suffix(".json")
    if old.is_file():  # keep evaluation figures of the same weights
        previous = json.loads(old.read_text())
        if previous.get("fingerprint") == sidecar["fingerprint"]:
            sidecar.update({k: v for k, v in previous.items() if k.startswith("kodak")})
    old.write_text(json.dumps(sidecar, indent=1) + "\n")
    print(
        f"wrote {npz} ({npz.stat().st_size / 2**20:.2f} MiB) and {old.name}: val PSNR "
        f"{val16['psnr']:.3f} dB, SSIM {val16['ssim']:.4f}, {val16['bpp']:.4f} bpp; "
        f"float16 changes PSNR by {val16['psnr'] - val32['psnr']:+.5f} dB",
        flush=True,
    )
    return npz


def _shipped_in(path: Path) -> tuple[str | None, str | None]:
    """(short hash, l3ic version) of the last git commit that changed ``path``.

    The version is read from ``src/l3ic/__init__.py`` (``l3ic/__init__.py`` before the ``src/``
    layout) at that commit; (None, None) outside a checkout.
    """

    def git(*args: str) -> str:
        try:
            result = subprocess.run(
                ["git", *args], cwd=path.parent, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h", "--", path.name) or None
    if commit is None:
        return None, None
    source = git("show", f"{commit}:src/l3ic/__init__.py") or git(
        "show", f"{commit}:l3ic/__init__.py"
    )
    match = re.search(r'^__version__ = "([^"]+)"', source, re.MULTILINE)
    return commit, match.group(1) if match else None


def ship(
    candidate_dir: Path, name: str, models: Path | None = None, data: Path | None = None
) -> bool:
    """Replaces the shipped preset ``name`` by an exported candidate only if it is better.

    Both are coded for real on the validation split (each with its own priors); the candidate is
    better when its mean SSIM is higher at an equal or lower mean bpp. Kodak is not looked at.
    The shipped sidecar of a replaced preset is kept in the new one under ``replaced``.

    Args:
        candidate_dir: a folder with ``NAME.npz`` and ``NAME.json`` from ``export``.
        name: the preset.
        models: the models folder (default: ``models/`` of the checkout this runs in).
        data: the training images (default: ``default_data_dir()``).

    Returns:
        Whether the candidate was shipped.
    """
    models = Path(models) if models is not None else checkout_models()
    _, val_files = train_data.split_files(train_data.list_images(data or default_data_dir()))
    val_images = train_data.load_images(val_files)
    if not val_images:
        raise L3ICError("no validation images to compare on")
    figures, sidecars, fingerprints = {}, {}, {}
    for label, folder in (("shipped", models), ("candidate", Path(candidate_dir))):
        npz = folder / f"{name}.npz"
        if not npz.is_file():
            if label == "candidate":
                raise L3ICError(f"no candidate {npz}")
            continue
        sidecars[label] = json.loads(npz.with_suffix(".json").read_text())
        keras.config.set_dtype_policy("float32")
        net = L3ICModel(sidecars[label].get("channels") or PRESETS[name])
        net(np.zeros((1, 16, 16, 3), dtype=np.float32))
        fingerprints[label] = load_weights(net, npz).hex()
        figures[label] = validate(net, val_images, [], np.array(sidecars[label]["priors"]))
        f = figures[label]
        print(
            f"{name} {label:9s}: val bpp {f['bpp']:.4f}, PSNR {f['psnr']:.3f} dB, "
            f"SSIM {f['ssim']:.4f} ({len(val_images)} images)",
            flush=True,
        )
    cand, old = figures["candidate"], figures.get("shipped")
    better = old is None or (cand["ssim"] > old["ssim"] and cand["bpp"] <= old["bpp"])
    if not better:
        print(f"{name}: not shipped (needs higher SSIM at equal or lower bpp)", flush=True)
        return False
    sidecar = {**sidecars["candidate"], "validation": {k: round(v, 4) for k, v in cand.items()}}
    if old is not None:
        prev = sidecars["shipped"]
        commit, version = _shipped_in(models / f"{name}.npz")
        sidecar["replaced"] = {
            "fingerprint": fingerprints["shipped"],
            "status": prev.get("status"),
            "validation_now": {k: round(v, 4) for k, v in old.items()},
            **{k: prev[k] for k in ("kodak", "kodak_crop512") if k in prev},
        }
        sidecar["earlier"] = [
            *prev.get("earlier", []),
            {
                "fingerprint": fingerprints["shipped"],
                "l3ic_version": version,
                "commit": commit,
                "status": prev.get("status"),
            },
        ]
    models.mkdir(parents=True, exist_ok=True)
    weights = (Path(candidate_dir) / f"{name}.npz").read_bytes()
    write_atomic(models / f"{name}.npz", weights, force=True)
    write_atomic(models / f"{name}.json", (json.dumps(sidecar, indent=1) + "\n").encode(), True)
    print(f"{name}: shipped to {models}", flush=True)
    return True


# ----- command line -------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks and shows the options' defaults (but not None/False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m l3ic.train`` (training; ``export`` has its own)."""
    p = argparse.ArgumentParser(
        prog="l3ic train",
        description="Train an l3ic model (Adam; constant lr, then cosine decay). Subcommands: "
        "`l3ic train export RUN_DIR --name NAME` writes models/NAME.npz + .json; "
        "`l3ic train ship DIR --name NAME` ships an export if better on the validation split; "
        "`l3ic train gpu-run --help` trains all presets in one GPU call.",
        epilog=EXAMPLES,
        formatter_class=_Formatter,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="32c", help="model size")
    p.add_argument("--channels", type=int, help="latent channels (overrides --preset)")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"folder of training images (default ${DATA_ENV} or ../shared/data/train-gpu)",
    )
    p.add_argument("--steps", type=int, default=20000, help="total optimizer steps")
    p.add_argument("--batch", type=int, default=16, help="patches per step")
    p.add_argument("--patch", type=int, default=128, help="patch side in pixels (multiple of 8)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate, held at first")
    p.add_argument(
        "--decay-start",
        type=float,
        default=0.5,
        help="fraction of --steps after which the lr decays (cosine)",
    )
    p.add_argument("--lr-final", type=float, default=0.1, help="final lr as a fraction of --lr")
    p.add_argument(
        "--lmbda", type=float, help="rate weight on bpp (default 2.03e-4 * 64 / channels)"
    )
    p.add_argument(
        "--target-bpp",
        type=float,
        help="steer lmbda after each validation so the real validation bpp nears this",
    )
    p.add_argument(
        "--ssim-weight",
        type=float,
        default=0.0,
        help="distortion = MSE + W * (1 - SSIM) (7x7 uniform window, as the targets' metric)",
    )
    p.add_argument("--backward", choices=BACKWARDS, default="ste", help="quantiser gradient")
    p.add_argument("--rate", choices=sorted(RATES), default="channel", help="rate estimate")
    p.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        default="auto",
        help="bf16 compute (auto: on with a GPU, off on CPU)",
    )
    p.add_argument("--no-flips", action="store_true", help="no random h/v flips")
    p.add_argument("--val-every", type=int, default=500, help="validate every N steps")
    p.add_argument("--ckpt-every", type=int, default=250, help="checkpoint every N steps")
    p.add_argument("--out", type=Path, required=True, help="run folder RUN_DIR")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--init", type=Path, help="start from these .npz weights (fresh optimizer)")
    p.add_argument(
        "--init-trunk",
        type=Path,
        help="start from the layers of these .npz weights that fit (another preset's trunk)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights and data order")
    p.add_argument("--export", metavar="NAME", help="at the end, export to models/NAME.npz")
    p.add_argument("--stop-at", type=int, help=argparse.SUPPRESS)
    return p


def build_export_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m l3ic.train export``."""
    p = argparse.ArgumentParser(
        prog="l3ic train export",
        description="Write models/NAME.npz (float16) and models/NAME.json from a run's checkpoint.",
    )
    p.add_argument("run_dir", type=Path, help="the run folder (--out of the training)")
    p.add_argument("--name", required=True, help="model name, e.g. 32c")
    p.add_argument("--models-dir", type=Path, help="where to write (default: ./models)")
    p.add_argument(
        "--data", type=Path, help="the training images here, if not where the run found them"
    )
    return p


def build_ship_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m l3ic.train ship``."""
    p = argparse.ArgumentParser(
        prog="l3ic train ship",
        description="Replace a shipped preset by an exported candidate if it is better on the "
        "validation split (higher SSIM at equal or lower bpp, real files).",
    )
    p.add_argument("candidate_dir", type=Path, help="folder with NAME.npz + NAME.json (export)")
    p.add_argument("--name", required=True, help="preset, e.g. 32c")
    p.add_argument("--models-dir", type=Path, help="the shipped models (default: ./models)")
    p.add_argument("--data", type=Path, help="training images (default: ../shared/data/train-gpu)")
    return p


def _recipe(args: argparse.Namespace) -> dict:
    channels = args.channels or PRESETS[args.preset]
    if args.patch % 8 or args.patch < 16:
        raise L3ICError(f"--patch must be a multiple of 8 and >= 16, got {args.patch}")
    if args.steps < 1 or args.batch < 1:
        raise L3ICError("--steps and --batch must be positive")
    hardware, gpu = _hardware()
    mp = {"auto": gpu, "on": True, "off": False}[args.mixed_precision]
    return {
        "channels": channels,
        "steps": args.steps,
        "batch": args.batch,
        "patch": args.patch,
        "lr": args.lr,
        "decay_start": args.decay_start,
        "lr_final": args.lr_final,
        "lmbda": args.lmbda if args.lmbda is not None else default_lmbda(channels),
        "target_bpp": args.target_bpp,
        "ssim_weight": args.ssim_weight,
        "backward": args.backward,
        "rate": args.rate,
        "mixed_precision": mp,
        "seed": args.seed,
        "flips": not args.no_flips,
        "init": str(args.init) if args.init else None,
        "init_trunk": str(args.init_trunk) if args.init_trunk else None,
        "lineage": lineage(args.init or args.init_trunk),
        "data": str((args.data or default_data_dir()).resolve()),
        "backend": keras.backend.backend(),
        "hardware": hardware,
        "gpu": gpu,
    }


def train_main(args: argparse.Namespace) -> int:
    """Runs (or resumes) a training run; returns the exit status."""
    out: Path = args.out
    config_path = out / CONFIG_NAME
    if args.resume:
        if not config_path.is_file():
            raise L3ICError(f"--resume: {config_path} not found")
        cfg = json.loads(config_path.read_text())
    else:
        if (out / CKPT_NAME).exists():
            raise L3ICError(f"{out} already holds a run: use --resume or another --out")
        cfg = _recipe(args)
    files = train_data.list_images(cfg["data"])
    train_files, val_files = train_data.split_files(files)
    cfg["training_data"] = train_data.data_identity(cfg["data"], train_files)
    cfg["validation_data"] = train_data.data_identity(cfg["data"], val_files)
    out.mkdir(parents=True, exist_ok=True)
    if not args.resume:
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
    if args.resume:
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
    run.train(sampler, val_images, prior_images, args.val_every, args.ckpt_every, args.stop_at)
    if args.export and run.step == cfg["steps"]:
        export_run(out, args.export)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m l3ic.train`` and ``l3ic train``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["gpu-run"]:
            return gpu_run.main(argv[1:])
        if argv[:1] == ["ship"]:
            args = build_ship_parser().parse_args(argv[1:])
            ship(args.candidate_dir, args.name, args.models_dir, args.data)
            return 0
        if argv[:1] == ["export"]:
            args = build_export_parser().parse_args(argv[1:])
            export_run(args.run_dir, args.name, args.models_dir, args.data)
            return 0
        return train_main(build_parser().parse_args(argv))
    except L3ICError as e:
        print(f"l3ic train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
