"""The runtimes that run a preset's network: ONNX Runtime (the default) and Keras (the reference).

Both offer the same two calls on whole batches, integers in and integers out, so that
``codec.Codec`` tiles, pads and crops the same way whichever runs:

- ``encode(x)``: x (B, H, W, 3) uint8, H and W multiples of 8 -> (B, H/8, W/8, C) int8, -15..16;
- ``decode(q)``: q (B, h, w, C) int8 -> (B, 8h, 8w, 3) uint8.

``OnnxNet`` runs the graphs of ``onnx_graph`` on ONNX Runtime: the CPU provider, or the CUDA
provider first where ``onnxruntime-gpu`` offers it. The graphs are built from the preset's float16
weights at first use and cached on disk (``graph_cache_dir()``), one file per graph named by the
weights' fingerprint and ``GRAPH_VERSION``; a cached graph is written to a temporary
file and renamed, so processes racing to build the same graph each leave a whole file, and a
cache that cannot be written is skipped (the graph is built in memory every time). Only building
imports ``onnx``; a cached graph needs ``onnxruntime`` alone.

``KerasNet`` wraps an ``L3ICModel`` (any Keras backend): the training path and the reference the
tests compare ONNX Runtime with. The two agree on the latent but for values that sit on a rounding
boundary, where float sums in another order can round the other way (docs/runtimes.md has how
often over Kodak), and their decoded images differ by at most 1 grey level.

Which runs: ``runtime=`` ("onnx" or "keras") in the API and ``--runtime`` on the command line,
else ``$L3IC_RUNTIME``, else ``DEFAULT_RUNTIME``. ``$L3IC_THREADS`` caps the threads of an ONNX
Runtime session (default: ONNX Runtime's, one per physical core); data-loader workers that run
one per core want 1.
"""

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import L3ICError

__all__ = [
    "RUNTIMES",
    "DEFAULT_RUNTIME",
    "resolve_runtime",
    "GRAPH_VERSION",
    "graph_cache_dir",
    "OnnxNet",
    "KerasNet",
]

RUNTIMES = ("onnx", "keras")
DEFAULT_RUNTIME = "onnx"
# Part of the cache key of built graphs: bump it whenever onnx_graph's graphs change, so that no
# graph cached by an older l3ic is reused. (Here, not in onnx_graph: importing onnx takes 0.15 s.)
GRAPH_VERSION = 1


def resolve_runtime(runtime: str | None = None) -> str:
    """``runtime``, else ``$L3IC_RUNTIME``, else ``DEFAULT_RUNTIME``; L3ICError if unknown."""
    name = runtime or os.environ.get("L3IC_RUNTIME") or DEFAULT_RUNTIME
    if name not in RUNTIMES:
        raise L3ICError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")
    return name


def graph_cache_dir() -> Path:
    """Where built ONNX graphs are kept: ``$L3IC_CACHE_DIR``, else ``$XDG_CACHE_HOME/l3ic``, else
    ``~/.cache/l3ic``."""
    if os.environ.get("L3IC_CACHE_DIR"):
        return Path(os.environ["L3IC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "l3ic"


def _providers() -> list[str]:
    """ONNX Runtime providers: CUDA first when this onnxruntime has it, then the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _threads() -> int:
    """``$L3IC_THREADS`` as a count of threads, 0 (ONNX Runtime's default) when unset."""
    text = os.environ.get("L3IC_THREADS", "")
    if not text:
        return 0
    if not text.isdigit() or int(text) < 1:
        raise L3ICError(f"L3IC_THREADS must be a whole number of threads, 1 or more, not {text!r}")
    return int(text)


class OnnxNet:
    """A preset's encoder and decoder on ONNX Runtime.

    Args:
        arrays: the weights, {"encoder/e1/kernel": array, ...} (``presets.read_arrays``).
        channels: latent channels C.
        key: the stem of the cached graphs' file names (preset and weights fingerprint), or
            None to build the graphs in memory and cache nothing.

    Attributes:
        runtime: "onnx".
        channels: latent channels C.
        providers: the ONNX Runtime providers the sessions use.
    """

    runtime = "onnx"

    def __init__(self, arrays: dict[str, np.ndarray], channels: int, key: str | None):
        self.channels = channels
        self.providers = _providers()
        self._arrays, self._key = arrays, key
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
        path = None
        if self._key is not None:
            path = graph_cache_dir() / f"{self._key}-g{GRAPH_VERSION}.{part}.onnx"
        if path is not None and path.is_file():
            try:
                session = ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception:  # noqa: BLE001 - a damaged cached file (ORT's own types): rebuild
                pass
            else:
                return self._sessions.setdefault(part, session)
        from . import onnx_graph

        build = onnx_graph.build_encoder if part == "encoder" else onnx_graph.build_decoder
        graph = build(self._arrays, self.channels).SerializeToString()
        if path is not None:
            _write_cached(path, graph)
        session = ort.InferenceSession(graph, options, providers=self.providers)
        return self._sessions.setdefault(part, session)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x (B, H, W, 3) uint8, H and W multiples of 8 -> (B, H/8, W/8, C) int8."""
        return self._session("encoder").run(None, {"x": x})[0]

    def decode(self, q: np.ndarray) -> np.ndarray:
        """q (B, h, w, C) int8 -> (B, 8h, 8w, 3) uint8."""
        return self._session("decoder").run(None, {"q": q})[0]


def _write_cached(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename; skips an unwritable
    cache (the caller uses ``data`` from memory)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


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
        self.channels = model.channels

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x (B, H, W, 3) uint8, H and W multiples of 8 -> (B, H/8, W/8, C) int8."""
        import keras

        z = self.model.encoder(x.astype(np.float32) / 255.0, training=False)
        return keras.ops.convert_to_numpy(self.model.quantizer(z)).astype(np.int8)

    def decode(self, q: np.ndarray) -> np.ndarray:
        """q (B, h, w, C) int8 -> (B, 8h, 8w, 3) uint8."""
        import keras

        t = keras.ops.convert_to_numpy(self.model.decoder(q.astype(np.float32), training=False))
        return np.round(np.clip(t, 0, 1) * 255).astype(np.uint8)
