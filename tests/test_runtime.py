"""The runtimes of the network: ONNX Runtime and OpenVINO against the Keras reference, the
"auto" choice between them, and the on-disk cache of the graphs built from the weights."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image, untrained_codec

import l3ic
from l3ic import L3ICError, api, runtime
from l3ic.cli import main
from l3ic.codec import Codec
from l3ic.cpu import cpu_has_fast_bf16
from l3ic.graph_cache import GRAPH_VERSION
from l3ic.presets import PRESETS, read_arrays, weights_path
from l3ic.runtime import import_openvino, resolve_runtime

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
SAMPLE = Path(l3ic.__file__).parent / "samples" / "astronaut.png"
# A latent value that lands on a rounding boundary may round the other way in the other runtime
# (float sums in another order). Over the 24 Kodak images that happened to at most 1.3 values in
# a million (16c; docs/runtimes.md, bench/results/runtime_agreement.json); this bound is ~8x that.
MAX_FLIP_FRACTION = 1e-5


def _compare_latents(a: np.ndarray, b: np.ndarray) -> None:
    """The latents agree but for rare boundary flips of one step."""
    diff = a.astype(np.int16) - b.astype(np.int16)
    assert a.shape == b.shape and a.dtype == b.dtype == np.int8
    assert np.abs(diff).max() <= 1
    assert np.count_nonzero(diff) <= max(1, MAX_FLIP_FRACTION * diff.size)


def _openvino():
    """``openvino`` as l3ic imports it (without its telemetry-sending conversion tool), or skip."""
    if not HAS_OPENVINO:
        pytest.skip("openvino is not installed")
    return import_openvino()


@pytest.fixture(scope="module")
def sample():
    return iio.imread(SAMPLE)


@pytest.fixture
def openvino_f32(monkeypatch):
    """OpenVINO in float32, whatever the CPU (on AMX or AVX512-BF16 CPUs its default is bf16)."""
    _openvino()
    monkeypatch.setenv("L3IC_OPENVINO_PRECISION", "f32")


@pytest.fixture
def fresh_auto():
    """``choose_auto`` decided anew inside the test (it is cached per process)."""
    runtime.choose_auto.cache_clear()
    yield
    runtime.choose_auto.cache_clear()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_shipped_presets_agree_across_runtimes(preset, sample):
    onnx, keras = Codec(preset, runtime="onnx"), Codec(preset, runtime="keras")
    assert (onnx.runtime, keras.runtime) == ("onnx", "keras")
    q_onnx, q_keras = onnx.encode_latent(sample), keras.encode_latent(sample)
    _compare_latents(q_onnx, q_keras)
    files = onnx.compress(sample), keras.compress(sample)
    assert (files[0] == files[1]) == np.array_equal(q_onnx, q_keras)
    # one file decodes to the same image within 1 grey level on either runtime
    y_onnx, y_keras = onnx.decompress(files[1]), keras.decompress(files[1])
    assert y_onnx.shape == y_keras.shape == sample.shape
    grey = np.abs(y_onnx.astype(np.int16) - y_keras)
    assert grey.max() <= 1 and np.mean(grey > 0) < 1e-3


@pytest.mark.parametrize("preset", list(PRESETS))
def test_shipped_presets_agree_on_openvino_in_float32(preset, sample, openvino_f32):
    openvino, onnx = Codec(preset, runtime="openvino"), Codec(preset, runtime="onnx")
    assert openvino.runtime == "openvino"
    q = openvino.encode_latent(sample)
    assert openvino.net.precision == "f32"
    _compare_latents(q, onnx.encode_latent(sample))
    data = onnx.compress(sample)
    grey = np.abs(openvino.decompress(data).astype(np.int16) - onnx.decompress(data))
    assert grey.max() <= 1 and np.mean(grey > 0) < 1e-3


# OpenVINO in bf16 rounds weights and activations to 8 significant bits: on an AMX Xeon (issue
# 29, before l3ic kept the last convolutions in float32) 0.3 % of latent values moved by one
# step and decoded pixels by 0.36 grey levels on average, 3 at most. These bounds are about 3x
# those; the quality over Kodak is measured by bench.runtime_agreement (docs/runtimes.md).
@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no AMX or AVX512-BF16")
def test_openvino_bf16_stays_close_where_the_cpu_has_it(sample):
    _openvino()
    bf16, onnx = Codec("32c", runtime="openvino"), Codec("32c", runtime="onnx")
    q, ref = bf16.encode_latent(sample), onnx.encode_latent(sample)
    assert bf16.net.precision == "bf16"
    diff = np.abs(q.astype(np.int16) - ref)
    assert diff.max() <= 1 and np.mean(diff > 0) < 0.01
    grey = np.abs(bf16.decode_latent(ref).astype(np.int16) - onnx.decode_latent(ref))
    assert grey.mean() < 1.0 and grey.max() <= 10


def test_openvino_bf16_keeps_the_last_convolution_in_float32(presets):
    openvino = _openvino()
    codec = Codec("16c", runtime="onnx")
    graphs = runtime._Graphs(read_arrays(weights_path("16c")), codec.num_channels, key=None)
    for part, layer in (("encoder", "e3"), ("decoder", "d3")):
        model = openvino.Core().read_model(graphs.load(part))
        assert runtime.keep_last_convolution_f32(model).startswith(f"{layer}/")
        marked = [op.get_friendly_name() for op in model.get_ordered_ops()
                  if "disable_fp16_compression_0" in op.get_rt_info()]  # fmt: skip
        assert len(marked) == 1 and marked[0].startswith(f"{layer}/")


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_runtimes_agree_on_tiles_odd_sizes_and_batches(codec16, name, monkeypatch):
    if name == "openvino":
        _openvino()
        monkeypatch.setenv("L3IC_OPENVINO_PRECISION", "f32")
    other = Codec.from_model(codec16.net.model, "t", {}, tile=3, runtime=name)
    assert other.runtime == name
    images = [smooth_image(37, 53, seed=1), smooth_image(37, 53, seed=2), smooth_image(20, 9)]
    latents = other.encode_latent_batch(images)
    for image, q in zip(images, latents, strict=True):
        _compare_latents(q, codec16.encode_latent(image))
    shapes = [im.shape[:2] for im in images]
    for y, ref in zip(
        other.decode_latent_batch(latents, shapes),
        codec16.decode_latent_batch(latents, shapes),
        strict=True,
    ):
        assert y.shape == ref.shape and np.abs(y.astype(np.int16) - ref).max() <= 1


def test_default_runtime_is_auto_and_env_chooses(monkeypatch, fresh_auto):
    monkeypatch.delenv("L3IC_RUNTIME", raising=False)
    assert runtime.DEFAULT_RUNTIME == "auto"
    assert resolve_runtime() == resolve_runtime("auto") == runtime.choose_auto()[0]
    monkeypatch.setenv("L3IC_RUNTIME", "keras")
    assert resolve_runtime() == "keras" and resolve_runtime("onnx") == "onnx"
    with pytest.raises(L3ICError, match="unknown runtime 'tf'"):
        resolve_runtime("tf")


def test_auto_picks_openvino_only_on_bf16_cpus_that_have_it(monkeypatch, fresh_auto):
    import importlib.util

    monkeypatch.setattr(runtime, "_providers", lambda: ["CPUExecutionProvider"])
    found = {"openvino": True}
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: (object() if found[name] else None)
        if name in found
        else real_find_spec(name, *a),
    )  # fmt: skip

    def auto(flags, openvino=True):
        monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: flags)
        found["openvino"] = openvino
        runtime.choose_auto.cache_clear()
        return runtime.choose_auto()

    assert auto(["amx_bf16"])[0] == "openvino"
    assert auto(["avx512_bf16"])[0] == "openvino"
    name, why = auto([])
    assert name == "onnx" and "no amx_bf16 or avx512_bf16" in why
    name, why = auto(["amx_bf16"], openvino=False)
    assert name == "onnx" and "OpenVINO is not installed" in why
    with pytest.raises(L3ICError, match=r'pip install "l3ic\[openvino\]"'):
        resolve_runtime("openvino")
    monkeypatch.setattr(runtime, "_providers", lambda: ["CUDAExecutionProvider"])
    assert auto(["amx_bf16"])[0] == "openvino"  # no onnxruntime-gpu: its providers not asked
    monkeypatch.setattr(runtime, "_has_onnxruntime_gpu", lambda: True)
    assert auto(["amx_bf16"])[0] == "onnx"  # a GPU: ONNX Runtime's CUDA provider


def test_api_and_imageio_take_a_runtime(presets, tmp_path):
    image = smooth_image(32, 48)
    for name in ("onnx", "keras") + (("openvino",) if HAS_OPENVINO else ()):
        data = l3ic.compress(image, "16c", runtime=name)
        assert l3ic.decompress(data, runtime=name).shape == (32, 48, 3)
        assert api.get_codec("16c", name).runtime == name
        iio.imwrite(tmp_path / f"{name}.l3ic", image, preset="16c", runtime=name)
        assert iio.imread(tmp_path / f"{name}.l3ic", runtime=name).shape == (32, 48, 3)
    assert api.get_codec("16c").runtime == api.get_codec("16c", "auto").runtime
    assert api.get_codec("16c") is api.get_codec("16c", resolve_runtime())


def test_cli_runtime_option(presets, tmp_path, capsys):
    iio.imwrite(tmp_path / "a.png", smooth_image(24, 40))
    for name in ("auto", "onnx", "keras") + (("openvino",) if HAS_OPENVINO else ()):
        out = tmp_path / f"{name}.l3ic"
        args = ["compress", str(tmp_path / "a.png"), "-m", "16c", "-o", str(out)]
        assert main([*args, "--runtime", name]) == 0
        assert main(["decompress", str(out), "--runtime", name, "-o", str(out) + ".png"]) == 0
    with pytest.raises(SystemExit) as stop:
        main(["compress", str(tmp_path / "a.png"), "--runtime", "tf"])
    assert stop.value.code == 2
    capsys.readouterr()


def test_bad_runtime_in_environment_is_one_error_line(presets, tmp_path, monkeypatch, capsys):
    iio.imwrite(tmp_path / "a.png", smooth_image(24, 40))
    monkeypatch.setenv("L3IC_RUNTIME", "tf")
    assert main(["compress", str(tmp_path / "a.png"), "-m", "16c"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"l3ic: error: {tmp_path / 'a.png'}: unknown runtime 'tf': choose one of "
                   "auto, onnx, openvino, keras"]  # fmt: skip


# ----- the graph cache -------------------------------------------------------------------------


def _cached(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_graphs_are_built_once_at_first_use_and_keyed_by_fingerprint(
    presets, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("L3IC_CACHE_DIR", str(cache))
    codec = Codec("16c", runtime="onnx")
    assert not cache.exists()  # nothing built before it is needed
    data = codec.compress(smooth_image(16, 16))
    fp = codec.fingerprint.hex()
    assert _cached(cache) == [f"16c-{fp}-g{GRAPH_VERSION}.encoder.onnx"]
    codec.decompress(data)
    assert len(_cached(cache)) == 2
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    again = Codec("16c", runtime="onnx")
    assert again.compress(smooth_image(16, 16)) == data
    again.decompress(data)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # reused, not rebuilt
    other = Codec("32c", runtime="onnx")  # other weights, other files
    other.compress(smooth_image(16, 16))
    assert f"32c-{other.fingerprint.hex()}-g{GRAPH_VERSION}.encoder.onnx" in _cached(cache)


def test_damaged_or_unwritable_cache_is_rebuilt_or_skipped(presets, tmp_path, monkeypatch):
    image = smooth_image(16, 24)
    monkeypatch.setenv("L3IC_CACHE_DIR", str(tmp_path / "cache"))
    reference = Codec("16c", runtime="onnx").compress(image)
    (path,) = (tmp_path / "cache").iterdir()
    path.write_bytes(b"not an onnx graph")
    assert Codec("16c", runtime="onnx").compress(image) == reference
    assert path.stat().st_size > 1000  # written again, whole
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("L3IC_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    assert Codec("16c", runtime="onnx").compress(image) == reference


def test_openvino_keeps_its_compiled_models_beside_the_graphs(
    presets, tmp_path, monkeypatch, openvino_f32
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("L3IC_CACHE_DIR", str(cache))
    image = smooth_image(16, 24)
    codec = Codec("16c", runtime="openvino")
    data = codec.compress(image)
    stem = f"16c-{codec.fingerprint.hex()}-g{GRAPH_VERSION}.encoder"
    (blob,) = [p for p in cache.iterdir() if p.suffix == ".blob"]
    assert _cached(cache) == sorted([f"{stem}.onnx", blob.name])
    assert blob.name.startswith(f"{stem}.openvino-")
    image_back = codec.decompress(data)
    assert len(_cached(cache)) == 4
    stamps = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    again = Codec("16c", runtime="openvino")
    assert again.compress(image) == data and np.array_equal(again.decompress(data), image_back)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # imported, not rebuilt
    blob.write_bytes(b"not a compiled model")
    assert Codec("16c", runtime="openvino").compress(image) == data
    assert blob.stat().st_size > 100_000  # compiled again and written whole
    monkeypatch.setenv("L3IC_OPENVINO_PRECISION", "bf16")  # another precision, another blob
    bf16 = Codec("16c", runtime="openvino")
    bf16.decompress(bf16.compress(image))
    assert len([p for p in cache.iterdir() if p.suffix == ".blob"]) == 4  # two more, not one
    monkeypatch.setenv("L3IC_OPENVINO_PRECISION", "f16")
    with pytest.raises(L3ICError, match="OpenVINO precision must be bf16 or f32"):
        Codec("16c", runtime="openvino")


# Many fresh processes start at once with an empty cache and build the same graphs.
RACER = """
import sys, l3ic
import numpy as np
image = np.full((24, 32, 3), 90, np.uint8)
data = l3ic.compress(image, "16c")
sys.stdout.write(data.hex()[:64] + " " + str(l3ic.decompress(data).shape))
"""


@pytest.mark.parametrize("name", ["onnx", "openvino"])
def test_processes_racing_to_build_a_graph_all_succeed(presets, tmp_path, name):
    if name == "openvino":
        _openvino()
    cache = tmp_path / "cache"
    env = {**os.environ, "L3IC_MODELS_DIR": str(presets), "L3IC_CACHE_DIR": str(cache)}
    env["L3IC_RUNTIME"] = name
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1  # the same file everywhere
    graphs = [n for n in _cached(cache) if n.endswith(".onnx")]
    blobs = [n for n in _cached(cache) if n.endswith(".blob")]
    assert len(graphs) == 2 and all(n.endswith((".encoder.onnx", ".decoder.onnx")) for n in graphs)
    assert len(blobs) == (2 if name == "openvino" else 0)
    assert len(graphs) + len(blobs) == len(_cached(cache))  # no temporary files left
    import onnx

    for graph in graphs:  # whole graphs
        onnx.checker.check_model(onnx.load(cache / graph))
    if blobs:  # whole compiled models (imported in a fresh process, as users' workers do)
        check = (
            "import sys\nfrom l3ic.runtime import import_openvino\n"
            "core = import_openvino().Core()\n"
            "for p in sys.argv[1:]: core.import_model(open(p, 'rb').read(), 'CPU')"
        )
        subprocess.run([sys.executable, "-c", check, *(str(cache / b) for b in blobs)],
                       check=True, capture_output=True, timeout=120)  # fmt: skip


# Runs in a fresh interpreter: OpenVINO codecs made and freed, then a signal handled in Python.
SIGNAL_AFTER_OPENVINO = """
import gc, os, signal
import numpy as np
import l3ic
codecs = [l3ic.Codec("16c", runtime="openvino") for _ in range(2)]
for codec in codecs:
    codec.decompress(codec.compress(np.full((24, 32, 3), 90, np.uint8)))
del codecs, codec
gc.collect()
handled = []
signal.signal(signal.SIGUSR1, lambda *_: handled.append(True))
os.kill(os.getpid(), signal.SIGUSR1)
print(handled)
"""


def test_signals_are_handled_after_openvino_codecs_are_freed(presets, tmp_path):
    """OpenVINO's CPU plugin swaps the thread's signal stack; freed out of order, it left a freed
    one installed, and the next signal crashed the process (a torch DataLoader's SIGCHLD did)."""
    _openvino()
    env = {**os.environ, "L3IC_MODELS_DIR": str(presets), "L3IC_CACHE_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_OPENVINO], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (run.returncode, run.stdout.strip()) == (0, "[True]"), run.stderr[-2000:]


# Runs in a fresh interpreter with its own HOME: a compression on OpenVINO, then the tool that
# l3ic leaves out imported by the user.
OPENVINO_QUIET = """
import sys
from pathlib import Path
import numpy as np
import l3ic
l3ic.Codec("16c", runtime="openvino").compress(np.full((24, 32, 3), 90, np.uint8))
written = sorted(p.name for p in Path.home().glob("intel/*"))
loaded = "openvino.tools.ovc" in sys.modules
from openvino.tools.ovc import convert_model
print(written, loaded, callable(convert_model))
"""


def test_openvino_runs_without_its_telemetry(presets, tmp_path):
    """``import openvino`` imports its conversion tool, which sends a usage event to OpenVINO's
    telemetry and writes ~/intel/openvino_ga_cid and ~/intel/stats; l3ic does not load that tool
    (nothing under ~/intel), and the user can still import it."""
    _openvino()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "L3IC_MODELS_DIR": str(presets)}
    env.update(L3IC_CACHE_DIR=str(tmp_path / "cache"), L3IC_OPENVINO_PRECISION="f32")
    for name in ("CI", "TF_BUILD", "JENKINS_URL"):  # where OpenVINO's telemetry stays off anyway
        env.pop(name, None)
    run = subprocess.run([sys.executable, "-c", OPENVINO_QUIET], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (run.returncode, run.stdout.split()) == (0, ["[]", "False", "True"]), run.stderr[-2000:]


# Runs in a fresh interpreter: the default runtime compresses and decodes without Keras.
NO_KERAS = """
import json, sys
import numpy as np
import imageio.v3 as iio
import l3ic
image = np.asarray(iio.imread(sys.argv[1]))
data = l3ic.compress(image, "16c")
back = l3ic.decompress(data)
iio.imwrite("x.l3ic", image, preset="16c")
again = iio.imread("x.l3ic")
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules)
print(json.dumps({"shapes": [back.shape, again.shape], "heavy": heavy}))
"""


def test_default_runtime_imports_no_keras(presets, tmp_path):
    iio.imwrite(tmp_path / "a.png", smooth_image(24, 40))
    env = {**os.environ, "L3IC_MODELS_DIR": str(presets)}
    env.pop("L3IC_RUNTIME", None)
    out = subprocess.run(
        [sys.executable, "-c", NO_KERAS, str(tmp_path / "a.png")],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"shapes": [[24, 40, 3], [24, 40, 3]], "heavy": []}


def test_untrained_codec_on_onnx_matches_keras():
    keras_codec = untrained_codec(16, seed=3)
    onnx_codec = Codec.from_model(keras_codec.net.model, "t", {}, runtime="onnx")
    image = smooth_image(40, 56)
    _compare_latents(onnx_codec.encode_latent(image), keras_codec.encode_latent(image))


def test_threads_from_the_environment(presets, monkeypatch):
    image = smooth_image(16, 24)
    reference = Codec("16c", runtime="onnx").compress(image)
    monkeypatch.setenv("L3IC_THREADS", "1")
    assert Codec("16c", runtime="onnx").compress(image) == reference
    monkeypatch.setenv("L3IC_THREADS", "many")
    with pytest.raises(L3ICError, match="L3IC_THREADS must be a whole number"):
        Codec("16c", runtime="onnx").compress(image)


def test_cuda_provider_comes_first_where_onnxruntime_has_it(presets, monkeypatch):
    import onnxruntime

    assert Codec("16c", runtime="onnx").net.providers[-1] == "CPUExecutionProvider"
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: gpu)
    net = Codec("16c", runtime="onnx").net  # sessions are made at first use: none here
    assert net.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
