#!/usr/bin/env python3
"""Coverage-guided fuzzing with atheris (libFuzzer); docs/fuzzing.md.

    pip install atheris
    python tests/fuzz_l3ic.py --write-seeds fuzz-corpus/
    python tests/fuzz_atheris.py fuzz-corpus/ -max_total_time=1800 -timeout=10 -rss_limit_mb=4096
    python tests/fuzz_atheris.py --target=shard_index tests/corpus/shard_index/ -max_total_time=600

Without ``--target`` (or with ``--target=image``) the target is the image decoder below;
``--target=record``, ``shard_index`` or ``shard_list`` runs one of ``tests/fuzz_targets.py``.

Each input is decoded twice: as it is, and with its two CRCs recomputed (when its header can be
walked far enough to find them), so that mutations reach the checks behind the checksums. An
input may end as an image of its declared size or as ``L3ICError``; any other exception, a
timeout or running out of memory is reported by libFuzzer as a crash, with the input saved.
"""

import os
import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["l3ic"]):  # l3ic's code only, not keras or numpy
    import fuzz_targets  # tests/ is on sys.path when this runs as a script

    import l3ic
    import l3ic.api
    import l3ic.codec
    from l3ic import channel_modes, container, entropy
    from l3ic.errors import L3ICError

from fuzz_l3ic import reseal

MAX_PIXELS = 1 << 20


def header_end(data: bytes) -> int | None:
    """Where the header CRC would sit, walking the header leniently; None if it cannot."""
    try:
        pos = 7 + data[6] + container.FINGERPRINT_BYTES
        if data[4] >= container.CONTEXT_VERSION:
            pos += container.TABLES_ID_BYTES
        sizes = []
        for _ in range(5):
            n, pos = entropy.read_varint(data, pos)
            sizes.append(n)
        for _ in range(min(sizes[4], 1024)):
            mode = data[pos]
            pos += 1
            if mode == channel_modes.CONSTANT:
                pos += 1
                continue
            _, pos = entropy.read_varint(data, pos)
            if mode == channel_modes.TABLE:
                _, pos = entropy.unpack_table(data, pos)
        return pos
    except (IndexError, L3ICError):
        return None


def resealed(data: bytes) -> bytes:
    """``data`` with both CRCs recomputed, or ``data`` itself if its header cannot be walked."""
    end = header_end(data)
    return data if end is None else reseal(data, end)


def decode(data: bytes) -> None:
    try:
        image = l3ic.decompress(data, max_pixels=MAX_PIXELS)
    except L3ICError:
        return
    c = container.parse(data)
    expected = (c.height, c.width) if c.grayscale else (c.height, c.width, 3)
    if image.shape != expected or image.dtype != np.uint8:
        raise AssertionError(f"decoded {image.shape} {image.dtype}, header says {expected}")


def test_one_input(data: bytes) -> None:
    decode(data)
    fixed = resealed(data)
    if fixed != data:
        decode(fixed)


if __name__ == "__main__":
    # libFuzzer ignores flags that start with "--", and passes them on to the processes it
    # starts (-merge=1, -jobs): --target=NAME stays in the arguments
    targets = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--target=")]
    name = targets[-1] if targets else "image"
    if name not in ("image", *fuzz_targets.TARGETS):
        sys.exit(f"unknown target {name!r}: image, {', '.join(fuzz_targets.TARGETS)}")
    target = test_one_input if name == "image" else getattr(fuzz_targets, name)
    if name != "image":  # the 16c entropy model of the kept corpus, not the shipped one
        models = fuzz_targets.frozen_models(Path(tempfile.mkdtemp(prefix="l3ic-fuzz-models-")))
        os.environ["L3IC_MODELS_DIR"] = str(models)

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except L3ICError:  # the image target's refusals (the others return False)
            pass

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
