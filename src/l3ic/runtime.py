"""The runtimes that run a preset's network: ONNX Runtime, OpenVINO, and Keras (the reference).

All offer the same two calls on whole batches, so that ``codec.Codec`` tiles, pads, crops and
quantises the same way whichever runs:

- ``encode(x)``: x (B, H, W, 3) uint8, H and W multiples of 8 -> z (B, H/8, W/8, C) float32, the
  latent before quantisation (``codebook.quantize`` rounds it, at the file's scale);
- ``decode(y)``: y (B, h, w, C) float32, the dequantised latent q / s (``codebook.dequantize``)
  -> (B, 8h, 8w, 3) uint8.

``OnnxNet`` runs the graphs of ``onnx_graph`` on ONNX Runtime: the CPU provider, or the CUDA
provider first where ``onnxruntime-gpu`` offers it. The graphs are built from the preset's float16
weights at first use and cached on disk (``graph_cache``), one file per graph named by the
weights' fingerprint and ``graph_cache.GRAPH_VERSION``; a cached graph is written to a temporary
file and renamed, so processes racing to build the same graph each leave a whole file, and a
cache that cannot be written is skipped (the graph is built in memory every time). Only building
imports ``onnx``; a cached graph needs ``onnxruntime`` alone.

``OpenVinoNet`` runs the same ONNX graphs with OpenVINO (``pip install "l3ic[openvino]"``), in
bf16 where the CPU has AMX or AVX512-BF16 (``cpu.cpu_has_fast_bf16``) and in float32 elsewhere.
The compiled model is kept beside the graphs as OpenVINO's own blob (``export_model``), under a
name that also holds OpenVINO's version, the precision and the CPU's bf16 units, and written
like the graphs, through a temporary file and a rename (OpenVINO's ``CACHE_DIR`` writes its
blobs in place, so a worker starting beside another could read half a file).

``KerasNet`` wraps an ``L3ICModel`` (any Keras backend): the training path and the reference the
tests compare the others with. They agree on the latent but for values that sit on a rounding
boundary, where float sums in another order can round the other way (docs/runtimes.md has how
often over Kodak); in float32 their decoded images differ by at most 1 grey level.

Which runs: ``runtime=`` in the API and ``--runtime`` on the command line, else
``$L3IC_RUNTIME``, else ``DEFAULT_RUNTIME``, "auto": ``choose_auto`` picks OpenVINO where the CPU
does bf16 in hardware and OpenVINO is installed, else ONNX Runtime (measured: docs/runtimes.md).
``$L3IC_THREADS`` caps the threads of an ONNX Runtime or OpenVINO model (default: the runtime's,
one per physical core); data-loader workers that run one per core want 1.
``$L3IC_OPENVINO_PRECISION=f32`` keeps OpenVINO in float32 on a bf16 CPU.
"""

import functools
import hashlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

import numpy as np

from . import graph_cache
from .cpu import FAST_BF16_FLAGS, cpu_has_fast_bf16, cpu_model
from .errors import L3ICError

__all__ = [
    "RUNTIMES",
    "DEFAULT_RUNTIME",
    "resolve_runtime",
    "choose_auto",
    "OnnxNet",
    "OpenVinoNet",
    "import_openvino",
    "keep_last_convolution_f32",
    "KerasNet",
]

RUNTIMES = ("auto", "onnx", "openvino", "keras")
DEFAULT_RUNTIME = "auto"


def resolve_runtime(runtime: str | None = None) -> str:
    """The runtime that runs: ``runtime``, else ``$L3IC_RUNTIME``, else ``DEFAULT_RUNTIME``, with
    "auto" replaced by ``choose_auto``'s pick ("onnx", "openvino" or "keras"); L3ICError if
    unknown, or if "openvino" is asked for and not installed."""
    name = runtime or os.environ.get("L3IC_RUNTIME") or DEFAULT_RUNTIME
    if name not in RUNTIMES:
        raise L3ICError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")
    if name == "auto":
        return choose_auto()[0]
    if name == "openvino" and importlib.util.find_spec("openvino") is None:
        raise L3ICError(
            'the openvino runtime needs OpenVINO: pip install "l3ic[openvino]", or use the '
            "default runtime, auto"
        )
    return name


@functools.cache
def choose_auto() -> tuple[str, str]:
    """("openvino" or "onnx", why): what the "auto" runtime runs on this machine.

    OpenVINO in bf16 where the CPU has AMX or AVX512-BF16 and ``openvino`` is installed (on an
    AMX Xeon it ran the network 8-10x faster than ONNX Runtime); ONNX Runtime elsewhere: on a
    GPU with ``onnxruntime-gpu`` (its CUDA provider), and on CPUs without those units, where
    OpenVINO runs float32 at ONNX Runtime's speed (measured on an AMD EPYC: docs/runtimes.md).
    """
    flags = cpu_has_fast_bf16()
    if not flags:
        return "onnx", f"{cpu_model()} has no {' or '.join(FAST_BF16_FLAGS)}"
    if importlib.util.find_spec("openvino") is None:
        return "onnx", f"{cpu_model()} has {', '.join(flags)}, but OpenVINO is not installed"
    if _has_onnxruntime_gpu() and "CUDAExecutionProvider" in _providers():
        return "onnx", "ONNX Runtime has its CUDA provider"
    return "openvino", f"{cpu_model()} has {', '.join(flags)}: OpenVINO in bf16"


def _providers() -> list[str]:
    """ONNX Runtime providers: CUDA first when this onnxruntime has it, then the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _has_onnxruntime_gpu() -> bool:
    """Whether ``onnxruntime-gpu`` is installed (asked of the package metadata, so that the
    "auto" choice does not import ONNX Runtime, 0.2 s, only to learn that it has no GPU)."""
    from importlib import metadata

    try:
        metadata.distribution("onnxruntime-gpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def _threads() -> int:
    """``$L3IC_THREADS`` as a count of threads, 0 (the runtime's default) when unset."""
    text = os.environ.get("L3IC_THREADS", "")
    if not text:
        return 0
    if not text.isdigit() or int(text) < 1:
        raise L3ICError(f"L3IC_THREADS must be a whole number of threads, 1 or more, not {text!r}")
    return int(text)


class _Graphs:
    """The encoder and decoder ONNX graphs of some weights: the cached files where a ``key`` is
    given and the cache can be written, else built in memory.

    Args:
        arrays: the weights, {"encoder/e1/kernel": array, ...} (``presets.read_arrays``).
        num_channels: latent channels C.
        key: the stem of the cached files' names (preset and weights fingerprint), or None to
            build in memory and cache nothing.
    """

    def __init__(self, arrays: dict[str, np.ndarray], num_channels: int, key: str | None):
        self.arrays, self.num_channels, self.key = arrays, num_channels, key

    def path(self, part: str, suffix: str = ".onnx") -> Path | None:
        """Where the cached file of ``part`` ("encoder" or "decoder") lives (None: no cache)."""
        if self.key is None:
            return None
        return graph_cache.graph_path(self.key, part, suffix)

    def build(self, part: str) -> bytes:
        """The serialised graph of ``part``, built now and cached (where there is a key)."""
        from . import onnx_graph

        build = onnx_graph.build_encoder if part == "encoder" else onnx_graph.build_decoder
        graph = build(self.arrays, self.num_channels).SerializeToString()
        path = self.path(part)
        if path is not None:
            graph_cache.write(path, graph)
        return graph

    def load(self, part: str) -> bytes:
        """The serialised graph of ``part``: the cached file, else ``build``."""
        path = self.path(part)
        if path is not None and path.is_file():
            try:
                graph = path.read_bytes()
            except OSError:
                pass
            else:
                graph_cache.mark_used(path)
                return graph
        return self.build(part)


class OnnxNet:
    """A preset's encoder and decoder on ONNX Runtime.

    Args:
        arrays: the weights, {"encoder/e1/kernel": array, ...} (``presets.read_arrays``).
        num_channels: latent channels C.
        key: the stem of the cached graphs' file names (preset and weights fingerprint), or
            None to build the graphs in memory and cache nothing.

    Attributes:
        runtime: "onnx".
        num_channels: latent channels C.
        providers: the ONNX Runtime providers the sessions use.
    """

    runtime = "onnx"

    def __init__(self, arrays: dict[str, np.ndarray], num_channels: int, key: str | None):
        self.num_channels = num_channels
        self.providers = _providers()
        self._graphs = _Graphs(arrays, num_channels, key)
        self._sessions = {}

    def _session(self, part: str):
        """The InferenceSession of ``part`` ("encoder" or "decoder"), made at its first use:
        from the cached graph, else from one built now (and cached, unless ``key`` is None)."""
        if part in self._sessions:
            return self._sessions[part]
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.intra_op_num_threads = _threads()
        path = self._graphs.path(part)
        if path is not None and path.is_file():
            try:
                session = ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception:  # noqa: BLE001 - a damaged cached file (ORT's own types): rebuild
                pass
            else:
                graph_cache.mark_used(path)
                return self._sessions.setdefault(part, session)
        graph = self._graphs.build(part)
        session = ort.InferenceSession(graph, options, providers=self.providers)
        return self._sessions.setdefault(part, session)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x (B, H, W, 3) uint8, H and W multiples of 8 -> z (B, H/8, W/8, C) float32."""
        return self._session("encoder").run(None, {"x": x})[0]

    def decode(self, y: np.ndarray) -> np.ndarray:
        """y = q / s (B, h, w, C) float32 -> (B, 8h, 8w, 3) uint8."""
        return self._session("decoder").run(None, {"y": y})[0]


class OpenVinoNet:
    """A preset's encoder and decoder on OpenVINO's CPU plugin, from the same ONNX graphs.

    Args:
        arrays: the weights, {"encoder/e1/kernel": array, ...} (``presets.read_arrays``).
        num_channels: latent channels C.
        key: the stem of the cached files' names (preset and weights fingerprint), or None to
            build and compile in memory and cache nothing.
        precision: "bf16" or "f32", OpenVINO's ``INFERENCE_PRECISION_HINT``; default
            ``$L3IC_OPENVINO_PRECISION``, else bf16 where the CPU has AMX or AVX512-BF16, else
            f32. A CPU without bf16 units runs f32 whatever is asked (``precision`` then tells
            which ran, once a model is compiled).

    Attributes:
        runtime: "openvino".
        num_channels: latent channels C.
        precision: "bf16" or "f32": what is asked of OpenVINO until a model is compiled, then
            what OpenVINO reports it runs.
    """

    runtime = "openvino"

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        num_channels: int,
        key: str | None,
        precision: str | None = None,
    ):
        precision = precision or os.environ.get("L3IC_OPENVINO_PRECISION") or None
        if precision not in (None, "bf16", "f32"):
            raise L3ICError(f"the OpenVINO precision must be bf16 or f32, not {precision!r}")
        self.num_channels = num_channels
        self._asked = precision or ("bf16" if cpu_has_fast_bf16() else "f32")
        self.precision = self._asked
        self._graphs = _Graphs(arrays, num_channels, key)
        self._models, self._pid = {}, os.getpid()

    def _config(self) -> dict:
        config = {"INFERENCE_PRECISION_HINT": self._asked, "PERFORMANCE_HINT": "LATENCY"}
        if _threads():
            config["INFERENCE_NUM_THREADS"] = _threads()
        return config

    def _blob_path(self, part: str) -> Path | None:
        """The compiled model's cache file: OpenVINO's version, the asked precision, the threads
        and the CPU's bf16 units in its name, since a blob is only valid for those."""
        version = import_openvino().get_version()
        facts = f"{version} {self._asked} {_threads()} {cpu_has_fast_bf16()}"
        facts += " last convolution f32"  # what keep_last_convolution_f32 asks
        tag = hashlib.sha256(facts.encode()).hexdigest()[:12]
        return self._graphs.path(part, f".openvino-{tag}.blob")

    def _model(self, part: str):
        """The CompiledModel of ``part``, made at its first use (in this process): imported from
        the cached blob, else compiled from the graph and its blob cached."""
        if self._pid != os.getpid():  # forked: the parent's thread pools do not come along
            self._models, self._pid = {}, os.getpid()
        if part in self._models:
            return self._models[part]
        import io

        core = _openvino_core()
        config = self._config()
        blob = self._blob_path(part)
        model = None
        if blob is not None and blob.is_file():
            try:
                model = core.import_model(io.BytesIO(blob.read_bytes()), "CPU", config)
            except Exception:  # noqa: BLE001 - a damaged or foreign blob (OpenVINO's types)
                model = None
            else:
                graph_cache.mark_used(blob)
        if model is None:
            graph = core.read_model(self._graphs.load(part))
            if self._asked == "bf16":
                keep_last_convolution_f32(graph)
            model = core.compile_model(graph, "CPU", config)
            if blob is not None:
                stream = io.BytesIO()
                model.export_model(stream)
                graph_cache.write(blob, stream.getvalue())
        self.precision = model.get_property("INFERENCE_PRECISION_HINT").to_string()
        return self._models.setdefault(part, model)

    def _run(self, part: str, name: str, array: np.ndarray) -> np.ndarray:
        request = self._model(part).create_infer_request()  # one per call: thread-safe, ~20 us
        request.infer({name: array})
        return np.array(request.get_output_tensor(0).data, copy=True)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x (B, H, W, 3) uint8, H and W multiples of 8 -> z (B, H/8, W/8, C) float32."""
        return self._run("encoder", "x", x)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """y = q / s (B, h, w, C) float32 -> (B, 8h, 8w, 3) uint8."""
        return self._run("decoder", "y", y)


_OVC = "openvino.tools.ovc"
_OPENVINO_IMPORT = threading.Lock()


def import_openvino():
    """The ``openvino`` module, imported without its model-conversion tool ``openvino.tools.ovc``
    where l3ic is the first to import it.

    ``import openvino`` imports that tool (``openvino.convert_model``), and the tool, on import,
    sends a usage event to OpenVINO's telemetry unless the user has opted out
    (openvinotoolkit/openvino#23832, 2024-04; opt-out since #20290, 2023-10), writing a client
    id and a counter under ``~/intel``. l3ic only runs its own graphs and never converts a
    model, so it does not load the tool: no event, and 40-80 ms less import time. Afterwards
    ``openvino.tools.ovc`` imports as usual (``from openvino.tools.ovc import convert_model``);
    where ``openvino`` was imported before l3ic, it is returned as it is.
    """
    with _OPENVINO_IMPORT:  # one thread marks, imports and unmarks; the others wait
        if "openvino" not in sys.modules:
            sys.modules[_OVC] = None  # the import system's "not importable": openvino skips it
            try:
                import openvino
            finally:
                if sys.modules.get(_OVC, 0) is None:
                    del sys.modules[_OVC]
    import openvino  # waits, as any import does, for one that another thread is running

    return openvino


_CORE: dict[int, object] = {}  # {pid: openvino.Core}


def _openvino_core():
    """This process's one ``openvino.Core``, made at the first call and kept until exit.

    Each ``Core`` loads OpenVINO's CPU plugin anew, and the plugin (2026.4) installs a signal
    stack of its own on the calling thread, putting back the previous one when it is released.
    Plugins released in another order than they were made leave a freed signal stack installed,
    and the next signal handled on that thread crashes the process (seen as a SIGSEGV in
    Python's SIGCHLD handler once a torch ``DataLoader``'s workers exit). One Core, never freed,
    keeps that order. A forked child makes its own (the parent's thread pools do not come along).
    """
    openvino = import_openvino()
    pid = os.getpid()
    if pid not in _CORE:
        _CORE.clear()
        _CORE[pid] = openvino.Core()
    return _CORE[pid]


def keep_last_convolution_f32(model) -> str:
    """Asks OpenVINO to run the last convolution of ``model`` (an ``openvino.Model``) in float32
    under a bf16 precision hint; returns its name.

    OpenVINO's CPU plugin already keeps the steps after a graph's last convolution in float32
    (its "graph tail" rule), but the convolution itself would write bf16: 8 significant bits,
    which moves latent values across rounding boundaries (the encoder's ``e3``) and decoded
    pixels by up to half a grey level (the decoder's ``d3``). Emulated, that tail cost 64c 0.045
    dB PSNR on the Kodak crops, and 0.006 dB with it in float32 (docs/runtimes.md); the two
    convolutions hold about 2 % of the network's multiply-adds. The mark is OpenVINO's
    ``disable_fp16_compression`` runtime attribute, which the CPU plugin reads as "keep the
    original precision" for bf16 too.
    """
    convolutions = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    last = convolutions[-1]
    last.get_rt_info()["disable_fp16_compression_0"] = ""
    return last.get_friendly_name()


class KerasNet:
    """An ``L3ICModel``'s encoder and decoder on its Keras backend (the reference runtime).

    Args:
        model: the ``model.L3ICModel``.

    Attributes:
        runtime: "keras".
        model: the ``L3ICModel``.
    """

    runtime = "keras"

    def __init__(self, model):
        self.model = model
        self.num_channels = model.num_channels

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x (B, H, W, 3) uint8, H and W multiples of 8 -> z (B, H/8, W/8, C) float32."""
        import keras

        z = self.model.encoder(x.astype(np.float32) / 255.0, training=False)
        return keras.ops.convert_to_numpy(z).astype(np.float32)

    def decode(self, y: np.ndarray) -> np.ndarray:
        """y = q / s (B, h, w, C) float32 -> (B, 8h, 8w, 3) uint8."""
        import keras

        # The runtimes' contract carries q / s alone: a decoder told the scale (an experiment,
        # ``model.fold_scale``) decodes here as at s = 1.
        t = keras.ops.convert_to_numpy(self.model.decode(y))
        return np.round(np.clip(t, 0, 1) * 255).astype(np.uint8)
