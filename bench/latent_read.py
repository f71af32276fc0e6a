"""Cost of reading a latent in a fresh process: ``import l3ic; l3ic.read_latent(data)``.

    python -m bench.latent_read [IMAGE] [-m 32c] [--runs 5] [--json OUT.json]

A data-loader worker that only wants latent channels starts a process, imports l3ic and reads
latents. This runs that, ``--runs`` times, each in a new interpreter, and reports the median
wall time from before ``import l3ic`` to after the read, the peak resident memory of the process
(``VmHWM`` of /proc/self/status: Linux only), and whether ``keras`` or ``tensorflow`` were
imported. As a reference on the same machine in the same run it times ``python -c "import
numpy"``, so the figure to compare across machines is the ratio, not the seconds.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import l3ic
from l3ic.image import read_image

# Runs in the fresh process: reads the file, then reports time, memory and heavy imports.
_CHILD = """
import sys, time, json
t0 = time.perf_counter()
{body}
seconds = time.perf_counter() - t0
# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, from fork)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
rss = int(hwm.split()[1]) / 1024  # kB -> MiB
heavy = sorted(m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules)
print(json.dumps({{"seconds": seconds, "peak_mib": rss, "imported": heavy}}))
"""

_READ = """
import l3ic
latent, meta = l3ic.read_latent(open({path!r}, "rb").read(), channels=[0, 1, 2])
assert latent.shape[2] == 3
"""


def _run(body: str, runs: int) -> dict:
    rows = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD.format(body=body)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in rows),
        "peak_mib": statistics.median(r["peak_mib"] for r in rows),
        "imported": rows[-1]["imported"],
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sample = Path(l3ic.__file__).parent / "samples" / "astronaut.png"
    p.add_argument("image", nargs="?", type=Path, default=sample)
    p.add_argument("-m", "--preset", default="32c")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.l3ic"
        path.write_bytes(l3ic.compress(read_image(args.image), args.preset))
        reference = _run("import numpy", args.runs)
        read = _run(_READ.format(path=str(path)), args.runs)
    result = {
        "l3ic": l3ic.__version__,
        "preset": args.preset,
        "image": args.image.name,
        "import_numpy": reference,
        "read_latent": read,
        "time_ratio": read["seconds"] / reference["seconds"],
        "memory_ratio": read["peak_mib"] / reference["peak_mib"],
    }
    print(
        f"import numpy: {reference['seconds']:.3f} s, {reference['peak_mib']:.0f} MiB; "
        f"import l3ic + read_latent: {read['seconds']:.3f} s, {read['peak_mib']:.0f} MiB "
        f"({result['time_ratio']:.1f}x the time, {result['memory_ratio']:.1f}x the memory); "
        f"imported: {', '.join(read['imported']) or 'none of keras, tensorflow, torch, jax'}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
