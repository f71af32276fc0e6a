"""Training speed of one preset in float32 against ``mixed_bfloat16`` on this machine, per
Keras backend.

Runs l3ic's own training step (``l3ic.training.loop.build_model`` + ``train_on_batch``) on random
patches in fresh subprocesses (``KERAS_BACKEND`` set for each), alternating the two precisions
(``--rounds`` times each), and reports patches/s per backend and precision and the ratios: bf16
against float32 of the same backend, and each row against TensorFlow's (the training default)
at the same precision. This is the measurement that decides whether ``l3ic train
--mixed-precision auto`` turns bf16 on for a CPU (docs/training.md, "bf16"): bf16 pays on CPUs
with AMX or AVX512-BF16 and costs on CPUs without them.

Examples:
  python -m bench.train_precision
  python -m bench.train_precision --preset 32c --batch 8 16 --steps 30 --rounds 3
  python -m bench.train_precision --backends tensorflow jax torch --json /tmp/backends.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["main", "time_steps"]

RESULTS = Path(__file__).parent / "results" / "train-precision.json"


def time_steps(preset: str, batch: int, patch: int, steps: int, bf16: bool) -> float:
    """Patches/s of ``steps`` training steps after 2 warm-up steps, in this process."""
    import time

    import numpy as np

    from l3ic.presets import PRESETS
    from l3ic.training.loop import build_model
    from l3ic.training.recipe import Recipe

    recipe = Recipe(
        num_channels=PRESETS[preset], batch=batch, patch=patch, steps=10**6, mixed_precision=bf16
    )
    net = build_model(recipe.resolved())
    rng = np.random.default_rng(0)
    x = rng.random((batch, patch, patch, 3), dtype=np.float32)
    for _ in range(2):
        net.train_on_batch(x)
    t0 = time.perf_counter()
    for _ in range(steps):
        net.train_on_batch(x)
    return steps * batch / (time.perf_counter() - t0)


def _child(args: argparse.Namespace) -> None:
    rate = time_steps(args.preset, args.batch[0], args.patch, args.steps, args.precision == "bf16")
    import keras

    print(json.dumps({"patches_per_s": rate, "backend": keras.backend.backend()}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="32c")
    p.add_argument("--batch", type=int, nargs="+", default=[8])
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2, help="alternating runs per precision")
    p.add_argument(
        "--backends", nargs="+", default=["tensorflow"], choices=("tensorflow", "jax", "torch"),
        help="Keras backends to time, each in its own processes (default tensorflow)",
    )  # fmt: skip
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16"))
    p.add_argument("--json", type=Path, default=RESULTS)
    p.add_argument("--precision", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.precision:  # a child process: one timing
        _child(args)
        return 0
    from l3ic.cpu import cpu_has_fast_bf16, cpu_model

    rows = []
    for batch in args.batch:
        for backend in args.backends:
            rates: dict[str, list[float]] = {precision: [] for precision in args.precisions}
            for _ in range(args.rounds):
                for precision in rates:
                    out = subprocess.run(
                        [sys.executable, "-m", "bench.train_precision", "--precision", precision,
                         "--preset", args.preset, "--batch", str(batch),
                         "--patch", str(args.patch), "--steps", str(args.steps)],
                        capture_output=True, text=True, check=True,
                        env={**os.environ, "KERAS_BACKEND": backend},
                    )  # fmt: skip
                    child = json.loads(out.stdout.strip().splitlines()[-1])
                    if child["backend"] != backend:
                        raise SystemExit(f"asked for {backend}, ran {child['backend']}")
                    rates[precision].append(child["patches_per_s"])
                    print(
                        f"batch {batch} {backend} {precision}: "
                        f"{rates[precision][-1]:.1f} patches/s",
                        flush=True,
                    )
            row: dict = {"batch": batch, "backend": backend}
            for precision, values in rates.items():
                row[f"{precision}_patches_per_s"] = [round(r, 2) for r in values]
            if len(rates) == 2:
                ratio = statistics.median(rates["bf16"]) / statistics.median(rates["fp32"])
                row["bf16_over_fp32"] = round(ratio, 3)
                print(f"batch {batch} {backend}: bf16 / fp32 = {ratio:.3f}", flush=True)
            rows.append(row)
    tensorflow = {row["batch"]: row for row in rows if row["backend"] == "tensorflow"}
    for row in rows:
        ref = tensorflow.get(row["batch"])
        if ref is None or row is ref:
            continue
        for precision in args.precisions:
            key = f"{precision}_patches_per_s"
            ratio = statistics.median(row[key]) / statistics.median(ref[key])
            row[f"{precision}_over_tensorflow"] = round(ratio, 3)
            print(f"batch {row['batch']} {row['backend']} {precision} / tensorflow: {ratio:.3f}")
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "fast_bf16_flags": cpu_has_fast_bf16(),
        "preset": args.preset,
        "patch": args.patch,
        "steps": args.steps,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
