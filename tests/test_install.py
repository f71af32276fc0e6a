"""What a user installs: the tests run the installed l3ic, and the wheel works on its own.

The wheel test builds the wheel, installs it (without dependencies: they are already installed)
into a fresh virtual environment that sees this environment's packages (this one's site
directories, whether it is a venv, a conda-like environment or a base interpreter), and uses
the CLI, the Python API and imageio from there, in a folder outside the checkout. In that
environment Keras, TensorFlow, JAX and PyTorch cannot be imported (a start-up hook makes them
look uninstalled), as in a base install (``pip install l3ic``) that has no training stack.
"""

import json
import os
import site as site_module
import subprocess
import sys
import textwrap
import zipfile
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
    """A fresh venv (seeing this environment's packages) with the wheel built from ROOT.

    ``venv --system-site-packages`` would show the *base* interpreter's packages, not those of
    a venv the tests run in; so the new venv adds this environment's site directories
    (``site.getsitepackages``, their .pth files included) after its own.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("l3ic-*.whl")
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = (
        env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    outer = [p for p in site_module.getsitepackages() if Path(p).is_dir()]
    if site_module.ENABLE_USER_SITE and Path(site_module.getusersitepackages()).is_dir():
        outer.append(site_module.getusersitepackages())
    adds = "; ".join(f"site.addsitedir({p!r})" for p in outer)
    (site / "_outer_environment.pth").write_text(f"import site; {adds}\n")
    (site / "_no_training_stack.py").write_text(NO_TRAINING_STACK)
    (site / "_no_training_stack.pth").write_text("import _no_training_stack\n")
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


# Installed into the wheel's venv: the training stack looks uninstalled there.
NO_TRAINING_STACK = """
import sys


class NotInstalled:
    names = {"keras", "tensorflow", "jax", "torch"}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def test_wheel_carries_the_compiled_reader_or_builds_without_a_compiler(venv, tmp_path):
    env, _ = venv
    (wheel,) = (env.parent / "dist").glob("l3ic-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("l3ic/_record_decoder") for n in names)
    assert "py3-none-any" not in wheel.name  # a platform wheel: it holds compiled code
    # No C compiler: a warning, and a pure-Python wheel that reads latents with constriction.
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, env={**os.environ, "CC": "/nonexistent/cc"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    (pure,) = tmp_path.glob("l3ic-*.whl")
    assert pure.name.endswith("py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(pure).namelist() if "_record_decoder" in n]
    assert "could not compile" in out.stdout + out.stderr


def test_base_install_needs_no_training_stack(venv):
    env, work = venv
    (wheel,) = (env.parent / "dist").glob("l3ic-*.whl")
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [
            line.split(":", 1)[1].strip()
            for line in z.read(name).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    base = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("onnxruntime") for r in base)
    heavy = ("keras", "tensorflow", "jax", "torch")
    assert not [r for r in base if r.startswith(heavy)], base
    train = [r for r in requires if "extra == 'train'" in r or 'extra == "train"' in r]
    assert any(r.startswith("keras") for r in train) and any("tensorflow" in r for r in train)
    blocked = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import keras"], capture_output=True, text=True
    )
    assert blocked.returncode == 1 and "No module named 'keras'" in blocked.stderr


def test_wheel_keras_runtime_without_keras_says_what_to_install(venv):
    env, work = venv
    out = subprocess.run(
        [str(env / "bin" / "l3ic"), "compress", "photo.png", "-o", "k.l3ic", "--runtime", "keras"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1 and not (work / "k.l3ic").exists()
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("l3ic: error: photo.png:") and 'pip install "l3ic[train]"' in line
    out = subprocess.run(
        [str(env / "bin" / "l3ic"), "train", "--steps", "1", "--out", "run"],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (line,) = out.stderr.strip().splitlines()
    assert out.returncode == 1 and 'pip install "l3ic[train]"' in line


def _run(args, cwd):
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_wheels_venv_sees_this_environments_packages(venv):
    """Not the base interpreter's: in a venv without PIL there, those would be missing."""
    import PIL

    env, work = venv
    script = "import PIL, l3ic; print(PIL.__file__); print(l3ic.__file__)"
    pil, l3ic_file = _run([str(env / "bin" / "python"), "-c", script], cwd=work).split()
    assert Path(pil) == Path(PIL.__file__)
    assert Path(l3ic_file).is_relative_to(env)  # the wheel's l3ic comes first


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
