"""Container overhead: header + table bytes of real .l3ic files, as a share of the file.

    python -m bench.overhead ../shared/data/kodak --preset 16c [--json bench/results/overhead.json]

For each image: file bytes, header bytes (everything but the streams and the final CRC), the
part of the header taken by per-channel tables, the fixed CRC, and how many channels used each
mode (constant / prior / table / context). Prints the per-set means.
"""

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

import l3ic
from l3ic import channel_modes, container, entropy
from l3ic.image import list_images, read_image
from l3ic.presets import PRESETS


def measure(codec: "l3ic.Codec", image: np.ndarray) -> dict:
    """Byte accounting of one compressed image."""
    data = codec.compress(image)
    c = container.parse(data)
    streams = sum(c.stream_lengths)
    tables = sum(len(entropy.pack_table(code.table)) for code in c.codes if code.table is not None)
    modes = collections.Counter(code.kind.name for code in c.codes)
    pixels = c.width * c.height
    header = len(data) - streams - 4
    return {
        "bytes": len(data),
        "bpp": 8 * len(data) / pixels,
        "header_bytes": header,
        "table_bytes": tables,
        "overhead_bytes": header + 4,
        "overhead_share": (header + 4) / len(data),
        "overhead_bpp": 8 * (header + 4) / pixels,
        **{f"{mode.name}_channels": modes[mode.name] for mode in channel_modes.MODES.values()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", type=Path)
    p.add_argument("--preset", "--model", dest="preset", choices=list(PRESETS), default="16c")
    p.add_argument("--json", type=Path, help="write per-image and mean results here")
    args = p.parse_args(argv)
    codec = l3ic.Codec(args.preset)
    files = list_images(args.folder)
    rows = {f.name: measure(codec, read_image(f)) for f in tqdm(files, file=sys.stderr)}
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
    print(f"{args.folder} ({len(rows)} images), preset {args.preset}:")
    for k, v in mean.items():
        print(f"  {k:18} {v:10.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"preset": args.preset, "mean": mean, "images": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
