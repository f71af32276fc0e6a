"""One-shot training of every preset on one GPU within a wall-clock budget (``l3ic train gpu-run``).

A GPU is lent to this project rarely and briefly (one H100 or H200, 15 minutes of device time,
at most 10 minutes per command), so one call must turn it into trained presets with no
preparation on the machine. The call, in order:

1. loads the training split of ``--data`` once and puts it on the GPU as one
   (N, H, W, 3) uint8 array (245 MB for ``train-gpu``);
2. builds the three presets in one process from one ``Recipe`` each (``loop.build_model``:
   bf16 compute, the latent, rate and loss in float32), each from the shipped weights
   (``--init shipped``) or from scratch, compiles one training step per preset and runs a few
   steps of each: any failure ends the call at once with exit status 1;
3. measures patches/s of the whole step (crop and flip on the GPU + model step), of the model
   step alone (a fixed batch) and of the sampler alone;
4. trains the presets interleaved (one step of each in turn, dispatched asynchronously, so the GPU
   queue never runs dry) until the training budget is spent; the learning rate is the recipe's
   ``HoldCosine`` at the elapsed fraction of that budget, each preset's rate weight is steered
   every step toward its target (``RateSteering``, inside the jitted step), and each log
   interval is judged by the ``DivergenceGuard`` (a diverged preset is rolled back to its last
   good state and its learning rate halved): the rules of ``rules``, as in
   ``l3ic train``;
5. every ``--save-every`` seconds and at the end writes each preset's last good float32 weights
   to ``OUT/NAME.npz`` and the figures to ``OUT/gpu-run.json`` (atomically), and appends the log
   rows to ``OUT/log.csv``; so a call cut short still returns weights.

The decoder's speed on the GPU is a benchmark, ``python -m bench.gpu_decode``, which the device
command runs after this one. ``--minutes`` is the training budget; the call also ends by
``--deadline-minutes`` counted from ``--started-at`` (the shell's start time, so wheel
installation counts). ``--dry-run`` does all of it on a CPU in about a minute, with tiny patches
and images (CI runs it). docs/training.md gives the device call word for word.

The JAX backend is required: the step is a ``jax.jit`` of Keras' stateless API
(``stateless_call``, ``stateless_apply``), and the sampler is written in ``jax.numpy``.
"""

import json
import math
import os
import platform
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from ..atomic_files import write_json_atomic, write_npz_atomic
from ..errors import L3ICError
from ..model import L3ICModel, default_lmbda, load_model
from ..presets import (
    PRESETS,
    TARGET_BPP,
    lineage,
    load_sidecar,
    model_arrays,
    weights_path,
)
from .data import data_identity, list_images, load_images, split_files
from .loop import build_model
from .recipe import GPU_RUN_OPTIONS, Recipe, num_channels_in
from .rules import (
    EST_PER_REAL,
    DivergenceGuard,
    HoldCosine,
    RateSteering,
    RunLog,
    step_scale,
)

__all__ = [
    "GpuRun",
    "PresetRun",
    "load_for_export",
    "time_calls",
    "RUN_JSON",
    "LOG_NAME",
    "SCHEDULE_STEPS",
]

RUN_JSON, LOG_NAME = "gpu-run.json", "log.csv"
LOG_FIELDS = (
    "preset",
    "step",
    "seconds",
    "lr",
    "loss",
    "mse",
    "bpp_est",
    "lmbda",
    "patches_per_s",
)
# The schedule's length in its own steps: the learning rate at the elapsed fraction f of the
# budget is HoldCosine(...)(f * SCHEDULE_STEPS), i.e. ``HoldCosine.at(f)``.
SCHEDULE_STEPS = 10_000
RESERVE_S = 30.0  # kept after training for the last save


def _stack_images(images: list[np.ndarray], patch: int) -> np.ndarray:
    """(N, H, W, 3) uint8 of images centre-cropped to the smallest height and width among them."""
    h = min(x.shape[0] for x in images)
    w = min(x.shape[1] for x in images)
    if min(h, w) < patch:
        raise L3ICError(f"the smallest training image is {w}x{h}, below the {patch} px patch")
    out = np.empty((len(images), h, w, 3), dtype=np.uint8)
    for k, x in enumerate(images):
        top, left = (x.shape[0] - h) // 2, (x.shape[1] - w) // 2
        out[k] = x[top : top + h, left : left + w]
    return out


def _make_sampler(batch: int, patch: int, flips: bool):
    """A jitted ``sample(images, key) -> (batch, patch, patch, 3) float32 in [0, 1]``.

    Each patch comes from a uniformly drawn image at a uniform position, flipped horizontally and
    vertically with probability 0.5 each; all on the device that holds ``images``.
    """
    import jax
    import jax.numpy as jnp

    def sample(images, key):
        n, h, w, _ = images.shape
        k_img, k_top, k_left, k_flip = jax.random.split(key, 4)
        idx = jax.random.randint(k_img, (batch,), 0, n)
        top = jax.random.randint(k_top, (batch,), 0, h - patch + 1)
        left = jax.random.randint(k_left, (batch,), 0, w - patch + 1)

        def crop(i, t, s):
            return jax.lax.dynamic_slice(images, (i, t, s, 0), (1, patch, patch, 3))[0]

        x = jax.vmap(crop)(idx, top, left)
        if flips:
            flip = jax.random.bernoulli(k_flip, 0.5, (batch, 2))[:, :, None, None, None]
            x = jnp.where(flip[:, 0], x[:, :, ::-1], x)
            x = jnp.where(flip[:, 1], x[:, ::-1], x)
        return x.astype(jnp.float32) / 255.0

    return jax.jit(sample)


class PresetRun:
    """One preset's model, optimizer and device state, with its jitted training step.

    Args:
        preset: ``16c``, ``32c`` or ``64c``.
        recipe: its recipe (``lmbda`` and ``target_bpp`` set; ``mixed_precision`` True).
        weights: the starting weights (a ``.npz``), or None for fresh ones.

    The state is ``(trainable, non_trainable, optimizer, sums)``, lists of device arrays plus a
    (4,) float32 array of running sums of loss, MSE, estimated bpp and steps since the last log.
    """

    def __init__(self, preset: str, recipe: Recipe, weights: Path | None):
        import jax
        import jax.numpy as jnp

        self.preset, self.num_channels, self.recipe = preset, recipe.num_channels, recipe
        self.net = build_model(recipe, weights, schedule=False)
        self.opt = self.net.optimizer
        self.steering = RateSteering(
            recipe.target_bpp, recipe.lmbda, recipe.steer_gain, EST_PER_REAL[recipe.num_channels]
        )
        self.guard = DivergenceGuard()
        self.rw = next(
            i for i, v in enumerate(self.net.non_trainable_variables) if v is self.net.rate_weight
        )
        self.ts = next(
            i for i, v in enumerate(self.net.non_trainable_variables) if v is self.net.train_scale
        )
        self.lr_i = next(i for i, v in enumerate(self.opt.variables) if v.name == "learning_rate")
        self.params = int(sum(np.prod(v.shape) for v in self.net.trainable_variables))
        # Copies: the step donates its state's buffers, the Keras variables keep their own.
        self.state = (
            [jnp.copy(v.value) for v in self.net.trainable_variables],
            [jnp.copy(v.value) for v in self.net.non_trainable_variables],
            [jnp.copy(v.value) for v in self.opt.variables],
            jnp.zeros(4, jnp.float32),
        )
        self.step = 0
        self.lr_scale, self.rollbacks = 1.0, 0
        self.scales = [math.inf, 0.0]  # the least and greatest quantisation scale drawn
        # A state is good once the interval trained from it was judged "ok": ``pending`` is the
        # state at the last judgement, waiting for the next one.
        self.good = self.pending = self._copies(self.state[:3])
        self._jit = jax.jit(self._step, donate_argnums=(0,))
        self._run = self._jit

    def lower(self, x):
        """Traces the step for batches like x; the result's ``.compile()`` may run in a thread."""
        return self._jit.lower(self.state, x, np.float32(0.0), np.float32(1.0))

    def use(self, compiled) -> None:
        """Runs the steps with this compiled step (of ``lower``) from now on."""
        self._run = compiled

    def _step(self, state, x, lr, scale):
        """One step on x (B, P, P, 3) float32 in [0, 1] at learning rate lr and quantisation
        scale ``scale`` (float32 scalars): (state, loss)."""
        import jax
        import jax.numpy as jnp

        tv, ntv, ov, sums = state
        ntv = list(ntv)
        ntv[self.ts] = jnp.asarray(scale, ntv[self.ts].dtype)

        def loss_fn(tv):
            out, new_ntv = self.net.stateless_call(tv, ntv, x, training=True)
            distortion, mse = self.net.distortion(x, out["y"])
            bpp = self.net.estimated_bpp(out["z"])
            return distortion + ntv[self.rw] * bpp, (mse, bpp, new_ntv)

        (loss, (mse, bpp, ntv)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv)
        ov = list(ov)
        ov[self.lr_i] = jnp.asarray(lr, ov[self.lr_i].dtype)
        tv, ov = self.opt.stateless_apply(ov, grads, tv)
        ntv = list(ntv)
        ntv[self.rw] = self.steering.step(ntv[self.rw], bpp, self.steering.target_est)
        sums = sums + jnp.stack([loss, mse, bpp, jnp.ones((), jnp.float32)])
        return (tv, ntv, ov, sums), loss

    def __call__(self, x, lr: float):
        """Dispatches one step (asynchronously) at ``lr`` x this preset's learning-rate factor
        (halved at each rollback), quantising at the step's scale (``step_scale`` of the
        recipe's seed, the step and ``scale_range``, as ``l3ic train`` draws it).

        Returns the step's loss as a device scalar.
        """
        scale = step_scale(self.recipe.seed, self.step, self.recipe.scale_range)
        self.scales = [min(self.scales[0], scale), max(self.scales[1], scale)]
        self.state, loss = self._run(
            self.state, x, np.float32(lr * self.lr_scale), np.float32(scale)
        )
        self.step += 1
        return loss

    def take_sums(self) -> tuple[float, float, float, int, float]:
        """(mean loss, mean MSE, mean estimated bpp, steps, current lmbda) since the last call."""
        import jax.numpy as jnp

        tv, ntv, ov, sums = self.state
        s = np.asarray(sums)
        self.state = (tv, ntv, ov, jnp.zeros(4, jnp.float32))
        n = max(int(s[3]), 1)
        return s[0] / n, s[1] / n, s[2] / n, int(s[3]), self.lmbda()

    @staticmethod
    def _copies(parts) -> tuple:
        """Device copies of lists of arrays (the step donates the buffers it is given)."""
        import jax.numpy as jnp

        return tuple([jnp.copy(a) for a in part] for part in parts)

    def judge(self, mean_loss: float, steps: int) -> str:
        """Judges an interval (``DivergenceGuard``); returns "" or a note for the log.

        The losses of an interval are those of the states it trained through, so "ok" makes the
        state it started from (kept at the last judgement) the last good one; "unsaved" does
        not; "diverged" restores the last good state (weights, optimizer, rate weight) and
        halves this preset's learning rate from then on.
        """
        import jax.numpy as jnp

        self.guard.add_loss(mean_loss * steps, steps)
        verdict = self.guard.end_interval(self.step)
        if verdict != "diverged":
            if verdict == "ok":
                self.good = self.pending
            self.pending = self._copies(self.state[:3])
            return "" if verdict == "ok" else "loss above its best: last good state kept"
        self.pending = self.good
        tv, ntv, ov = (list(part) for part in self._copies(self.good))
        self.state = (tv, ntv, ov, jnp.zeros(4, jnp.float32))
        self.lr_scale /= 2
        self.rollbacks += 1
        return f"diverged (loss {mean_loss:.4g}): rolled back, lr x {self.lr_scale:g}"

    def lmbda(self) -> float:
        """The current (steered) rate weight."""
        return float(np.asarray(self.state[1][self.rw]))

    def arrays(self) -> dict[str, np.ndarray]:
        """The last good weights as {"encoder/e1/kernel": float32 array}."""
        tv, ntv, _ = self.good
        for v, value in zip(self.net.trainable_variables, tv, strict=True):
            v.assign(value)
        for v, value in zip(self.net.non_trainable_variables, ntv, strict=True):
            v.assign(value)
        return {k: a.astype(np.float32) for k, a in model_arrays(self.net).items()}


def time_calls(fn, min_seconds: float, warmup: int = 2) -> tuple[float, int]:
    """Median seconds per call of ``fn`` (which blocks until done) and the number of calls."""
    for _ in range(warmup):
        fn()
    times = []
    t_end = time.perf_counter() + min_seconds
    while not times or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), len(times)


class GpuRun:
    """The whole call: see the module docstring.

    Args:
        args: the options of ``l3ic train gpu-run`` (``cli.build_gpu_run_parser``),
            with ``data`` set and ``presets`` a list of preset names.
    """

    def __init__(self, args):
        self.args = args
        self.out: Path = args.out
        self.t_start = args.started_at if args.started_at else time.time()
        self.deadline = self.t_start + 60.0 * args.deadline_minutes
        self.dry = args.dry_run
        self.patch = args.patch or (32 if self.dry else 128)
        self.batch = args.batch or (4 if self.dry else 64)
        self.figures: dict = {}
        self.last_log: dict[str, float] = {}
        self.schedule = HoldCosine(
            args.lr, SCHEDULE_STEPS, args.decay_start, args.lr_final, args.warmup
        )
        self.log_file = RunLog(self.out / LOG_NAME, LOG_FIELDS)

    def elapsed(self) -> float:
        return time.time() - self.t_start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    # ----- output files -----------------------------------------------------------------------

    def write_json(self) -> None:
        self.figures["elapsed_s"] = round(self.elapsed(), 1)
        write_json_atomic(self.out / RUN_JSON, self.figures)

    def save_weights(self, runs: list[PresetRun]) -> None:
        """Writes each preset's last good weights (``PresetRun.judge``) and the figures."""
        for r in runs:
            write_npz_atomic(self.out / f"{r.preset}.npz", r.arrays())
            self.figures["presets"][r.preset].update(
                steps=r.step,
                patches=r.step * self.batch,
                lmbda_final=float(np.asarray(r.good[1][r.rw])),
                rollbacks=r.rollbacks,
                lr_scale=r.lr_scale,
                scales_drawn=[round(x, 4) for x in r.scales],
            )
        self.write_json()

    def log(self, runs: list[PresetRun], lr: float, train_s: float) -> None:
        """A log row per preset (means since the last row); each interval is judged."""
        now = time.perf_counter()
        for r in runs:
            loss, mse, bpp, steps, lmbda = r.take_sums()
            since = now - self.last_log.get(r.preset, now)
            self.last_log[r.preset] = now
            row = {
                "preset": r.preset,
                "step": r.step,
                "seconds": f"{train_s:.1f}",
                "lr": f"{lr * r.lr_scale:.3g}",
                "loss": f"{loss:.6f}",
                "mse": f"{mse:.6f}",
                "bpp_est": f"{bpp:.4f}",
                "lmbda": f"{lmbda:.4g}",
                "patches_per_s": f"{steps * self.batch / since:.0f}" if since > 0 else "",
            }
            note = r.judge(loss, steps) if steps else ""
            self.log_file.write(row, prefix=f"[{self.elapsed():6.1f} s] ", note=note)

    # ----- phases -----------------------------------------------------------------------------

    def load_data(self):
        import jax

        files = list_images(self.args.data)
        train_files, val_files = split_files(files)
        images = _stack_images(load_images(train_files), self.patch)
        self.figures["data"] = {
            **data_identity(self.args.data, train_files),
            "validation_held_out": len(val_files),
            "shape": list(images.shape),
        }
        on_device = jax.device_put(images)
        on_device.block_until_ready()
        self.say(f"{images.shape[0]} training images {images.shape[1:3]} on {jax.devices()[0]}")
        return on_device

    def recipe(self, preset: str, lmbda: float | None) -> Recipe:
        """The recipe of ``preset`` in this call (``lmbda`` None: the preset's default):
        the command line's options, and what the call sets per preset."""
        num_channels = PRESETS[preset]
        return Recipe(
            **{
                **{k: getattr(self.args, k) for k in GPU_RUN_OPTIONS},
                "num_channels": num_channels,
                "steps": SCHEDULE_STEPS,
                "batch": self.batch,
                "patch": self.patch,
                "lmbda": lmbda if lmbda is not None else default_lmbda(num_channels),
                "target_bpp": TARGET_BPP[preset],
                "mixed_precision": True,
                "init": str(weights_path(preset)) if self.args.init == "shipped" else None,
            }
        )

    def build(self) -> list[PresetRun]:
        runs = []
        for preset in self.args.presets:
            sidecar = load_sidecar(preset) if self.args.init == "shipped" else {}
            # From shipped weights, the rate weight they ended with is the closest known start.
            recipe = self.recipe(preset, self.args.lmbda or sidecar.get("lmbda_final"))
            shipped = weights_path(preset) if self.args.init == "shipped" else None
            runs.append(PresetRun(preset, recipe, shipped))
            self.figures["presets"][preset] = {
                "num_channels": recipe.num_channels,
                "params": runs[-1].params,
                "lineage": lineage(shipped),
                "recipe": {
                    **recipe.to_dict(),
                    "schedule": "time-based: HoldCosine at the elapsed fraction of the budget",
                    "target_bpp_est": round(runs[-1].steering.target_est, 4),
                },
            }
        return runs

    def check(self, runs: list[PresetRun], sample, images, key) -> None:
        """Compiles and runs a few steps of every preset; raises on the first failure.

        The presets' steps are traced one after the other and compiled concurrently (XLA compiles
        outside the interpreter lock), so compilation costs about the longest of the three.
        """
        import jax

        t0 = time.perf_counter()
        try:
            lowered = [r.lower(sample(images, key)) for r in runs]
            with ThreadPoolExecutor(len(runs)) as pool:
                for r, compiled in zip(
                    runs, pool.map(lambda low: low.compile(), lowered), strict=True
                ):
                    r.use(compiled)
        except Exception as e:
            raise L3ICError(f"compiling the training steps failed: {e!r}") from e
        self.figures["compile_s"] = round(time.perf_counter() - t0, 1)
        self.say(f"compiled {len(runs)} training steps in {self.figures['compile_s']} s")
        for r in runs:
            t0 = time.perf_counter()
            try:
                for i in range(self.args.check_steps):
                    x = sample(images, jax.random.fold_in(key, i))
                    loss = float(r(x, 0.0))
                    if not math.isfinite(loss):
                        raise L3ICError(f"loss is {loss} at check step {i}")
            except Exception as e:
                raise L3ICError(f"preset {r.preset} failed its first steps: {e!r}") from e
            seconds = time.perf_counter() - t0
            loss, _, _, steps, _ = r.take_sums()
            r.judge(loss, steps)  # the starting weights' loss is the first best
            self.figures["presets"][r.preset]["check_s"] = round(seconds, 1)
            self.say(f"{r.preset}: ran {self.args.check_steps} steps in {seconds:.1f} s")

    def measure(self, runs: list[PresetRun], sample, images, key) -> None:
        """Patches/s of the sampler alone, of the model step alone and of the whole step.

        Measured at learning rate 0 (the weights do not move; Adam's moments do).
        """
        import jax

        seconds = 0.2 if self.dry else 1.5
        t, n = time_calls(
            lambda: sample(images, jax.random.fold_in(key, 7)).block_until_ready(), seconds
        )
        self.figures["sampler_patches_per_s"] = round(self.batch / t)
        for r in runs:
            x = sample(images, key)
            t_model, _ = time_calls(lambda r=r, x=x: r(x, 0.0).block_until_ready(), seconds)
            t_whole, _ = time_calls(
                lambda r=r: r(
                    sample(images, jax.random.fold_in(key, r.step)), 0.0
                ).block_until_ready(),
                seconds,
            )
            fig = self.figures["presets"][r.preset]
            fig["model_patches_per_s"] = round(self.batch / t_model)
            fig["whole_step_patches_per_s"] = round(self.batch / t_whole)
            r.take_sums()
            self.say(
                f"{r.preset}: {fig['whole_step_patches_per_s']} patches/s whole step, "
                f"{fig['model_patches_per_s']} model alone (batch {self.batch}, {self.patch} px)"
            )
        for r in runs:  # the check and measurement steps (at lr 0) are not counted as training
            r.step = 0

    def train(self, runs: list[PresetRun], sample, images, key) -> None:
        """Interleaved steps of every preset until the training budget is spent."""
        import jax

        budget = min(60.0 * self.args.minutes, self.deadline - time.time() - RESERVE_S)
        if self.dry:
            budget = min(budget, 5.0)
        if budget < (1.0 if self.dry else 30.0):
            raise L3ICError(f"only {budget:.0f} s left for training before the deadline")
        self.figures["train_budget_s"] = round(budget, 1)
        self.say(f"training {', '.join(r.preset for r in runs)} for {budget:.0f} s")
        t0 = time.perf_counter()
        log_every = 1.0 if self.dry else self.args.log_every
        next_log = t0 + log_every
        next_save = t0 + (budget / 2 if self.dry else self.args.save_every)
        pending: deque = deque()
        for r in runs:
            self.last_log[r.preset] = t0
        rounds = 0
        while True:
            now = time.perf_counter()
            done = now - t0 >= budget and (not self.dry or rounds >= 3)
            lr = self.schedule.at((now - t0) / budget)
            if done or now >= next_log:
                while pending:
                    pending.popleft().block_until_ready()
                self.log(runs, lr, now - t0)
                next_log = now + log_every
            if done:
                break
            if now >= next_save:
                self.save_weights(runs)
                next_save = time.perf_counter() + self.args.save_every
            for r in runs:
                pending.append(r(sample(images, jax.random.fold_in(key, r.step)), lr))
            rounds += 1
            while len(pending) > 2 * len(runs):  # let the host run at most two rounds ahead
                pending.popleft().block_until_ready()
        seconds = time.perf_counter() - t0
        total = sum(r.step for r in runs) * self.batch
        self.figures["train_s"] = round(seconds, 1)
        self.figures["train_patches_per_s_all_presets"] = round(total / seconds)
        self.figures["lr"] = {"peak": self.args.lr, "final": lr}
        # Interleaving costs nothing when a round takes as long as its presets' steps measured
        # alone (model step, fixed batch); a ratio well under 1 would favour other set-ups.
        alone = sum(
            self.batch / self.figures["presets"][r.preset]["model_patches_per_s"] for r in runs
        )
        self.figures["rounds"] = rounds
        self.figures["interleave_efficiency"] = round(alone / (seconds / max(rounds, 1)), 3)
        for r in runs:
            self.figures["presets"][r.preset]["train_patches_per_s"] = round(
                r.step * self.batch / seconds
            )

    def run(self) -> int:
        import jax

        if keras.backend.backend() != "jax":
            raise L3ICError("gpu-run needs the JAX backend: set KERAS_BACKEND=jax")
        self.out.mkdir(parents=True, exist_ok=True)
        device = jax.devices()[0]
        self.figures = {
            "dry_run": self.dry,
            "device": f"{device.platform}: {device.device_kind}",
            "devices": len(jax.devices()),
            "host": f"{platform.node()}, {os.cpu_count()} cores",
            "versions": {"jax": jax.__version__, "keras": keras.__version__},
            "batch": self.batch,
            "patch": self.patch,
            "compute": "mixed_bfloat16 (latent, quantiser, rate and loss in float32)",
            "presets": {},
        }
        if device.platform != "gpu" and not self.dry:
            raise L3ICError(f"JAX sees no GPU (only {device}): use --dry-run for a CPU rehearsal")
        key = jax.random.PRNGKey(self.args.seed)
        images = self.load_data()
        sample = _make_sampler(self.batch, self.patch, self.args.flips)
        runs = self.build()
        self.check(runs, sample, images, key)
        self.figures["ready_s"] = round(self.elapsed(), 1)
        self.write_json()
        self.measure(runs, sample, images, key)
        self.train(runs, sample, images, jax.random.fold_in(key, 1))
        self.save_weights(runs)
        self.say(f"weights written to {self.out}")
        self.say("done")
        return 0


def load_for_export(run_dir: Path, preset: str, data: Path) -> tuple[dict, L3ICModel, int, float]:
    """A preset of a gpu-run folder, for ``l3ic train export``.

    Args:
        run_dir: the folder the call wrote (``PRESET.npz``, ``gpu-run.json``).
        preset: the preset, e.g. "32c".
        data: the training images here (must be the set the run trained on).

    Returns:
        (export config: recipe, hardware, data identity, patches, lineage; the float32 model
        with the run's weights; steps; training seconds).
    """
    info = json.loads((run_dir / RUN_JSON).read_text())
    if preset not in info["presets"] or not (run_dir / f"{preset}.npz").is_file():
        raise L3ICError(f"{run_dir} holds no weights for preset {preset!r}")
    entry = info["presets"][preset]
    files = list_images(data)
    train_files, val_files = split_files(files)
    identity = data_identity(data, train_files)
    if identity["names_sha256"] != info["data"]["names_sha256"]:
        raise L3ICError(f"{data} is not the training set of {run_dir}: pass --data")
    keras.config.set_dtype_policy("float32")
    lmbda = entry.get("lmbda_final", entry["recipe"]["lmbda"])
    num_channels = num_channels_in(entry)
    net = load_model(num_channels, run_dir / f"{preset}.npz", lmbda=lmbda)
    gpu = info["device"].startswith("gpu") and not info["dry_run"]
    cfg = {
        "num_channels": num_channels,
        "gpu": gpu,
        "hardware": f"{info['device']}, l3ic train gpu-run"
        + (" (dry run)" if info["dry_run"] else ""),
        "backend": "jax",
        "recipe": entry["recipe"],
        "data": str(data),
        "training_data": identity,
        "validation_data": data_identity(data, val_files),
        "patches": entry.get("patches", 0),
        "lineage": entry.get("lineage"),
    }
    return cfg, net, entry.get("steps", 0), info.get("train_s", 0.0)
