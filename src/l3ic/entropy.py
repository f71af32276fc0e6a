"""Per-channel entropy coding of codebook indices with constriction's ANS coder.

Every latent channel is its own stream with its own frequency table, so any channel can be
decoded alone. A channel is coded in one of three modes (whichever is smallest), each one class
here that owns all of it (``ChannelMode``: its id in the header, its header bytes, its least
stream size, its likeliest symbol, its encoding and decoding; ``MODES`` by id):

- ``Constant`` (id 0): every value is the same; only that value is stored, no stream.
- ``Prior`` (id 1): the stream is coded with the model's per-channel prior table (shipped with
  the weights), so the file stores no table.
- ``Table`` (id 2): the stream is coded with the channel's own quantised histogram, stored
  compactly (see ``pack_table`` and docs/format.md).

Symbols are codebook indices 0..31 (``q + 15``) as uint8, row-major over (h, w).

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
    "TABLE_TOTAL",
    "MIN_TABLE_BITS",
    "CONSTANT",
    "PRIOR",
    "TABLE",
    "SEAL",
    "ChannelCode",
    "ChannelMode",
    "Constant",
    "Prior",
    "Table",
    "MODES",
    "quantize_counts",
    "default_prior",
    "pack_table",
    "unpack_table",
    "encode_channel",
    "decode_channel",
    "prior_model",
    "min_stream_bytes",
    "min_bits_per_symbol",
    "bound_bytes",
    "read_varint",
    "write_varint",
]

TABLE_BITS = 12
TABLE_TOTAL = 1 << TABLE_BITS  # priors sum to 4096
MIN_TABLE_BITS = 6  # a stored table sums to 2**bits, bits in 6..12, chosen per channel
CONSTANT, PRIOR, TABLE = 0, 1, 2

SEAL = np.array([0, 1], dtype=np.uint32)  # the coder's first state, 2**32, as its two words
_SEAL_WORDS = SEAL.tolist()

_AnsCoder = constriction.stream.stack.AnsCoder
_Categorical = constriction.stream.model.Categorical


class ChannelCode:
    """One coded channel: its mode, the constant symbol or table, and the stream bytes.

    Attributes:
        mode: the mode's id, a key of ``MODES`` (CONSTANT, PRIOR or TABLE).
        symbol: the constant symbol (CONSTANT mode), else 0.
        table: (32,) int64 counts summing to 2**bits (TABLE mode), else None.
        stream: the ANS words as little-endian bytes (empty for CONSTANT).
        sealed: the stream starts from ``SEAL`` (version 2 files); False for version 1 files.
    """

    __slots__ = ("mode", "symbol", "table", "stream", "sealed")

    def __init__(
        self, mode: int, symbol: int = 0, table=None, stream: bytes = b"", sealed: bool = True
    ):
        self.mode, self.symbol, self.table, self.stream = mode, symbol, table, stream
        self.sealed = sealed

    @property
    def kind(self) -> "ChannelMode":
        """The mode's class instance (``MODES[mode]``)."""
        return MODES[self.mode]


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


def _model(table: np.ndarray):
    return _Categorical(np.asarray(table, dtype=np.float64), perfect=False)


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


def _ans_encode(symbols: np.ndarray, table: np.ndarray) -> bytes:
    coder = _AnsCoder(SEAL.copy())
    coder.encode_reverse(symbols.astype(np.int32), _model(table))
    return coder.get_compressed().astype("<u4").tobytes()


def _stream_bytes(hist: np.ndarray, table: np.ndarray) -> float:
    """Estimated stream size: cross-entropy of ``hist`` under ``table``, the seal, one word."""
    p = np.maximum(table / table.sum(), 2.0**-24)
    return 4 * np.ceil((float(-(hist * np.log2(p)).sum()) + 64) / 32)


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


def prior_model(prior: np.ndarray):
    """The entropy model of a prior table, built once and passed to ``decode_channel``."""
    return _model(prior)


class ChannelMode:
    """One way of coding a channel: everything the format, the coder and the readers need of it.

    Attributes:
        id: the mode's byte in the channel's header entry (docs/format.md, "Channel entries";
            record_decoder.c has the same ids).
        name: its name in ``l3ic info`` and the docs.
    """

    id: int
    name: str

    def plan(self, symbols: np.ndarray, hist: np.ndarray, prior: np.ndarray):
        """This mode's offer for a channel: (estimated bytes, a function that codes it and
        returns its ``ChannelCode``), or None where the mode cannot code it.

        Args:
            symbols: (n,) uint8 codebook indices; hist: their (32,) counts; prior: (32,) the
                channel's prior table.
        """
        raise NotImplementedError

    def header(self, code: ChannelCode) -> bytes:
        """The entry's bytes after the mode byte."""
        raise NotImplementedError

    def read_header(self, data: bytes, pos: int, sealed: bool) -> tuple[ChannelCode, int, int]:
        """Reads the entry's bytes after the mode byte at ``pos``.

        Returns:
            (the code, its stream's length in bytes, the position after the entry).

        Raises:
            L3ICError: cut short or out of range.
        """
        raise NotImplementedError

    def least_stream_bytes(self, code: ChannelCode, n: int, prior_bits: float) -> int:
        """The fewest bytes a stream of ``n`` symbols can have (``bound_bytes``), given
        ``min_bits_per_symbol`` of the channel's prior; checked before anything is decoded."""
        raise NotImplementedError

    def likeliest(self, code: ChannelCode, prior: np.ndarray) -> int:
        """The symbol a reader that skips this channel puts in its place (its most likely)."""
        raise NotImplementedError

    def decode(self, code: ChannelCode, n: int, prior: np.ndarray, model=None) -> np.ndarray:
        """The channel's (n,) uint8 symbols (``decode_channel``)."""
        raise NotImplementedError


class Constant(ChannelMode):
    """Every value the same: the entry holds that symbol (one byte), there is no stream."""

    id, name = CONSTANT, "constant"

    def plan(self, symbols, hist, prior):
        if np.count_nonzero(hist) != 1:
            return None
        return 0.0, lambda: ChannelCode(CONSTANT, symbol=int(symbols[0]))

    def header(self, code):
        return bytes([code.symbol])

    def read_header(self, data, pos, sealed):
        if pos >= len(data):
            raise L3ICError("truncated .l3ic file")
        if data[pos] >= ALPHABET:
            raise L3ICError(f"corrupt .l3ic header (symbol {data[pos]} out of range)")
        return ChannelCode(CONSTANT, symbol=data[pos]), 0, pos + 1

    def least_stream_bytes(self, code, n, prior_bits):
        return 0

    def likeliest(self, code, prior):
        return code.symbol

    def decode(self, code, n, prior, model=None):
        return np.full(n, code.symbol, dtype=np.uint8)


class _Stream(ChannelMode):
    """A mode with an ANS stream over one table: the entry starts with the stream's length."""

    def table_of(self, code: ChannelCode, prior: np.ndarray) -> np.ndarray:
        """(32,) the counts the stream is coded with."""
        raise NotImplementedError

    def ans_model(self, code: ChannelCode, prior: np.ndarray, model=None):
        """The constriction model the stream is coded with; ``model`` is ``prior_model(prior)``
        where the caller keeps it (built here when needed and not given)."""
        raise NotImplementedError

    def header(self, code):
        return write_varint(len(code.stream))

    def read_header(self, data, pos, sealed):
        length, pos = read_varint(data, pos)
        if length < 4 * (1 + sealed) or length % 4:
            raise L3ICError(f"corrupt .l3ic header (stream of {length} bytes)")
        return ChannelCode(self.id, sealed=sealed), length, pos

    def likeliest(self, code, prior):
        return int(np.argmax(self.table_of(code, prior)))

    def decode(self, code, n, prior, model=None):
        if len(code.stream) == 0 or len(code.stream) % 4:
            raise L3ICError(f"corrupt channel stream of {len(code.stream)} bytes")
        words = np.frombuffer(code.stream, dtype="<u4").astype(np.uint32)
        model = self.ans_model(code, prior, model)
        try:
            decoder = _AnsCoder(words)
            symbols = decoder.decode(model, n)
            if code.sealed:
                exact = decoder.get_compressed().tolist() == _SEAL_WORDS
            else:
                exact = decoder.is_empty()
        except (ValueError, RuntimeError, OverflowError) as e:
            raise L3ICError(f"corrupt channel stream: {e}") from None
        if not exact:
            raise L3ICError(
                "corrupt channel stream: it does not hold exactly the image's symbols"
                if code.sealed
                else "corrupt channel stream: data left over after decoding"
            )
        return symbols.astype(np.uint8)


class Prior(_Stream):
    """Coded with the channel's prior (the preset's sidecar): the entry holds the length only."""

    id, name = PRIOR, "prior"

    def plan(self, symbols, hist, prior):
        return _stream_bytes(hist, prior), lambda: ChannelCode(
            PRIOR, stream=_ans_encode(symbols, prior)
        )

    def table_of(self, code, prior):
        return prior

    def ans_model(self, code, prior, model=None):
        return model if model is not None else _model(prior)

    def least_stream_bytes(self, code, n, prior_bits):
        return bound_bytes(n, prior_bits)


class Table(_Stream):
    """Coded with the channel's own histogram, stored in the entry after the length
    (``pack_table``) at the precision (6..12 bits) that makes table and stream smallest."""

    id, name = TABLE, "table"

    def plan(self, symbols, hist, prior):
        best = None
        for bits in range(MIN_TABLE_BITS, TABLE_BITS + 1):
            table = quantize_counts(hist, bits)
            cost = _stream_bytes(hist, table) + len(pack_table(table))
            if best is None or cost < best[0]:
                best = cost, table
        cost, table = best
        return cost, lambda: ChannelCode(TABLE, table=table, stream=_ans_encode(symbols, table))

    def header(self, code):
        return super().header(code) + pack_table(code.table)

    def read_header(self, data, pos, sealed):
        code, length, pos = super().read_header(data, pos, sealed)
        code.table, pos = unpack_table(data, pos)
        return code, length, pos

    def table_of(self, code, prior):
        return code.table

    def ans_model(self, code, prior, model=None):
        return _model(code.table)

    def least_stream_bytes(self, code, n, prior_bits):
        return min_stream_bytes(n, code.table)


MODES: dict[int, ChannelMode] = {mode.id: mode for mode in (Constant(), Prior(), Table())}


def encode_channel(symbols: np.ndarray, prior: np.ndarray) -> ChannelCode:
    """Codes one channel in the cheapest mode (estimated by each mode's ``plan``, then coded
    once); on a tie the mode of the lower id wins.

    Args:
        symbols: (n,) uint8 codebook indices 0..31.
        prior: (32,) int table of this channel's prior.
    """
    hist = np.bincount(symbols, minlength=ALPHABET)
    best = None
    for mode in MODES.values():
        offer = mode.plan(symbols, hist, prior)
        if offer is not None and (best is None or offer[0] < best[0]):
            best = offer
    return best[1]()


def decode_channel(code: ChannelCode, n: int, prior: np.ndarray, model=None) -> np.ndarray:
    """Decodes one channel of ``n`` symbols; raises L3ICError if the stream does not fit.

    A sealed stream must end on the seal exactly: one that runs out before its ``n`` symbols
    are decoded, or has data left over, is an error. An unsealed (version 1) stream can only be
    checked for data left over (see the module docstring).

    Args:
        code: the channel.
        n: symbols in the channel (h * w).
        prior: (32,) the channel's prior table.
        model: ``prior_model(prior)``, to save building it again for every file.

    Returns:
        (n,) uint8 codebook indices.
    """
    return code.kind.decode(code, n, prior, model)
