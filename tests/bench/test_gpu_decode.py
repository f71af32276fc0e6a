"""bench.gpu_decode, the decoder's speed through JAX, run small on the CPU as the GPU run does."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_times_every_batch_and_writes_its_figures(tmp_path):
    out = tmp_path / "decode.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_decode",
            "--dry-run",
            "--preset",
            "16c",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["preset"] == "16c" and figures["size"] == "96x64"
    for batch in (1, 2):
        entry = figures[f"batch_{batch}"]
        assert entry["images_per_s_on_device"] > 0 and entry["images_per_s_with_transfers"] > 0
        assert entry["timed_calls"] >= 1
