"""The l3ic encoder and decoder as ONNX graphs, built from a preset's weights with ``onnx.helper``.

The graphs compute what ``model.build_encoder`` / ``build_decoder`` compute (docs/architecture.md,
"Network"), plus the steps around the network that ``codec`` does in numpy for the Keras path,
so that a runtime takes and gives what ``codec`` stores: image bytes and the latent.

- encoder: x (B, H, W, 3) uint8, H and W multiples of 8 -> z (B, H/8, W/8, C) float32, the
  latent before quantisation (scaling to [-1, 1], the network, the latent scale); ``codec``
  rounds it (``codebook.quantize``), at the file's quantisation scale;
- decoder: y (B, h, w, C) float32, the dequantised latent q / s (``codebook.dequantize``) ->
  (B, 8h, 8w, 3) uint8 (the network, ``(t + 1) / 2`` clipped to [0, 1], times 255, rounded
  half to even, as ``np.round``).

Inside, tensors are NCHW (ONNX's convolution layout); the inputs and outputs stay NHWC, like the
Keras models'. Convolutions pad as Keras's ``padding="same"`` (``SAME_UPPER``: the odd pixel of
padding at the bottom and right), and depth-to-space uses ``DCR`` order, TensorFlow's.

Why build rather than export: the graph is ten convolutions and a handful of element-wise ops,
written here in ~100 lines with only ``onnx`` (no Keras, no TensorFlow, no tf2onnx, which the
base install does not have), from the float16 .npz the repository already ships, so no second
copy of the weights is stored. ``runtime`` builds each graph once per weights fingerprint (and
``graph_cache.GRAPH_VERSION``) and caches it on disk.

Weights come as {"encoder/e1/kernel": (kh, kw, in, out) array, "encoder/e1/bias": (out,), ...}
(``presets.read_arrays``); kernels are stored as float32 in the graph.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["build_encoder", "build_decoder", "OPSET"]

# Whoever changes what these graphs compute bumps graph_cache.GRAPH_VERSION, the cache key.
OPSET = 17
LEAKY_SLOPE = 0.2  # layers.LEAKY_SLOPE (that module imports Keras)


class _Graph:
    """Collects nodes and initializers; each method adds a node and returns its output name."""

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str):
        self.arrays, self.prefix = arrays, prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def conv(self, x: str, layer: str, stride: int = 1) -> str:
        """Keras Conv2D(padding="same") of weights ``prefix/layer/{kernel,bias}`` on NCHW x."""
        kernel = self.arrays[f"{self.prefix}/{layer}/kernel"]  # (kh, kw, in, out)
        bias = self.arrays[f"{self.prefix}/{layer}/bias"]
        w = self.const(f"{layer}.w", np.transpose(kernel, (3, 2, 0, 1)))  # (out, in, kh, kw)
        b = self.const(f"{layer}.b", bias)
        kh, kw = kernel.shape[:2]
        return self.op(
            "Conv", [x, w, b], layer, kernel_shape=[kh, kw], strides=[stride, stride],
            auto_pad="SAME_UPPER",
        )  # fmt: skip

    def lrelu(self, x: str) -> str:
        return self.op("LeakyRelu", [x], f"{x}.lrelu", alpha=LEAKY_SLOPE)

    def residual(self, a: str, block: str, pre_activation: bool = False) -> str:
        """``layers.ResidualBlock``: a + conv2(lrelu(conv1(lrelu(a) or a)))."""
        b = self.lrelu(a) if pre_activation else a
        b = self.lrelu(self.conv(b, f"{block}/conv1"))
        return self.op("Add", [a, self.conv(b, f"{block}/conv2")], block)

    def model(self, name: str, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="l3ic"
        )
        model.ir_version = 8  # ONNX Runtime reads IR 8 from version 1.14 on
        onnx.checker.check_model(model)
        return model


def _arrays32(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


def build_encoder(arrays: dict[str, np.ndarray], num_channels: int) -> onnx.ModelProto:
    """The encoder graph: x (B, H, W, 3) uint8 -> z (B, H/8, W/8, C) float32."""
    g = _Graph(_arrays32(arrays), "encoder")
    a = g.op("Transpose", ["x"], "x.nchw", perm=[0, 3, 1, 2])
    a = g.op("Cast", [a], "x.float", to=TensorProto.FLOAT)
    a = g.op("Div", [a, g.const("c255", 255.0)], "x.unit")  # codec: x / 255
    a = g.op("Mul", [a, g.const("c2", 2.0)], "x.times2")  # Rescaling(2, offset=-1)
    a = g.op("Sub", [a, g.const("c1", 1.0)], "to_signed")
    a = g.lrelu(g.conv(a, "e1", stride=2))
    a = g.conv(a, "e2", stride=2)
    a = g.residual(a, "r1", pre_activation=True)
    a = g.residual(a, "r2")
    a = g.residual(a, "r3")
    a = g.conv(a, "e3", stride=2)
    a = g.op("Mul", [a, g.const("scale.w", g.arrays["encoder/scale/scale"])], "scale")
    g.op("Transpose", [a], "z", perm=[0, 2, 3, 1])
    return g.model(
        "l3ic_encoder",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["B", "H", "W", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["B", "h", "w", num_channels])],
    )


def build_decoder(arrays: dict[str, np.ndarray], num_channels: int) -> onnx.ModelProto:
    """The decoder graph: y (B, h, w, C) float32 -> x (B, 8h, 8w, 3) uint8."""
    g = _Graph(_arrays32(arrays), "decoder")
    a = g.op("Transpose", ["y"], "y.nchw", perm=[0, 3, 1, 2])
    a = g.op("DepthToSpace", [g.conv(a, "d1")], "p1", blocksize=2, mode="DCR")
    a = g.residual(a, "r4")
    a = g.residual(a, "r5")
    a = g.residual(a, "r6")
    a = g.lrelu(g.conv(a, "d2"))
    a = g.op("DepthToSpace", [a], "p2", blocksize=2, mode="DCR")
    a = g.op("DepthToSpace", [g.conv(a, "d3")], "p3", blocksize=2, mode="DCR")
    a = g.op("Add", [a, g.const("one", 1.0)], "t.plus1")  # layers.ClipToUnit: (t + 1) / 2
    a = g.op("Div", [a, g.const("two", 2.0)], "t.half")
    a = g.op("Clip", [a, g.const("zero", 0.0), g.const("unit", 1.0)], "x.unit")
    a = g.op("Mul", [a, g.const("c255", 255.0)], "x.255")  # codec: round(clip(t) * 255)
    a = g.op("Round", [a], "x.round")
    a = g.op("Cast", [a], "x.uint8", to=TensorProto.UINT8)
    g.op("Transpose", [a], "x", perm=[0, 2, 3, 1])
    return g.model(
        "l3ic_decoder",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "h", "w", num_channels])],
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["B", "H", "W", 3])],
    )
