"""The codec gives the same bytes under the JAX and PyTorch backends as under TensorFlow."""

import importlib.util
import os
import subprocess
import sys

import pytest
from support import smooth_image

import l3ic

SCRIPT = """
import sys, numpy as np, l3ic
x = np.load(sys.argv[1])
data = l3ic.compress(x, preset="16c")
sys.stdout.buffer.write(data)
np.save(sys.argv[2], l3ic.decompress(data))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_matches_tensorflow(presets, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.fail(f"{backend} is not installed: pip install '.[test]' installs it")
    import numpy as np

    x = smooth_image(40, 56)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": backend, "L3IC_MODELS_DIR": str(presets)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    reference = l3ic.compress(x, preset="16c")
    ref_latent, _ = l3ic.read_latent(reference)
    latent, _ = l3ic.read_latent(out.stdout)
    assert (latent != ref_latent).mean() < 0.01  # float rounding may flip a value at a bin edge
    y = np.load(tmp_path / "y.npy")
    assert np.abs(y.astype(int) - l3ic.decompress(out.stdout)).max() <= 2
