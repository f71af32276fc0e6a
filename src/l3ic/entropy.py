"""The entropy coder's building blocks: frequency tables and constriction's ANS coder.

A channel's symbols are codebook indices 0..31 (``q + 15``) as uint8. Tables are 32 integer
counts summing to a power of two (priors: 4096); ``pack_table`` stores one compactly (see
docs/format.md). How a channel is coded with these, in one of its modes, is
``l3ic.channel_modes``.

Streams are *sealed* (container version 2): the coder starts from the state 2**32 (the words
``SEAL``) instead of 0, and a decoder must end on exactly that state. From state 0 the symbol
with cumulative frequency 0 costs no bits, so an unsealed (version 1) stream cannot tell its
true length: decoding more symbols than were coded quietly yields that symbol forever, which
let a 131-byte file decode to 4096 x 4096 pixels. Sealing costs about 4 bytes per stream.
"""

import math

import constriction
import numpy as np

from .codebook import ALPHABET, CODEBOOK
from .errors import L3ICError

__all__ = [
    "ALPHABET",
    "TABLE_BITS",
    "TABLE_TOTAL",
    "MIN_TABLE_BITS",
    "SEAL",
    "quantize_counts",
    "default_prior",
    "pack_table",
    "unpack_table",
    "ans_encode",
    "table_model",
    "min_stream_bytes",
    "min_bits_per_symbol",
    "bound_bytes",
    "read_varint",
    "write_varint",
]

TABLE_BITS = 12
TABLE_TOTAL = 1 << TABLE_BITS  # priors sum to 4096
MIN_TABLE_BITS = 6  # a stored table sums to 2**bits, bits in 6..12, chosen per channel

SEAL = np.array([0, 1], dtype=np.uint32)  # the coder's first state, 2**32, as its two words

_Categorical = constriction.stream.model.Categorical


def quantize_counts(hist: np.ndarray, bits: int = TABLE_BITS) -> np.ndarray:
    """Scales a histogram to integers summing to 2**bits, keeping every present symbol >= 1.

    Args:
        hist: (32,) non-negative counts, not all zero.
        bits: precision of the table, MIN_TABLE_BITS..TABLE_BITS.

    Returns:
        (32,) int64 counts, sum == 2**bits, zero exactly where ``hist`` is zero.
    """
    hist = np.asarray(hist, dtype=np.float64)
    total = 1 << bits
    present = hist > 0
    counts = np.where(present, np.maximum(1, np.floor(hist / hist.sum() * total)), 0)
    counts = counts.astype(np.int64)
    # Give the rounding error to (or take it from) the most frequent symbols, keeping each >= 1.
    order = np.argsort(-hist, kind="stable")
    diff = total - int(counts.sum())
    i = 0
    while diff != 0:
        k = order[i % int(present.sum())]
        step = 1 if diff > 0 else -1
        if counts[k] + step >= 1:
            counts[k] += step
            diff -= step
        i += 1
    return counts


def default_prior(channels: int) -> np.ndarray:
    """A generic prior for models without a learnt one: p(q) proportional to 2**-|q|.

    Returns:
        (channels, 32) int64 tables, each summing to TABLE_TOTAL.
    """
    hist = 2.0 ** -np.abs(CODEBOOK.astype(np.float64))
    return np.tile(quantize_counts(hist * 1e6), (channels, 1))


def pack_table(table: np.ndarray) -> bytes:
    """Compact table: one byte (first symbol | (12 - bits) << 5), span n, n-1 varint counts.

    The last count is implied by the total 2**bits. See docs/format.md.

    Args:
        table: (32,) int counts summing to 2**bits, MIN_TABLE_BITS <= bits <= TABLE_BITS.
    """
    bits = int(table.sum()).bit_length() - 1
    if table.sum() != 1 << bits or not MIN_TABLE_BITS <= bits <= TABLE_BITS:
        raise ValueError(f"table must sum to a power of two 2**6..2**12, got {table.sum()}")
    nz = np.flatnonzero(table)
    lo, hi = int(nz[0]), int(nz[-1])
    out = bytearray([lo | (TABLE_BITS - bits) << 5, hi - lo + 1])
    for c in table[lo:hi]:
        out += write_varint(int(c))
    return bytes(out)


def unpack_table(buf: bytes, pos: int) -> tuple[np.ndarray, int]:
    """Inverse of ``pack_table``: returns ((32,) int64 table, position after it)."""
    if pos + 2 > len(buf):
        raise L3ICError("truncated frequency table")
    lo, bits, n = buf[pos] & 31, TABLE_BITS - (buf[pos] >> 5), buf[pos + 1]
    pos += 2
    if n < 1 or lo + n > ALPHABET or bits < MIN_TABLE_BITS:
        raise L3ICError(f"bad frequency table: first symbol {lo}, span {n}, {bits} bits")
    total = 1 << bits
    table = np.zeros(ALPHABET, dtype=np.int64)
    head = np.frombuffer(buf, dtype=np.uint8, count=min(n - 1, len(buf) - pos), offset=pos)
    if len(head) == n - 1 and (head < 0x80).all():  # every count fits one varint byte
        table[lo : lo + n - 1] = head
        pos += n - 1
    else:
        for k in range(lo, lo + n - 1):
            table[k], pos = read_varint(buf, pos)
    table[lo + n - 1] = total - table.sum()
    if table[lo + n - 1] < 1 or (table > total).any():
        raise L3ICError("bad frequency table: counts do not add up")
    return table, pos


def write_varint(n: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf: bytes, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Reads one LEB128 varint at ``pos``; returns (value, next position)."""
    value = 0
    for i in range(max_bytes):
        if pos >= len(buf):
            raise L3ICError("truncated header")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise L3ICError("bad header: overlong number")


def ans_encode(symbols: np.ndarray, table: np.ndarray) -> bytes:
    """A sealed ANS stream of (n,) symbols coded with one table of counts: little-endian bytes."""
    coder = constriction.stream.stack.AnsCoder(SEAL.copy())
    coder.encode_reverse(symbols.astype(np.int32), table_model(table))
    return coder.get_compressed().astype("<u4").tobytes()


def min_stream_bytes(n: int, table: np.ndarray) -> int:
    """A lower bound on the bytes of any stream that codes ``n`` symbols with ``table``.

    Every symbol costs at least -log2(p_max) bits, p_max being the table's largest probability
    (plus a margin for the coder's 24-bit rounding); the coder's state may hold up to 64 bits
    more than were paid for. A stream shorter than this cannot hold ``n`` symbols, which is
    checked before anything is decoded.

    Args:
        n: symbols in the channel (h * w).
        table: (32,) non-negative counts, not all zero.
    """
    return bound_bytes(n, min_bits_per_symbol(table))


def min_bits_per_symbol(table: np.ndarray) -> float:
    """-log2 of the table's largest probability, less a margin for the coder's rounding."""
    table = np.asarray(table, dtype=np.float64)
    return -math.log2(min(1.0, float(table.max() / table.sum()) + 2.0**-16))


def bound_bytes(n: int, bits_per_symbol: float) -> int:
    """``min_stream_bytes`` from ``min_bits_per_symbol`` of the table (kept per prior)."""
    return max(0, int((n * bits_per_symbol - 64) // 8))


def table_model(table: np.ndarray):
    """The constriction model of a table of counts (``Categorical(table / sum, perfect=False)``);
    the readers build a prior's once and keep it."""
    return _Categorical(np.asarray(table, dtype=np.float64), perfect=False)
