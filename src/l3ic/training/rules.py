"""The rules every training loop of l3ic follows, written once for ``l3ic train`` and ``gpu-run``.

- ``HoldCosine``: the learning rate, a function of the step (or of the elapsed fraction of a
  time budget): linear warm-up, held, then a cosine decay.
- ``RateSteering``: the rate weight lmbda moved every step toward a target bit rate.
- ``DivergenceGuard``: what counts as a diverged or a suspicious interval of training.
- ``RunLog``: the CSV log of a run, one row per interval.

``loop`` runs them eagerly around Keras' ``train_on_batch`` (any backend);
``gpu_run`` runs the schedule and the steering inside its jitted JAX step.
"""

import csv
import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from ..errors import L3ICError

__all__ = [
    "HoldCosine",
    "step_scale",
    "RateSteering",
    "DivergenceGuard",
    "RunLog",
    "STEER_GAIN",
    "STEER_RANGE",
    "EST_PER_REAL",
    "DIVERGED_LOSS_RATIO",
    "SAVE_WITHIN",
    "DIVERGED_PSNR_DROP_DB",
]

STEER_GAIN = 2e-3  # per step, on the relative rate error
STEER_RANGE = 20.0  # lmbda stays within [lmbda0 / range, lmbda0 * range]
# The training batches' mean estimated bpp (128 px patches, each step at its random scale in
# [0.5, 2]) over the real validation bpp at s = 1, by channel count, at the rate targets: the
# mean calibration of every validation of the CPU runs with ``--scale-range 2`` of 2026-12-07
# (16c 0.971 over 8, 32c 0.972 over 8, 64c 0.972 over 7; each 0.94-1.00; docs/training.md).
# At s = 1 only it was 0.950 / 0.932 / 0.913 (2026-12-06). Only the first guess: a run of
# ``l3ic train`` re-measures it at each validation (``RateSteering.calibrate``); gpu-run has no
# validation and keeps it.
EST_PER_REAL = {16: 0.971, 32: 0.972, 64: 0.972}
# An interval whose mean loss is not finite or over DIVERGED_LOSS_RATIO x the best interval's
# has diverged; over SAVE_WITHIN x the best one, its weights are not saved. A validation PSNR
# DIVERGED_PSNR_DROP_DB below the run's best has diverged too.
DIVERGED_LOSS_RATIO = 3.0
SAVE_WITHIN = 1.5
DIVERGED_PSNR_DROP_DB = 3.0


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

    ``schedule(step)`` is the rate at an optimizer step (a backend scalar); ``schedule.at(f)``
    the rate at the fraction f of the schedule as a float, for a loop whose length is a time
    budget rather than a step count.
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

    def at(self, fraction: float) -> float:
        """The learning rate at ``fraction`` (clipped to 0..1) of the schedule, as a float."""
        step = min(max(fraction, 0.0), 1.0) * self.total
        return float(ops.convert_to_numpy(self(step)))

    def get_config(self):
        return {
            "lr": self.lr,
            "total": self.total,
            "decay_start": self.decay_start,
            "final": self.final,
            "warmup": self.warmup,
        }


def step_scale(seed: int, step: int, scale_range: float) -> float:
    """The quantisation scale of training step ``step`` (``--scale-range``): log-uniform in
    [1 / scale_range, scale_range], drawn from (seed, step) alone, so a resumed run and an
    uninterrupted one train at the same scales. 1.0 when ``scale_range`` is 1."""
    if scale_range == 1.0:
        return 1.0
    u = np.random.default_rng([seed, step, 31]).random()
    return float(scale_range ** (2.0 * u - 1.0))


class RateSteering:
    """Steers the rate weight every step toward a real validation bpp::

        lmbda <- clip(lmbda * exp(gain * (bpp_est - target_est) / target_est),
                      lmbda0 / STEER_RANGE, lmbda0 * STEER_RANGE)

    ``bpp_est`` is the model's estimated bpp of the step's batch and ``target_est`` the target
    restated in that unit: ``target x est_per_real``, the training batches' estimate over the
    real validation bpp, re-measured at each validation (``calibrate``).

    Args:
        target: the real validation bpp to reach (files coded for real).
        lmbda0: the starting rate weight (the allowed range is relative to it).
        gain: the steering gain per step.
        est_per_real: the first guess of estimated over real bpp (``EST_PER_REAL``).
    """

    def __init__(
        self, target: float, lmbda0: float, gain: float = STEER_GAIN, est_per_real: float = 1.0
    ):
        self.target, self.lmbda0, self.gain = target, lmbda0, gain
        self.est_per_real = est_per_real

    @property
    def target_est(self) -> float:
        """The target in the steered unit: the training batches' estimated bpp."""
        return self.target * self.est_per_real

    def step(self, lmbda, bpp_est, target_est=None):
        """The rate weight after a step whose batch had the estimated rate ``bpp_est``.

        Takes floats (an eager loop) or backend scalars (inside a jitted step, which passes
        ``target_est`` in). Returns a float32 backend scalar.
        """
        target_est = self.target_est if target_est is None else target_est
        # In float32 whatever the arguments' types: a numpy float64 here would be computed in
        # float64, and a resumed run (which reads est_per_real back as a float) would then
        # steer in another precision than the uninterrupted one.
        error = ops.cast(self.gain * (bpp_est - target_est) / target_est, "float32")
        w = ops.cast(lmbda, "float32") * ops.exp(error)
        return ops.clip(w, self.lmbda0 / STEER_RANGE, self.lmbda0 * STEER_RANGE)

    def calibrate(self, mean_bpp_est: float, val_bpp: float) -> None:
        """Re-measures ``est_per_real``: an interval's mean estimated bpp of the training
        batches over the real validation bpp at its end."""
        if mean_bpp_est > 0 and val_bpp > 0:
            self.est_per_real = float(mean_bpp_est / val_bpp)


class DivergenceGuard:
    """Judges a run's training intervals and validations.

    The loop adds each step's loss (``add_loss``) and ends an interval where it would save
    (``end_interval``), which answers:

    - ``"diverged"``: the interval's mean loss is not finite or over ``DIVERGED_LOSS_RATIO`` x
      the best interval's;
    - ``"unsaved"``: it is over ``SAVE_WITHIN`` x the best one's: keep the last saved state;
    - ``"ok"``: save (and the best is updated).

    ``add_validation`` raises on a validation PSNR ``DIVERGED_PSNR_DROP_DB`` under the best.
    ``l3ic train`` stops on a divergence (its checkpoint on disk predates it); ``gpu-run`` rolls
    the preset back to its last good state and halves its learning rate.

    Args:
        saved_step: the step of the state saved before this guard started (a resumed run).
    """

    def __init__(self, saved_step: int | None = None):
        self.best_psnr, self.best_loss = -math.inf, math.inf
        self.saved_step = saved_step
        self.last_loss = math.inf
        self._sum, self._count = 0.0, 0

    def add_loss(self, loss: float, steps: int = 1) -> None:
        """Adds one step's loss, or the sum of ``steps`` steps' losses."""
        self._sum += loss
        self._count += steps

    def end_interval(self, step: int) -> str:
        """Judges the interval since the last call: "ok", "unsaved" or "diverged"."""
        loss = self._sum / max(self._count, 1)
        self._sum, self._count = 0.0, 0
        self.last_loss = loss
        if not math.isfinite(loss) or loss > DIVERGED_LOSS_RATIO * self.best_loss:
            return "diverged"
        if loss > SAVE_WITHIN * self.best_loss:
            return "unsaved"
        self.best_loss = min(self.best_loss, loss)
        self.saved_step = step
        return "ok"

    def add_validation(self, psnr: float, step: int) -> None:
        """Records the validation PSNR (dB) of ``step``.

        Raises:
            L3ICError: it is ``DIVERGED_PSNR_DROP_DB`` or more below the best so far; the
                message names the step of the last state judged "ok".
        """
        if psnr < self.best_psnr - DIVERGED_PSNR_DROP_DB:
            raise self.diverged(f"validation PSNR {psnr:.2f} dB at step {step}, best "
                                f"{self.best_psnr:.2f} dB")  # fmt: skip
        self.best_psnr = max(self.best_psnr, psnr)

    def diverged(self, what: str) -> L3ICError:
        """The error that stops a diverged run: ``what`` happened, and which checkpoint is kept."""
        kept = "no checkpoint was written"
        if self.saved_step is not None:
            kept = (
                f"the checkpoint of step {self.saved_step} is kept: export it, or start again "
                "from it with a lower --lr"
            )
        return L3ICError(f"training diverged: {what}; {kept}")


class RunLog:
    """A run's CSV log: a header, then one row per call of ``write``.

    Args:
        path: the CSV file (appended to; the header is written when the file is new).
        fields: the column names; a row's missing fields are left empty. A file that exists
            keeps its own header's columns (a run resumed by a newer version).
    """

    def __init__(self, path: Path, fields: tuple[str, ...]):
        self.path, self.fields = Path(path), fields
        if self.path.is_file():
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                self.fields = tuple(header)

    def write(self, row: dict, prefix: str = "", note: str = "") -> None:
        """Appends ``row`` and prints it as ``key=value`` pairs (after ``prefix``, with a note)."""
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in self.fields})
        text = " ".join(f"{k}={v}" for k, v in row.items() if k in self.fields)
        print(prefix + text + (f": {note}" if note else ""), flush=True)
