"""What a user installs: the tests run the installed l3ic, and the wheel works on its own.

The wheel test builds the wheel, installs it (without dependencies: they are already installed)
into a fresh virtual environment that sees this environment's packages, and uses the CLI, the
Python API and imageio from there, in a folder outside the checkout.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import l3ic

ROOT = Path(__file__).resolve().parents[1]


def test_tests_run_the_installed_package_not_the_checkout():
    assert not Path(l3ic.__file__).resolve().is_relative_to(ROOT), (
        f"l3ic was imported from the checkout ({l3ic.__file__}); install it (pip install .) "
        "and run the tests from the README's command"
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv (seeing this environment's packages) with the wheel built from ROOT."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("l3ic-*.whl")
    env = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env)],
        check=True,
    )
    python = env / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", "--ignore-installed", str(wheel)],  # even if this environment has l3ic
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    work = tmp / "work"
    work.mkdir()
    picture = np.asarray(iio.imread(ROOT / "src" / "l3ic" / "samples" / "astronaut.png"))
    iio.imwrite(work / "photo.png", picture[100:164, 200:296])  # 64 x 96
    return env, work


def _run(args, cwd):
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_wheel_imageio_reads_and_writes_l3ic_without_importing_l3ic(venv):
    env, work = venv
    script = textwrap.dedent(
        """
        import json, sys
        import imageio.v3 as iio
        assert "l3ic" not in sys.modules
        image = iio.imread("photo.png")
        iio.imwrite("via-imageio.l3ic", image, preset="16c")
        back = iio.imread("via-imageio.l3ic")
        print(json.dumps({
            "head": open("via-imageio.l3ic", "rb").read(4).decode("latin-1"),
            "shape": list(back.shape), "dtype": str(back.dtype),
            "module": sys.modules["l3ic"].__file__, "prefix": sys.prefix,
        }))
        """
    )
    result = json.loads(_run([str(env / "bin" / "python"), "-c", script], work))
    assert result["head"] == "L3IC"  # a real .l3ic file, not another format under that name
    assert result["shape"] == [64, 96, 3] and result["dtype"] == "uint8"
    assert Path(result["module"]).is_relative_to(result["prefix"])  # the wheel's l3ic


def test_wheel_cli_and_python_api(venv):
    env, work = venv
    cli = str(env / "bin" / "l3ic")
    _run([cli, "compress", "-m", "16c", "photo.png", "-o", "cli.l3ic", "--force"], work)
    _run([cli, "decompress", "cli.l3ic", "-o", "cli.png", "--force"], work)
    info = json.loads(_run([cli, "info", "cli.l3ic", "--json"], work))
    assert (info["preset"], info["width"], info["height"]) == ("16c", 96, 64)
    assert iio.imread(work / "cli.png").shape == (64, 96, 3)
    script = textwrap.dedent(
        """
        import json, sys, l3ic
        data = l3ic.compress("photo.png", preset="16c")
        image = l3ic.decompress(data)
        latent, meta = l3ic.read_latent(data, channels=[0, 3])
        print(json.dumps({"shape": list(image.shape), "latent": list(latent.shape),
                          "module": l3ic.__file__, "prefix": sys.prefix}))
        """
    )
    result = json.loads(_run([str(env / "bin" / "python"), "-c", script], work))
    assert result["shape"] == [64, 96, 3] and result["latent"] == [8, 12, 2]
    assert Path(result["module"]).is_relative_to(result["prefix"])
