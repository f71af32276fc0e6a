"""imageio reads and writes .l3ic files through the l3ic plugin."""

import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
from support import smooth_image

from l3ic.imageio_plugin import register


def test_roundtrip_through_imageio(presets, tmp_path):
    register()
    register()  # idempotent
    x = smooth_image(24, 40)
    iio.imwrite(tmp_path / "a.l3ic", x, preset="16c")
    y = iio.imread(tmp_path / "a.l3ic")
    assert y.shape == x.shape and y.dtype == np.uint8
    props = iio.improps(tmp_path / "a.l3ic")
    assert props.shape == (24, 40, 3)
    assert iio.immeta(tmp_path / "a.l3ic")["preset"] == "16c"
    data = iio.imwrite("<bytes>", x, extension=".l3ic", preset="16c")
    np.testing.assert_array_equal(iio.imread(data, extension=".l3ic"), y)


def test_installed_package_registers_without_import(presets, tmp_path):
    path = tmp_path / "b.l3ic"
    import l3ic

    path.write_bytes(l3ic.compress(smooth_image(16, 16), preset="16c"))
    code = "import sys, imageio.v3 as iio; print(iio.imread(sys.argv[1]).shape)"
    env = {**os.environ, "L3IC_MODELS_DIR": str(presets)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(16, 16, 3)"
