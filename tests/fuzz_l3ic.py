"""Mutation fuzzing of the .l3ic container and decoder.

Seeds are small files made with the shipped presets (RGB and grayscale, constant channels,
version 1 and sealed streams, version 4 files with context-coded channels). Each input is a
seed changed by one mutation: bit flips, truncations, insertions, deletions, header fields set
to extremes, stream lengths, modes and tables changed, constant channels declaring large
images, streams swapped, random bytes. Most mutants get their two CRCs recomputed, so that
they reach the checks behind them.

An input may only end in one of two ways: an image of the size its header declares, or an
``L3ICError`` (``DecompressionBombError`` included). Any other exception is a failure.

    python tests/fuzz_l3ic.py --inputs 3000 --seed 0 --report fuzz.json
    python tests/fuzz_l3ic.py --write-seeds corpus/      # seed corpus for tests/fuzz_atheris.py

CI runs it through tests/test_fuzz.py; docs/fuzzing.md has the longer coverage-guided run.
"""

import argparse
import json
import resource
import sys
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import constriction
import numpy as np

import l3ic
from l3ic import channel_modes, container, entropy
from l3ic.api import get_codec
from l3ic.codebook import QMIN
from l3ic.errors import DecompressionBombError, L3ICError
from l3ic.latent_coder import get_coder
from l3ic.presets import PRESETS

FUZZ_MAX_PIXELS = 1 << 20  # declared sizes above one megapixel are refused before decoding
EXTREMES = [0, 1, 2, 7, 8, 9, 255, 256, 1 << 14, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
            1 << 28, (1 << 32) - 1, (1 << 35) - 1]  # fmt: skip


@dataclass
class Fields:
    """An .l3ic file taken apart (spec level, docs/format.md), to be mutated and rebuilt.

    ``entries`` are (mode, symbol or stream length, table bytes) per channel; ``streams`` are
    the stream bytes of the non-constant channels, in order.
    """

    version: int
    flags: int
    name: bytes
    fingerprint: bytes
    sizes: list[int]  # width, height, latent h, latent w, channels
    entries: list[tuple[int, int, bytes]]
    streams: list[bytes] = field(default_factory=list)
    tables_id: bytes = b""  # version 4: the context tables' id, after the fingerprint


def split(data: bytes) -> Fields:
    """Takes a valid file apart (streams kept in file order: a shipped preset's stream order,
    channel order for the tests' untrained codecs, whose channel order is the natural one)."""
    head = container.parse_header(data)
    shipped = head.preset in PRESETS
    order = get_coder(head.preset).channel_order if shipped else range(head.latent_shape[2])
    c = container.parse(data, order)
    entries = []
    for code in c.codes:
        if code.mode == channel_modes.CONSTANT:
            entries.append((code.mode, code.symbol, b""))
            continue
        table = entropy.pack_table(code.table) if code.mode == channel_modes.TABLE else b""
        entries.append((code.mode, len(code.stream), table))
    order = c.channel_order or range(len(c.codes))  # the streams in file order
    streams = [c.codes[k].stream for k in order if c.codes[k].mode != channel_modes.CONSTANT]
    sizes = [c.width, c.height, *c.latent_shape]
    name = c.preset.encode()
    return Fields(c.version, data[5], name, c.fingerprint, sizes, entries, streams, c.tables_id)


def header(f: Fields) -> bytes:
    """The header bytes without its CRC; any field values, even absurd ones, are written."""
    head = bytearray(container.MAGIC)
    head += bytes([f.version & 255, f.flags & 255, len(f.name) & 255]) + f.name + f.fingerprint
    head += f.tables_id
    for n in f.sizes:
        head += entropy.write_varint(n)
    for mode, value, table in f.entries:
        head.append(mode & 255)
        head += (
            bytes([value & 255]) if mode == channel_modes.CONSTANT else entropy.write_varint(value)
        )
        head += table
    return bytes(head)


def build(f: Fields) -> bytes:
    """The file: header, header CRC, streams, file CRC (both CRCs correct)."""
    head = header(f)
    body = head + zlib.crc32(head).to_bytes(4, "little") + b"".join(f.streams)
    return body + zlib.crc32(body).to_bytes(4, "little")


def reseal(data: bytes, header_end: int) -> bytes:
    """Recomputes the header CRC (at ``header_end``) and the file CRC (the last 4 bytes)."""
    if len(data) < header_end + 8:
        return data
    data = bytearray(data)
    data[header_end : header_end + 4] = zlib.crc32(data[:header_end]).to_bytes(4, "little")
    data[-4:] = zlib.crc32(data[:-4]).to_bytes(4, "little")
    return bytes(data)


def as_version1(data: bytes) -> bytes:
    """The same image as a version 1 file (unsealed streams), as earlier l3ic wrote them."""
    codec = get_codec(container.parse(data).preset)
    latent, _ = codec.read_latent(data)
    f = split(data)
    f.version, f.tables_id, f.entries, f.streams = 1, b"", [], []
    for k in range(latent.shape[2]):
        symbols = (latent[..., k].astype(np.int16) - QMIN).ravel()
        code = channel_modes.encode_channel(symbols.astype(np.uint8), codec.priors[k])
        if code.mode == channel_modes.CONSTANT:
            f.entries.append((code.mode, code.symbol, b""))
            continue
        table = code.table if code.mode == channel_modes.TABLE else codec.priors[k]
        coder = constriction.stream.stack.AnsCoder()  # unsealed: version 1
        coder.encode_reverse(symbols.astype(np.int32), entropy.table_model(table))
        stream = coder.get_compressed().astype("<u4").tobytes()
        packed = entropy.pack_table(code.table) if code.mode == channel_modes.TABLE else b""
        f.entries.append((code.mode, len(stream), packed))
        f.streams.append(stream)
    return build(f)


def make_seeds() -> dict[str, bytes]:
    """Small valid files of the shipped presets, in versions 4 (the default), 3 and 1."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:24, 0:40]
    smooth = np.stack([xx * 6, yy * 10, (xx + yy) * 4], axis=-1).astype(np.uint8)
    noisy = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
    seeds = {
        "16c-rgb": l3ic.compress(noisy, preset="16c"),
        "32c-rgb": l3ic.compress(smooth, preset="32c"),
        "16c-gray": l3ic.compress(noisy[:17, :9, 0], preset="16c"),
        "16c-flat": l3ic.compress(np.full((16, 16, 3), 128, np.uint8), preset="16c"),
        "64c-tiny": l3ic.compress(noisy[:8, :8], preset="64c"),
    }
    seeds["16c-rgb-v1"] = as_version1(seeds["16c-rgb"])
    # A textured 96 x 64 image, whose latents have context-coded channels in version 4.
    yy, xx = np.mgrid[0:64, 0:96]
    waves = [128 + 60 * np.sin(xx / 9.0), 128 + 60 * np.cos(yy / 7.0), (xx + 2 * yy) % 256]
    textured = np.stack(waves, axis=-1) + rng.normal(0, 6, (64, 96, 3))
    textured = np.clip(textured, 0, 255).astype(np.uint8)
    for preset in ("16c", "32c"):
        seeds[f"{preset}-textured"] = l3ic.compress(textured, preset=preset)
    for name in ("16c-rgb", "32c-rgb", "64c-tiny", "16c-textured"):
        seeds[f"{name}-v3"] = as_version(seeds[name], 3)
    return seeds


def as_version(data: bytes, version: int) -> bytes:
    """The same latent as a file of format ``version`` (3 or 4; in 4, context-coded channels
    where they are cheaper)."""
    shipped = get_coder(container.parse(data).preset)
    latent, meta = shipped.read(data)
    coder = shipped.writing(version)
    return coder.pack(latent, (meta["height"], meta["width"]), meta["grayscale"])


# ----- mutations: (rng, seed bytes, seed fields) -> bytes --------------------------------------


def _header_end(f: Fields) -> int:
    return len(header(f))


def m_bitflip(rng, data, f):
    out = bytearray(data)
    for _ in range(rng.integers(1, 5)):
        i = rng.integers(len(out))
        out[i] ^= 1 << rng.integers(8)
    return reseal(bytes(out), _header_end(f)) if rng.random() < 0.8 else bytes(out)


def m_stream_bits(rng, data, f):
    start, end = _header_end(f) + 4, len(data) - 4
    if end <= start:
        return m_bitflip(rng, data, f)
    out = bytearray(data)
    for _ in range(rng.integers(1, 4)):
        out[rng.integers(start, end)] ^= 1 << rng.integers(8)
    return reseal(bytes(out), _header_end(f))


def m_truncate(rng, data, f):
    out = data[: rng.integers(len(data))]
    return reseal(out, _header_end(f)) if rng.random() < 0.5 else out


def m_insert(rng, data, f):
    i = rng.integers(len(data) + 1)
    out = data[:i] + rng.bytes(int(rng.integers(1, 17))) + data[i:]
    return reseal(out, _header_end(f)) if rng.random() < 0.7 else out


def m_delete(rng, data, f):
    i = rng.integers(len(data))
    out = data[:i] + data[i + int(rng.integers(1, 17)) :]
    return reseal(out, _header_end(f)) if rng.random() < 0.7 else out


def m_size_extreme(rng, data, f):
    g = replace(f, sizes=list(f.sizes))
    k = rng.integers(5)
    g.sizes[k] = int(rng.choice(EXTREMES))
    if k < 2 and rng.random() < 0.7:  # keep the latent shape consistent: reach deeper checks
        g.sizes[2], g.sizes[3] = -(-g.sizes[1] // 8), -(-g.sizes[0] // 8)
    return build(g)


def m_size_plausible(rng, data, f):
    """Another image size with a consistent latent shape, the streams unchanged."""
    g = replace(f, sizes=list(f.sizes))
    g.sizes[0], g.sizes[1] = (int(x) for x in rng.integers(1, 1 << rng.integers(3, 13), 2))
    g.sizes[2], g.sizes[3] = -(-g.sizes[1] // 8), -(-g.sizes[0] // 8)
    return build(g)


def m_constant_bomb(rng, data, f):
    """All channels constant (no streams), a random declared size: the decompression bomb."""
    g = replace(f, sizes=list(f.sizes), streams=[])
    g.entries = [(channel_modes.CONSTANT, int(rng.integers(0, 34)), b"") for _ in f.entries]
    side = 1 << rng.integers(2, 16)
    g.sizes[0], g.sizes[1] = int(side), int(rng.integers(1, side + 1))
    g.sizes[2], g.sizes[3] = -(-g.sizes[1] // 8), -(-g.sizes[0] // 8)
    return build(g)


def m_stream_length(rng, data, f):
    g = replace(f, entries=list(f.entries), streams=list(f.streams))
    coded = [i for i, e in enumerate(g.entries) if e[0] != channel_modes.CONSTANT]
    if not coded:
        return m_constant_bomb(rng, data, f)
    i = int(rng.choice(coded))
    j = coded.index(i)
    mode, length, table = g.entries[i]
    new = int(rng.choice([0, 4, 8, length - 4, length + 4, 2 * length, length // 2, 1 << 30]))
    new = max(new, 0)
    g.entries[i] = (mode, new, table)
    if rng.random() < 0.5:  # keep the file consistent with the new length
        s = g.streams[j]
        g.streams[j] = (s + rng.bytes(max(0, new - len(s))))[:new] if new < 1 << 20 else s
    return build(g)


def m_mode(rng, data, f):
    g = replace(f, entries=list(f.entries))
    i = rng.integers(len(g.entries))
    mode, value, table = g.entries[i]
    g.entries[i] = (int(rng.choice([0, 1, 2, 3, 255])), value, table)
    return build(g)


def m_table(rng, data, f):
    g = replace(f, entries=list(f.entries))
    tabled = [i for i, e in enumerate(g.entries) if e[0] == channel_modes.TABLE]
    if not tabled:
        return m_mode(rng, data, f)
    i = int(rng.choice(tabled))
    mode, length, table = g.entries[i]
    t = bytearray(table)
    t[rng.integers(len(t))] = int(rng.integers(256))
    g.entries[i] = (mode, length, bytes(t))
    return build(g)


def m_swap_streams(rng, data, f):
    g = replace(f, streams=list(f.streams))
    rng.shuffle(g.streams)
    return build(g)


def m_version(rng, data, f):
    return build(replace(f, version=int(rng.choice([0, 1, 2, 3, 4, 5, 255]))))


def m_random(rng, data, f):
    n = int(rng.integers(0, 200))
    head = container.MAGIC + bytes([int(rng.integers(1, 3))]) if rng.random() < 0.7 else b""
    return head + rng.bytes(n)


MUTATIONS = {
    "bitflip": m_bitflip,
    "stream-bits": m_stream_bits,
    "truncate": m_truncate,
    "insert": m_insert,
    "delete": m_delete,
    "size-extreme": m_size_extreme,
    "size-plausible": m_size_plausible,
    "constant-bomb": m_constant_bomb,
    "stream-length": m_stream_length,
    "mode": m_mode,
    "table": m_table,
    "swap-streams": m_swap_streams,
    "version": m_version,
    "random": m_random,
}


# What an L3ICError's message says, by the check that raised it (first match wins).
ERROR_KINDS = [
    ("checksum", "checksum mismatch"),
    ("truncated", "truncated file"),
    ("trailing", "trailing bytes"),
    ("does not hold exactly", "stream length vs image size (seal)"),
    ("data left over", "version 1 stream: data left over"),
    ("too short", "stream too short for the image (size bound)"),
    ("corrupt channel stream", "stream refused by the ANS decoder"),
    ("version", "unsupported version"),
    ("magic", "not an .l3ic file"),
    ("channel mode", "bad channel mode"),
    ("symbol", "bad constant symbol"),
    ("stream of", "bad stream length field"),
    ("frequency table", "bad frequency table"),
    ("latent shape", "latent shape vs image size"),
    ("out of range", "size or channel count out of range"),
    ("exceeds", "over the format's 2**28 pixels"),
    ("context tables", "coded with other context tables"),
    ("weights", "written by other weights"),
    ("preset", "unknown or other preset"),
    ("channels", "channel count vs preset"),
    ("header", "other header damage"),
]


def error_kind(message: str) -> str:
    """The outcome name of an L3ICError: ``error: <the check that raised it>``."""
    for key, kind in ERROR_KINDS:
        if key in message:
            return f"error: {kind}"
    return "error: other"


def decode(data: bytes, rng, max_pixels: int) -> str:
    """Decodes one input the way a user could; returns its outcome or raises on a failure."""
    way = rng.integers(3)
    try:
        if way == 0:
            image = l3ic.decompress(data, max_pixels=max_pixels)
        elif way == 1:
            image = l3ic.decompress(
                data, top_channels=int(rng.integers(0, 8)), max_pixels=max_pixels
            )
        else:
            latent, meta = l3ic.read_latent(data, channels=[0], max_pixels=max_pixels)
            assert latent.shape == (*meta["latent_shape"][:2], 1), latent.shape
            return "latent"
    except DecompressionBombError:
        return "refused (pixel limit)"
    except L3ICError as e:
        return error_kind(str(e))
    c = container.parse(data)
    expected = (c.height, c.width) if c.grayscale else (c.height, c.width, 3)
    assert image.shape == expected and image.dtype == np.uint8, (image.shape, expected)
    return "image"


def run(inputs: int, seed: int, max_pixels: int, save: Path | None = None) -> dict:
    """Runs ``inputs`` mutants; returns the report (outcomes, failures, slowest, memory)."""
    seeds = make_seeds()
    fields = {name: split(data) for name, data in seeds.items()}
    for data in seeds.values():  # warm up: models loaded, every seed valid
        l3ic.decompress(data)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(seed)
    names, kinds = sorted(seeds), sorted(MUTATIONS)
    outcomes, per_kind, failures, timings = Counter(), Counter(), [], []
    t_start = time.perf_counter()
    for i in range(inputs):
        name, kind = names[rng.integers(len(names))], kinds[rng.integers(len(kinds))]
        data = MUTATIONS[kind](rng, seeds[name], fields[name])
        t0 = time.perf_counter()
        try:
            outcome = decode(data, rng, max_pixels)
        except Exception as e:  # the failures this fuzzer looks for
            outcome = "FAILURE"
            failures.append(
                {"input": i, "seed": name, "mutation": kind, "exception": type(e).__name__,
                 "message": str(e)[:200], "traceback": traceback.format_exc(limit=4)[-800:]}
            )  # fmt: skip
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                (save / f"failure-{i}-{kind}.l3ic").write_bytes(data)
        seconds = time.perf_counter() - t0
        timings.append((seconds, i, name, kind, outcome, len(data)))
        outcomes[outcome] += 1
        per_kind[kind] += 1
    timings.sort(reverse=True)
    return {
        "inputs": inputs,
        "seed": seed,
        "max_pixels": max_pixels,
        "seconds": round(time.perf_counter() - t_start, 1),
        "outcomes": dict(outcomes.most_common()),
        "mutations": dict(sorted(per_kind.items())),
        "failures": failures,
        "slowest": [
            {"seconds": round(s, 3), "input": i, "seed": n, "mutation": k, "outcome": o, "bytes": b}
            for s, i, n, k, o, b in timings[:5]
        ],  # fmt: skip
        "median_ms": round(1000 * timings[len(timings) // 2][0], 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_fuzzing_mb": round(rss_before),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-pixels", type=int, default=FUZZ_MAX_PIXELS)
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--save-failures", type=Path, help="write failing inputs to this folder")
    p.add_argument("--write-seeds", type=Path, help="only write the seed files to this folder")
    args = p.parse_args(argv)
    if args.write_seeds:
        args.write_seeds.mkdir(parents=True, exist_ok=True)
        for name, data in make_seeds().items():
            (args.write_seeds / f"{name}.l3ic").write_bytes(data)
        return 0
    report = run(args.inputs, args.seed, args.max_pixels, args.save_failures)
    text = json.dumps(report, indent=1)
    if args.report:
        args.report.write_text(text + "\n")
    print(text)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
