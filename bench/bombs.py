"""Decompression bombs: what the worst files per input byte cost to decode, at the default limit.

    python -m bench.bombs [--json bench/results/bombs.json]

A file whose channels are all constant holds a few dozen bytes whatever size it declares, so it
is the worst input per byte: every pixel it declares is computed by the decoder network. Each
case is such a file (``container`` only, no network to make it) declaring as many pixels as the
default limit allows (``container.DEFAULT_MAX_PIXELS``, counted padded to multiples of 8), and
is decoded by ``l3ic decompress`` in a child process: wall seconds and the child's peak memory
(``ru_maxrss``), per input byte. Shapes: square-ish, and the thinnest a side allows (long
strips cost more per pixel: each tile of 512 pixels carries its margins).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from l3ic import channel_modes, container
from l3ic.latent_coder import get_coder

CASES = [("16c", 8192, 4096), ("64c", 8192, 4096), ("16c", 1 << 20, 32), ("16c", 32, 1 << 20)]


def constant_file(preset: str, width: int, height: int) -> bytes:
    """A valid .l3ic file of ``preset`` declaring width x height, every channel constant."""
    coder = get_coder(preset)
    codes = [channel_modes.ChannelCode(channel_modes.CONSTANT, symbol=15)] * coder.num_channels
    shape = (-(-height // 8), -(-width // 8), coder.num_channels)
    c = container.Container(preset, coder.fingerprint, width, height, False, shape, codes)
    c.channel_order, c.tables_id = coder.channel_order.tolist(), coder.tables_id
    return container.pack(c)


CHILD = """
import resource, sys
from l3ic.cli import main
code = main(["decompress", sys.argv[1], "-o", sys.argv[2]])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def decode_cost(path: Path, out: Path) -> dict:
    """Seconds and peak memory (the child's own ``ru_maxrss``) of ``l3ic decompress path -o
    out`` in a child process."""
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(out)], capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{path.name}: {run.stderr.strip()}")
    return {"seconds": seconds, "peak_mb": int(run.stderr.split()[-1]) / 1024}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset, width, height in CASES:
            data = constant_file(preset, width, height)
            path = Path(tmp, f"bomb-{preset}-{width}x{height}.l3ic")
            path.write_bytes(data)
            out = Path(tmp, f"out-{preset}-{width}x{height}.png")
            cost = decode_cost(path, out)
            out.unlink()
            row = {"preset": preset, "width": width, "height": height, "bytes": len(data),
                   "pixels": container.coded_pixels(width, height), **cost}  # fmt: skip
            row["seconds_per_byte"] = row["seconds"] / len(data)
            row["mb_per_byte"] = row["peak_mb"] / len(data)
            rows.append(row)
            print(f"{preset} {width}x{height}: {len(data)} bytes, {cost['seconds']:.1f} s, "
                  f"peak {cost['peak_mb']:.0f} MB", flush=True)  # fmt: skip
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "limit": container.DEFAULT_MAX_PIXELS,
        "cases": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
