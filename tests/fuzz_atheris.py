"""Coverage-guided fuzzing of the .l3ic decoder with atheris (libFuzzer); docs/fuzzing.md.

    pip install atheris
    python tests/fuzz_l3ic.py --write-seeds fuzz-corpus/
    python tests/fuzz_atheris.py fuzz-corpus/ -max_total_time=1800 -timeout=10 -rss_limit_mb=4096

Each input is decoded twice: as it is, and with its two CRCs recomputed (when its header can be
walked far enough to find them), so that mutations reach the checks behind the checksums. An
input may end as an image of its declared size or as ``L3ICError``; any other exception, a
timeout or running out of memory is reported by libFuzzer as a crash, with the input saved.
"""

import sys

import atheris
import numpy as np

with atheris.instrument_imports(include=["l3ic"]):  # l3ic's code only, not keras or numpy
    import l3ic
    import l3ic.api
    import l3ic.codec
    from l3ic import channel_modes, container, entropy
    from l3ic.errors import L3ICError

from fuzz_l3ic import reseal  # tests/ is on sys.path when this runs as a script

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
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
