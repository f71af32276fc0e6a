"""The compiled record reader (``l3ic.record_decoder``) against the Python reader and constriction.

The compiled reader is a fast path: on every record it must give exactly the Python reader's
latent, or give up (None) where the Python reader raises. Random latents cover the three channel
modes; damaged streams (with their checksums mended, so that only the streams are wrong) check
that both readers agree on what decodes and what does not.
"""

import os
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import constriction
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l3ic
from l3ic import channel_modes, container, context_model, entropy, record_decoder
from l3ic.errors import L3ICError
from l3ic.latent_coder import LatentCoder, get_coder


def python_read(coder: LatentCoder, data: bytes, channels=None):
    """The Python reader's (latent, metadata), or the L3ICError it raises."""
    compiled, coder.compiled = coder.compiled, None
    try:
        return coder.read(data, channels)
    except L3ICError as e:
        return e
    finally:
        coder.compiled = compiled


def random_latent(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """(h, w, c) int8: channels of random spreads (prior- and table-coded), one constant."""
    scales = rng.uniform(0.05, 6.0, c)
    q = np.round(rng.laplace(rng.integers(-3, 4, c), scales, (h, w, c)))
    q = np.clip(q, -15, 16).astype(np.int8)
    q[..., rng.integers(c)] = rng.integers(-15, 17)
    return q


def smooth_latent(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """(h, w, c) int8 whose neighbours are alike, as the network's are (context-coded in
    version 4), with some channels of independent values and one constant."""
    q = np.cumsum(rng.laplace(0, rng.uniform(0.2, 1.5, c), (h, w, c)), axis=1)
    q = np.round(q - np.round(q.mean(axis=(0, 1))))
    q[..., : c // 4] = random_latent(rng, h, w, c // 4)
    return np.clip(q, -15, 16).astype(np.int8)


def coder_writing(version: int) -> LatentCoder:
    """The shipped 32c's coder (a copy) writing format ``version``."""
    shipped = get_coder("32c")
    assert shipped.context_tables is not None  # models/32c.contexts.npz ships
    return shipped.writing(version)


def with_file_crc(body: bytes) -> bytes:
    """A record whose last four bytes (the file's CRC-32) are made to match the rest again."""
    body = body[:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_compiled_reader_is_installed():
    # This machine (and CI) has a C compiler: the wheel must carry the library, and load it.
    library = Path(record_decoder.__file__).with_name(record_decoder.LIBRARY)
    assert library.is_file() and record_decoder.COMPILED
    assert get_coder("32c").compiled is not None


def test_without_the_library_everything_reads_in_python(tmp_path):
    # L3IC_PURE_PYTHON=1 (as a wheel built without a compiler): no compiled reader, same latents.
    q = random_latent(np.random.default_rng(7), 5, 6, 32)
    path = tmp_path / "q.npy"
    np.save(path, q)
    script = (
        "import sys, numpy as np; from l3ic import record_decoder; "
        "from l3ic.latent_coder import get_coder; c = get_coder('32c'); "
        f"q = np.load({str(path)!r}); data = c.pack(q, (40, 48)); "
        "assert not record_decoder.COMPILED and c.compiled is None; "
        "assert c.read_compiled(data) is None; assert (c.read(data)[0] == q).all(); print('ok')"
    )
    env = {**os.environ, record_decoder.PURE_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_cumulative_tables_are_constrictions():
    # Probe constriction's Categorical(perfect=False): from the state 2**32 + q, the first symbol
    # decoded is the one whose interval holds the quantile q.
    rng = np.random.default_rng(0)
    for _ in range(40):
        bits = int(rng.integers(entropy.MIN_TABLE_BITS, entropy.TABLE_BITS + 1))
        hist = rng.integers(0, 50, entropy.ALPHABET) * (rng.random(entropy.ALPHABET) < 0.6)
        hist[rng.integers(entropy.ALPHABET)] += 1
        table = entropy.quantize_counts(hist, bits)
        (cdf,) = record_decoder.quantized_cdfs([table])
        model = constriction.stream.model.Categorical(table.astype(np.float64), perfect=False)
        for s in range(entropy.ALPHABET):
            for quantile in (cdf[s], cdf[s + 1] - 1):
                words = np.array([quantile, 1], dtype=np.uint32)
                got = constriction.stream.stack.AnsCoder(words).decode(model, 1)[0]
                assert got == s, (bits, s, quantile)


@pytest.mark.parametrize("version", [3, 4])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 24), st.integers(1, 24), st.integers(0, 2**32 - 1))
def test_compiled_reader_agrees_on_random_latents(version, h, w, seed):
    rng = np.random.default_rng(seed)
    coder = coder_writing(version)
    q = (smooth_latent if version == 4 else random_latent)(rng, h, w, coder.num_channels)
    data = coder.pack(q, (8 * h - int(rng.integers(8)), 8 * w))
    picked = rng.permutation(coder.num_channels)[: rng.integers(1, coder.num_channels + 1)].tolist()
    for channels in (None, picked):
        fast = coder.read_compiled(data, channels)
        assert fast is not None
        want = q if channels is None else q[..., channels]
        np.testing.assert_array_equal(fast[0], want)
        latent, meta = python_read(coder, data, channels)
        np.testing.assert_array_equal(latent, want)
        assert fast[1] == meta


def test_random_latents_use_every_channel_mode():
    # The latents of the test above do exercise constant, prior- and table-coded channels, and
    # in version 4 context-coded ones.
    rng = np.random.default_rng(1)
    for version, make in ((3, random_latent), (4, smooth_latent)):
        coder, modes = coder_writing(version), set()
        for _ in range(10):
            q = make(rng, 12, 9, coder.num_channels)
            c = container.parse(coder.pack(q, (96, 72)), coder.channel_order)
            modes |= {code.mode for code in c.codes}
        want = {channel_modes.CONSTANT, channel_modes.PRIOR, channel_modes.TABLE}
        assert modes == (want | {channel_modes.CONTEXT} if version == 4 else want)


@pytest.mark.parametrize("version", [3, 4])
def test_damaged_streams_decode_alike(version):
    # Bits flipped inside the streams, the checksum mended: wherever the Python reader raises,
    # the compiled one gives up; wherever the Python reader decodes, both give that latent.
    rng, coder = np.random.default_rng(2), coder_writing(version)
    make = smooth_latent if version == 4 else random_latent
    outcomes = {"raised": 0, "decoded": 0}
    for trial in range(200):
        q = make(rng, int(rng.integers(1, 10)), int(rng.integers(1, 10)), 32)
        data = coder.pack(q, (8 * q.shape[0], 8 * q.shape[1]))
        start = container.parse(data, coder.channel_order).header_bytes
        if start == len(data) - 4:
            continue  # every channel constant: no stream to damage
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 3))):
            at = int(rng.integers(start, len(data) - 4))
            damaged[at] ^= 1 << int(rng.integers(8))
        damaged = with_file_crc(bytes(damaged))
        want = python_read(coder, damaged)
        fast = coder.read_compiled(damaged)
        if isinstance(want, L3ICError):
            outcomes["raised"] += 1
            assert fast is None, trial
            with pytest.raises(L3ICError, match=str(want)[:30]):
                coder.read(damaged)
        else:
            outcomes["decoded"] += 1
            assert fast is not None, trial
            np.testing.assert_array_equal(fast[0], want[0])
    assert outcomes["raised"] > 130  # sealed streams catch nearly every damage


def test_skipped_streams_are_not_decoded():
    # Streams of channels not asked for are garbage (checksum mended): the compiled reader
    # still reads the others, so it never decoded those.
    rng, coder = np.random.default_rng(3), get_coder("32c")
    q = random_latent(rng, 8, 8, 32)
    data = coder.pack(q, (64, 64))
    c = container.parse(data, coder.channel_order)
    streamed = [k for k, code in enumerate(c.codes) if code.mode != channel_modes.CONSTANT]
    keep, spoil = streamed[:3], streamed[3:]
    damaged = bytearray(data)
    for k in spoil:
        at = c.offsets[k]
        damaged[at : at + c.stream_lengths[k]] = rng.bytes(c.stream_lengths[k])
    damaged = with_file_crc(bytes(damaged))
    fast = coder.read_compiled(damaged, keep)
    assert fast is not None
    np.testing.assert_array_equal(fast[0], q[..., keep])
    assert coder.read_compiled(damaged) is None


def test_first_bytes_of_a_record():
    # whole=False: the header and the first k stored streams are enough for those k channels.
    rng, coder = np.random.default_rng(4), get_coder("32c")
    q = random_latent(rng, 7, 5, 32)
    data = coder.pack(q, (56, 40))
    c = container.parse(data, coder.channel_order)
    fast = coder.read_compiled(data)
    positions = fast[2]
    assert positions[0] == c.header_bytes and positions[-1] + 4 == len(data)
    top = coder.top_channels(6)
    prefix = data[: positions[6]]
    got = coder.read_compiled(prefix, top, whole=False)
    np.testing.assert_array_equal(got[0], q[..., top])
    assert got[2] == positions
    assert coder.read_compiled(prefix, top) is None  # not the whole record
    assert coder.read_compiled(prefix[:-1], top, whole=False) is None  # the 6th stream cut
    bad_header = bytearray(prefix)
    bad_header[c.header_bytes - 5] ^= 1  # inside the header: its CRC-32 fails
    assert coder.read_compiled(bytes(bad_header), top, whole=False) is None


def test_threads_share_a_reader():
    # ctypes lets go of the GIL during the call: threads decode at once, of mixed sizes and
    # channel subsets, through the one coder of the preset.
    rng, coder = np.random.default_rng(6), get_coder("32c")
    jobs = []
    for i in range(40):
        q = random_latent(rng, int(rng.integers(1, 12)), int(rng.integers(1, 12)), 32)
        picked = rng.permutation(32)[: 1 + i % 32].tolist()
        jobs.append((coder.pack(q, (8 * q.shape[0], 8 * q.shape[1])), picked, q[..., picked]))

    def read(job):
        data, picked, want = job
        return np.array_equal(coder.read_compiled(data, picked)[0], want)

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(read, jobs * 10))


def test_other_records_go_to_the_python_reader():
    # Another version, preset or weights, or a pixel limit: None, and read() says why.
    coder = get_coder("16c")
    q = random_latent(np.random.default_rng(5), 4, 4, 16)
    data = coder.pack(q, (32, 32))
    v2 = data[:4] + b"\x02" + data[5:]
    assert coder.read_compiled(v2) is None
    assert coder.read_compiled(data, max_pixels=1023) is None
    with pytest.raises(l3ic.DecompressionBombError):
        coder.read(data, max_pixels=1023)
    other = get_coder("32c")
    assert other.read_compiled(data) is None
    with pytest.raises(L3ICError, match="written by preset '16c'.*not by this preset '32c'"):
        other.read(data)
    assert coder.read_compiled(data, [16]) is None
    with pytest.raises(L3ICError, match="channels must lie in 0..15"):
        coder.read(data, [16])


def _c_constants() -> dict[str, int]:
    """The #define'd numbers and the enum of channel modes of the installed record_decoder.c
    (each #define a C integer expression of numbers, shifts and earlier names)."""
    import re

    source = Path(record_decoder.__file__).with_suffix(".c").read_text()
    found: dict[str, int] = {}
    for name, expr in re.findall(r"^#define (\w+) ([^/\n]+)", source, re.M):
        expr = re.sub(r"(\d+)(?:LL|u)\b", r"\1", expr.strip())
        if re.fullmatch(r"[\w\s()<>+*-]+", expr):
            found[name] = int(eval(expr, {"__builtins__": {}}, dict(found)))
    enum = re.search(r"enum \{ (CONSTANT = 0.*?) \};", source).group(1)
    found |= {name: int(value) for name, value in re.findall(r"(\w+) = (\d+)", enum)}
    return found


def test_a_channels_repeated_context_tables_are_kept_once():
    # Contexts that share a table (context_model.learn_tables groups them) share one block of
    # the compiled reader's tables, whose cumulative table is constriction's.
    rng = np.random.default_rng(4)
    distinct = np.stack([entropy.quantize_counts(rng.integers(1, 60, 32)) for _ in range(5)])
    pick = rng.integers(0, 5, (2, context_model.CONTEXTS))
    pick[1] = 4 - pick[1]
    tables = distinct[pick]
    blocks, where, _ = record_decoder._context_blocks(tables)
    size = record_decoder.CONTEXT_BLOCK
    assert blocks.shape == (len(np.unique(pick[0])) + len(np.unique(pick[1])), size)
    for k in range(2):
        for c in (0, 17, 99):
            row = blocks[where[k, c] // size]
            cdf = row[: 4 * 33].view(np.uint32)
            np.testing.assert_array_equal(cdf, record_decoder.quantized_cdfs(tables[k, c][None])[0])


def test_the_compiled_readers_constants_are_pythons():
    """The C reader mirrors the format's numbers, the channel modes' ids and the context
    model's constants: one list of each."""
    from l3ic.codebook import QMIN

    c = _c_constants()
    python = {
        "ALPHABET": entropy.ALPHABET,
        "QMIN": QMIN,
        "TABLE_BITS": entropy.TABLE_BITS,
        "MIN_TABLE_BITS": entropy.MIN_TABLE_BITS,
        "MAX_SIDE": container.MAX_SIDE,
        "MAX_PIXELS": container.MAX_PIXELS,
        "MAX_CHANNELS": container.MAX_CHANNELS,
        "FINGERPRINT_BYTES": container.FINGERPRINT_BYTES,
        "ORDERED_VERSION": container.ORDERED_VERSION,
        "CONTEXT_VERSION": container.CONTEXT_VERSION,
        "TABLES_ID_BYTES": container.TABLES_ID_BYTES,
        "CONTEXTS": context_model.CONTEXTS,
        "EDGE_SYMBOL": context_model.EDGE,
        "CONTEXT_LUT_SHIFT": record_decoder.CONTEXT_LUT_SHIFT,
        "CONTEXT_BLOCK": record_decoder.CONTEXT_BLOCK,
        "PRECISION": record_decoder.PRECISION,
    }
    python |= {mode.name.upper(): mode.id for mode in channel_modes.MODES.values()}
    assert {name: c.get(name) for name in python} == python


def test_a_tall_strip_goes_to_the_python_reader_in_bounded_memory():
    # The compiled context mode keeps a skewed plane of (2 h + w) x h cells; for a latent of
    # 4096 x 8 (a 64-pixel-wide strip) that would be 135 MB for 0.5 MB of latent, so the
    # compiled reader gives up and the Python reader decodes it (memory in h w).
    rng, coder = np.random.default_rng(6), get_coder("16c").writing(4)
    q = smooth_latent(rng, 4096, 8, coder.num_channels)
    data = coder.pack(q, (8 * 4096, 64))
    c = container.parse(data, coder.channel_order)
    assert channel_modes.CONTEXT in {code.mode for code in c.codes}
    assert coder.read_compiled(data) is None
    np.testing.assert_array_equal(coder.read(data)[0], q)
    small = q[:1024]  # a quarter of the height: 8.6 MB of plane, decoded in C
    fast = coder.read_compiled(coder.pack(small, (8 * 1024, 64)))
    assert fast is not None and np.array_equal(fast[0], small)
