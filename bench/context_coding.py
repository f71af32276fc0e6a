"""Format version 4 (the context mode) against version 3: bytes and entropy-decoding time.

    python -m bench.context_coding ../shared/data/kodak-crop512 --preset 32c [--json FILE]

Each image is encoded once; its latent is packed as version 3 and as version 4 (the same
latent: the files must decode to it bit for bit, which is checked), and both files are timed
decoding all channels, best of ``--repeat``, by the compiled reader (the default) and by the
Python reader (constriction), all in this one process. Prints the means and ratios.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import l3ic
from l3ic.image import list_images, read_image
from l3ic.latent_coder import LatentCoder
from l3ic.presets import PRESETS


def _coders(codec: "l3ic.Codec") -> dict[int, LatentCoder]:
    """The preset's coder, writing version 3 and version 4."""
    if codec.coder.context_tables is None:
        sys.exit(f"preset {codec.preset} has no context tables (l3ic train contexts)")
    return {version: codec.coder.writing(version) for version in (3, 4)}


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(coders: dict[int, LatentCoder], q: np.ndarray, shape, repeat: int) -> dict:
    """Bytes and decoding seconds of one latent (h, w, C) as version 3 and version 4."""
    row = {"symbols": int(q.size)}
    for version, coder in coders.items():
        data = coder.pack(q, shape)
        fast = coder.read_compiled(data)
        if fast is None or not np.array_equal(fast[0], q):
            raise SystemExit(f"version {version}: the compiled reader did not give the latent")
        compiled, coder.compiled = coder.compiled, None
        try:
            if not np.array_equal(coder.read(data)[0], q):
                raise SystemExit(f"version {version}: the Python reader did not give the latent")
            row[f"v{version}_python_s"] = _best(lambda d=data, c=coder: c.read(d), repeat)
        finally:
            coder.compiled = compiled
        row[f"v{version}_bytes"] = len(data)
        row[f"v{version}_compiled_s"] = _best(lambda d=data, c=coder: c.read_compiled(d), repeat)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("folder", type=Path)
    p.add_argument("--preset", choices=list(PRESETS), default="32c")
    p.add_argument("--repeat", type=int, default=5, help="timing runs per file (best kept)")
    p.add_argument("--json", type=Path, help="write per-image and mean results here")
    args = p.parse_args(argv)
    codec = l3ic.Codec(args.preset)
    coders = _coders(codec)
    rows = {}
    for f in tqdm(list_images(args.folder), file=sys.stderr):
        image = read_image(f)
        rows[f.name] = measure(coders, codec.encode_latent(image), image.shape[:2], args.repeat)
    total = {k: float(sum(r[k] for r in rows.values())) for k in next(iter(rows.values()))}
    summary = {
        "images": len(rows),
        "v3_bytes": total["v3_bytes"],
        "v4_bytes": total["v4_bytes"],
        "v4_over_v3_bytes": total["v4_bytes"] / total["v3_bytes"],
        "images_bigger_in_v4": sum(r["v4_bytes"] > r["v3_bytes"] for r in rows.values()),
        "largest_v4_over_v3": max(r["v4_bytes"] / r["v3_bytes"] for r in rows.values()),
    }
    for reader in ("compiled", "python"):
        for version in (3, 4):
            key = f"v{version}_{reader}_s"
            summary[f"v{version}_{reader}_ns_per_symbol"] = 1e9 * total[key] / total["symbols"]
        summary[f"v4_over_v3_{reader}_time"] = total[f"v4_{reader}_s"] / total[f"v3_{reader}_s"]
    print(f"{args.folder} ({len(rows)} images), preset {args.preset}:")
    for k, v in summary.items():
        print(f"  {k:32} {v:12.4f}" if isinstance(v, float) else f"  {k:32} {v:12}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {"preset": args.preset, "folder": str(args.folder), "summary": summary}
        args.json.write_text(json.dumps({**result, "images": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
