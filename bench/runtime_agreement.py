"""How far the two runtimes of the network agree: ONNX Runtime against Keras, over a folder.

    python -m bench.runtime_agreement [FOLDER] [--presets 16c 32c 64c] [--json OUT.json]

For every image and preset: the latents both runtimes encode (how many values differ, by how
much, and whether the two .l3ic files are byte-identical), and the images both decode from the
same file, the Keras one (the largest grey-level difference and the share of differing
values). A latent value that lands on a rounding boundary can round the other way in the other
runtime, since their float sums run in another order; this counts how often that happens.
"""

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from l3ic import __version__
from l3ic.codec import Codec
from l3ic.image import list_images, read_image
from l3ic.presets import PRESETS

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", nargs="?", type=Path, default=KODAK)
    p.add_argument("--presets", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
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
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
