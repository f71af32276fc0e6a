"""How far the runtimes of the network agree, over a folder of images.

    python -m bench.runtime_agreement [FOLDER] [--presets 16c 32c 64c] [--json OUT.json]
    python -m bench.runtime_agreement --pair bf16 [FOLDER ...] [--json OUT.json]

``--pair keras`` (the default): ONNX Runtime against Keras, both float32. For every image and
preset: the latents both runtimes encode (how many values differ, by how much, and whether the
two .l3ic files are byte-identical), and the images both decode from the same file, the Keras
one (the largest grey-level difference and the share of differing values). A latent value that
lands on a rounding boundary can round the other way in the other runtime, since their float
sums run in another order; this counts how often that happens.

``--pair bf16``: the network in bf16 against float32 (ONNX Runtime), as users see it: each image
compressed and decompressed by each, with the PSNR, SSIM and MS-SSIM of both against the original,
the bpp of both files, the share of latent values that differ, and the grey levels by which the two
decodings of one file differ. bf16 is OpenVINO's ``INFERENCE_PRECISION_HINT`` bf16 where the CPU has
AMX or AVX512-BF16. Elsewhere OpenVINO runs float32 whatever it is asked, so bf16 is emulated
instead (labelled "emulated" in the output): the same ONNX graph on ONNX Runtime with the weights of
every convolution but the last rounded to bf16, and every float tensor from the first convolution up
to the last rounded to bf16 (round to nearest even, through a pair of Casts), so those convolutions
see bf16 inputs and weights and sum in float32, as the CPU's bf16 units do; the last convolution and
the steps after it stay float32, as l3ic asks OpenVINO (``runtime.keep_last_convolution_f32``). It
is an estimate, not OpenVINO itself, whose kernels order their sums otherwise; the real figures come
from running this on a bf16 CPU. ``--json`` merges the figures into the file under "bf16".
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from l3ic import __version__, metrics
from l3ic.codec import Codec
from l3ic.cpu import cpu_has_fast_bf16, cpu_model
from l3ic.image import list_images, read_image
from l3ic.presets import PRESETS, read_arrays, weights_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KODAK = DATA / "kodak"


def agreement(folder: Path, preset: str) -> dict:
    """The figures of one preset over the images of ``folder``."""
    onnx, keras = Codec(preset, runtime="onnx"), Codec(preset, runtime="keras")
    values = flips = identical = grey_max = grey_diff = pixels = worst = 0
    paths = list_images(folder)
    for path in paths:
        image = read_image(path)
        q_onnx, q_keras = onnx.encode_latent(image), keras.encode_latent(image)
        diff = np.abs(q_onnx.astype(np.int16) - q_keras)
        values += diff.size
        flips += int(np.count_nonzero(diff))
        worst = max(worst, int(diff.max()))
        data = keras.coder.pack(q_keras, image.shape[:2])
        identical += onnx.coder.pack(q_onnx, image.shape[:2]) == data
        grey = np.abs(onnx.decompress(data).astype(np.int16) - keras.decompress(data))
        grey_max = max(grey_max, int(grey.max()))
        grey_diff += int(np.count_nonzero(grey))
        pixels += grey.size
    return {
        "images": len(paths),
        "latent_values": values,
        "latent_values_differing": flips,
        "latent_largest_difference": worst,
        "files_identical": int(identical),
        "decoded_largest_grey_difference": grey_max,
        "decoded_values_differing_fraction": grey_diff / pixels,
    }


def _bf16(a: np.ndarray) -> np.ndarray:
    """float32 ``a`` rounded to the nearest bf16 (ties to even), as float32."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def _bf16_graph(graph):
    """The ONNX ``graph`` rounded as OpenVINO runs it under a bf16 hint with l3ic's settings:
    every convolution but the last with weights rounded to bf16, and a Cast to bf16 and back
    after every float node from the first convolution up to the last convolution, which runs in
    float32 with everything after it (``runtime.keep_last_convolution_f32``, and OpenVINO's
    rule of keeping a graph's tail after its last convolution in float32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    convolutions = [node for node in graph.graph.node if node.op_type == "Conv"]
    last = convolutions[-1]
    kernels = {node.input[1] for node in convolutions if node is not last}
    for init in graph.graph.initializer:
        if init.name in kernels:
            init.CopyFrom(numpy_helper.from_array(_bf16(numpy_helper.to_array(init)), init.name))
    started = ended = False
    out = []
    float_ops = {"Conv", "LeakyRelu", "Add", "Mul", "Div", "DepthToSpace", "Clip"}
    for node in graph.graph.node:
        started = started or node.op_type == "Conv"
        ended = ended or node is last
        if not started or ended or node.op_type not in float_ops:
            out.append(node)
            continue
        name = node.output[0]
        node.output[0] = f"{name}.f32"
        out += [
            node,
            helper.make_node("Cast", [f"{name}.f32"], [f"{name}.bf16"], to=TensorProto.BFLOAT16),
            helper.make_node("Cast", [f"{name}.bf16"], [name], to=TensorProto.FLOAT),
        ]
    del graph.graph.node[:]
    graph.graph.node.extend(out)
    onnx.checker.check_model(graph)
    return graph


class EmulatedBf16Net:
    """The runtime contract of ``l3ic.runtime`` (``encode``, ``decode``) on ONNX Runtime, with
    the graphs rounded to bf16 by ``_bf16_graph``."""

    runtime, precision = "onnx", "bf16 (emulated)"

    def __init__(self, preset: str, num_channels: int):
        import onnxruntime as ort

        from l3ic import onnx_graph

        arrays = read_arrays(weights_path(preset))
        self.num_channels, self._sessions = num_channels, {}
        for part, build in (("x", onnx_graph.build_encoder), ("y", onnx_graph.build_decoder)):
            graph = _bf16_graph(build(arrays, num_channels)).SerializeToString()
            self._sessions[part] = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x (B, H, W, 3) uint8 -> z (B, H/8, W/8, C) float32."""
        return self._sessions["x"].run(None, {"x": x})[0]

    def decode(self, y: np.ndarray) -> np.ndarray:
        """y = q / s (B, h, w, C) float32 -> (B, 8h, 8w, 3) uint8."""
        return self._sessions["y"].run(None, {"y": y})[0]


def bf16_codec(preset: str) -> tuple[Codec, str]:
    """A codec running the network in bf16, and how: OpenVINO where the CPU has bf16 units and
    OpenVINO is installed, else ``EmulatedBf16Net``."""
    import importlib.util

    if cpu_has_fast_bf16() and importlib.util.find_spec("openvino"):
        from l3ic.runtime import OpenVinoNet

        codec = Codec(preset, runtime="openvino")
        codec.net = OpenVinoNet(
            read_arrays(weights_path(preset)), codec.num_channels, key=None, precision="bf16"
        )
        from l3ic.runtime import import_openvino

        return codec, f"OpenVINO {import_openvino().get_version().split('-')[0]} bf16"
    codec = Codec(preset, runtime="onnx")
    codec.net = EmulatedBf16Net(preset, codec.num_channels)
    return codec, "emulated (bf16-rounded graph on ONNX Runtime)"


def bf16_agreement(folder: Path, preset: str) -> dict:
    """bf16 against float32 for one preset over the images of ``folder``."""
    f32 = Codec(preset, runtime="onnx")
    bf16, how = bf16_codec(preset)
    sums = {k: 0.0 for k in ("psnr", "ssim", "ms_ssim", "bpp")}
    sums = {"f32": dict(sums), "bf16": dict(sums)}
    values = flips = grey_max = grey_sum = pixels = 0
    paths = list_images(folder)
    for path in paths:
        image = read_image(path)
        for name, codec in (("f32", f32), ("bf16", bf16)):
            data = codec.compress(image)
            back = codec.decompress(data)
            scores = sums[name]
            scores["psnr"] += metrics.psnr(image, back)
            scores["ssim"] += metrics.ssim(image, back)
            scores["ms_ssim"] += metrics.ms_ssim(image, back)
            scores["bpp"] += metrics.bpp(len(data), *image.shape[:2])
            if name == "f32":
                q_f32, file_f32 = codec.encode_latent(image), data
        q_bf16 = bf16.encode_latent(image)
        values += q_f32.size
        flips += int(np.count_nonzero(q_f32 != q_bf16))
        grey = np.abs(bf16.decompress(file_f32).astype(np.int16) - f32.decompress(file_f32))
        grey_max, grey_sum = max(grey_max, int(grey.max())), grey_sum + int(grey.sum())
        pixels += grey.size
    means = {name: {k: v / len(paths) for k, v in d.items()} for name, d in sums.items()}
    return {
        "bf16": how,
        "images": len(paths),
        "f32": means["f32"],
        "bf16_means": means["bf16"],
        "psnr_loss_db": means["f32"]["psnr"] - means["bf16"]["psnr"],
        "ssim_loss": means["f32"]["ssim"] - means["bf16"]["ssim"],
        "latent_values_differing_fraction": flips / values,
        "decoded_mean_grey_difference": grey_sum / pixels,
        "decoded_largest_grey_difference": grey_max,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folders", nargs="*", type=Path, help="image folders (default: Kodak; with "
                   "--pair bf16, the Kodak 512 crops and Kodak)")  # fmt: skip
    p.add_argument("--pair", choices=("keras", "bf16"), default="keras")
    p.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    if args.pair == "bf16":
        return bf16_main(args)
    args.folder = args.folders[0] if args.folders else KODAK
    import keras
    import onnxruntime

    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "l3ic": __version__,
        "folder": args.folder.name,
        "runtimes": {
            "onnx": f"onnxruntime {onnxruntime.__version__}",
            "keras": f"keras {keras.__version__} ({keras.backend.backend()})",
        },
        "presets": {},
    }
    for preset in args.presets:
        result["presets"][preset] = figures = agreement(args.folder, preset)
        print(preset, json.dumps(figures), file=sys.stderr)
    if args.json and args.json.is_file():  # keep the bf16 figures of --pair bf16
        bf16 = json.loads(args.json.read_text()).get("bf16")
        result.update({"bf16": bf16} if bf16 else {})
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


def bf16_main(args: argparse.Namespace) -> int:
    """``--pair bf16``: the figures per folder and preset, merged into ``--json`` under "bf16"."""
    import onnxruntime

    folders = args.folders or [DATA / "kodak-crop512", KODAK]
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "l3ic": __version__,
        "cpu": cpu_model(),
        "cpu_bf16_units": cpu_has_fast_bf16(),
        "f32": f"onnxruntime {onnxruntime.__version__}",
        "folders": {},
    }
    for folder in folders:
        result["folders"][folder.name] = per_preset = {}
        for preset in args.presets:
            per_preset[preset] = figures = bf16_agreement(folder, preset)
            print(folder.name, preset, json.dumps(figures), file=sys.stderr)
    if args.json:
        doc = json.loads(args.json.read_text()) if args.json.is_file() else {}
        doc["bf16"] = result
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
