"""Two or more l3ic installs side by side: installed size, and whole-process compress/decompress.

    python -m bench.installs LABEL=PYTHON [LABEL=PYTHON ...] [-m 32c] [--runs 5] [--json OUT]

Each ``PYTHON`` is the interpreter of a virtual environment holding one l3ic install (e.g. the
previous release and this one, each installed with its dependencies into a fresh venv). For each,
in one run on this machine: the size of its site-packages (MiB, every file counted) and its
number of distributions, and ``bench.speed.whole_process``: ``l3ic compress -m PRESET`` of
``kodim23.png`` (768x512) and ``l3ic decompress`` of the result, each in ``--runs`` fresh processes
after one warm-up, median wall time and peak memory (VmHWM). The install runs with its default
runtime (``$L3IC_RUNTIME`` unset). Stop other jobs while it runs (the times are wall times).

Example (docs/runtimes.md):
  python -m bench.installs 0.4.0=/tmp/size-before/bin/python 0.5.0=/tmp/size-after/bin/python
"""

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.report import machine
from bench.speed import KODAK, whole_process

_SITE = """
import json, sysconfig
from importlib import metadata
import l3ic
print(json.dumps({"site": sysconfig.get_paths()["purelib"], "l3ic": l3ic.__version__,
                  "distributions": len(list(metadata.distributions()))}))
"""


def install_size(python: str) -> dict:
    """site-packages size (MiB) and distribution count of the environment of ``python``."""
    out = subprocess.run([python, "-c", _SITE], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    files = (p for p in Path(info["site"]).rglob("*") if p.is_file() and not p.is_symlink())
    info["site_packages_mib"] = sum(p.stat().st_size for p in files) / 2**20
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("installs", nargs="+", metavar="LABEL=PYTHON")
    p.add_argument("-m", "--preset", default="32c")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--kodak", type=Path, default=KODAK)
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    rows = []
    for spec in args.installs:
        label, _, python = spec.partition("=")
        if not python:
            p.error(f"expected LABEL=PYTHON, got {spec!r}")
        row = {"label": label, **install_size(python)}
        row.update(whole_process(None, args.preset, args.kodak / "kodim23.png", args.runs, python))
        rows.append(row)
        c, d = row["compress"], row["decompress"]
        print(
            f"{label} (l3ic {row['l3ic']}): {row['site_packages_mib']:.0f} MiB installed, "
            f"{row['distributions']} distributions; compress {c['seconds']:.2f} s "
            f"{c['peak_mib']:.0f} MiB; decompress {d['seconds']:.2f} s {d['peak_mib']:.0f} MiB"
        )
    doc = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "preset": args.preset,
        "runs": args.runs,
        "installs": rows,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
