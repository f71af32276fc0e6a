"""The ways one latent channel is coded, one class per mode (docs/format.md, "Channel entry").

Every latent channel is its own stream, so any channel can be decoded alone. A channel is coded
in one of these modes, whichever is smallest (``encode_channel``):

- ``Constant`` (id 0): every value is the same; only that value is stored, no stream.
- ``Prior`` (id 1): the stream is coded with the model's per-channel prior table (shipped with
  the weights), so the file stores no table.
- ``Table`` (id 2): the stream is coded with the channel's own quantised histogram, stored
  compactly (``entropy.pack_table``).
- ``Context`` (id 3, format version 4 on): each symbol is coded with the preset's table of its
  context, drawn from the channel's own neighbours (``l3ic.context_model``).

Each mode's class owns all of it: its id in the header, its header bytes, the least size of its
stream, its likeliest symbol, its encoding and decoding. ``MODES`` lists them by id; a new mode
is one class here (and its twin in record_decoder.c, whose ids a test checks against these).
"""

import constriction
import numpy as np

from . import context_model
from .entropy import (
    ALPHABET,
    MIN_TABLE_BITS,
    SEAL,
    TABLE_BITS,
    ans_encode,
    bound_bytes,
    min_stream_bytes,
    pack_table,
    quantize_counts,
    read_varint,
    table_model,
    unpack_table,
    write_varint,
)
from .errors import L3ICError

__all__ = [
    "CONSTANT",
    "PRIOR",
    "TABLE",
    "CONTEXT",
    "ChannelCode",
    "ChannelMode",
    "Constant",
    "Prior",
    "Table",
    "Context",
    "MODES",
    "encode_channel",
    "decode_channel",
]

CONSTANT, PRIOR, TABLE, CONTEXT = 0, 1, 2, 3
_SEAL_WORDS = SEAL.tolist()


class ChannelCode:
    """One coded channel: its mode, the constant symbol or table, and the stream bytes.

    Attributes:
        mode: the mode's id, a key of ``MODES`` (CONSTANT, PRIOR, TABLE or CONTEXT).
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


def _stream_bytes(bits: float) -> float:
    """Estimated size of a stream spending ``bits`` on its symbols: the seal, whole words."""
    return 4 * np.ceil((bits + 64) / 32)


def _table_bits(hist: np.ndarray, table: np.ndarray) -> float:
    """The bits one table spends on symbols counted by ``hist``: their cross-entropy."""
    p = np.maximum(table / table.sum(), 2.0**-24)
    return float(-(hist * np.log2(p)).sum())


class ChannelMode:
    """One way of coding a channel: everything the format, the coder and the readers need of it.

    Attributes:
        id: the mode's byte in the channel's header entry (docs/format.md, "Channel entries";
            record_decoder.c has the same ids).
        name: its name in ``l3ic info`` and the docs.
        since: the first format version that has it.
    """

    id: int
    name: str
    since: int = 1

    def plan(self, symbols: np.ndarray, hist: np.ndarray, prior: np.ndarray, tables=None):
        """This mode's offer for a channel: (estimated bytes, a function that codes it and
        returns its ``ChannelCode``), or None where the mode cannot code it.

        Args:
            symbols: (h, w) uint8 codebook indices (or (n,) for modes without context);
                hist: their (32,) counts; prior: (32,) the channel's prior table; tables:
                (CONTEXTS, 32) its context tables, None where the file has no context mode.
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

    def least_stream_bytes(self, code: ChannelCode, n: int, bits: dict[int, float]) -> int:
        """The fewest bytes a stream of ``n`` symbols can have (``bound_bytes``), checked before
        anything is decoded; ``bits`` holds the fewest bits per symbol of the channel's
        preset tables, by mode id (``min_bits_per_symbol``: PRIOR of the prior, CONTEXT of
        the likeliest symbol of any context table)."""
        raise NotImplementedError

    def likeliest(self, code: ChannelCode, prior: np.ndarray) -> int:
        """The symbol a reader that skips this channel puts in its place (its most likely)."""
        raise NotImplementedError

    def decode(self, code: ChannelCode, shape, prior: np.ndarray, model=None, tables=None):
        """The channel's (n,) uint8 symbols (``decode_channel``)."""
        raise NotImplementedError


class Constant(ChannelMode):
    """Every value the same: the entry holds that symbol (one byte), there is no stream."""

    id, name = CONSTANT, "constant"

    def plan(self, symbols, hist, prior, tables=None):
        if np.count_nonzero(hist) != 1:
            return None
        return 0.0, lambda: ChannelCode(CONSTANT, symbol=int(np.argmax(hist)))

    def header(self, code):
        return bytes([code.symbol])

    def read_header(self, data, pos, sealed):
        if pos >= len(data):
            raise L3ICError("truncated .l3ic file")
        if data[pos] >= ALPHABET:
            raise L3ICError(f"corrupt .l3ic header (symbol {data[pos]} out of range)")
        return ChannelCode(CONSTANT, symbol=data[pos]), 0, pos + 1

    def least_stream_bytes(self, code, n, bits):
        return 0

    def likeliest(self, code, prior):
        return code.symbol

    def decode(self, code, shape, prior, model=None, tables=None):
        return np.full(int(np.prod(shape)), code.symbol, dtype=np.uint8)


class _Stream(ChannelMode):
    """A mode with an ANS stream over one table: the entry starts with the stream's length."""

    def table_of(self, code: ChannelCode, prior: np.ndarray) -> np.ndarray:
        """(32,) the counts the stream is coded with."""
        raise NotImplementedError

    def ans_model(self, code: ChannelCode, prior: np.ndarray, model=None):
        """The constriction model the stream is coded with; ``model`` is ``table_model(prior)``
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

    def decode(self, code, shape, prior, model=None, tables=None):
        n = int(np.prod(shape))
        if len(code.stream) == 0 or len(code.stream) % 4:
            raise L3ICError(f"corrupt channel stream of {len(code.stream)} bytes")
        words = np.frombuffer(code.stream, dtype="<u4").astype(np.uint32)
        model = self.ans_model(code, prior, model)
        try:
            decoder = constriction.stream.stack.AnsCoder(words)
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

    def plan(self, symbols, hist, prior, tables=None):
        return _stream_bytes(_table_bits(hist, prior)), lambda: ChannelCode(
            PRIOR, stream=ans_encode(symbols.ravel(), prior)
        )

    def table_of(self, code, prior):
        return prior

    def ans_model(self, code, prior, model=None):
        return model if model is not None else table_model(prior)

    def least_stream_bytes(self, code, n, bits):
        return bound_bytes(n, bits[PRIOR])


class Table(_Stream):
    """Coded with the channel's own histogram, stored in the entry after the length
    (``pack_table``) at the precision (6..12 bits) that makes table and stream smallest."""

    id, name = TABLE, "table"

    def plan(self, symbols, hist, prior, tables=None):
        best = None
        for bits in range(MIN_TABLE_BITS, TABLE_BITS + 1):
            table = quantize_counts(hist, bits)
            cost = _stream_bytes(_table_bits(hist, table)) + len(pack_table(table))
            if best is None or cost < best[0]:
                best = cost, table
        cost, table = best
        return cost, lambda: ChannelCode(
            TABLE, table=table, stream=ans_encode(symbols.ravel(), table)
        )

    def header(self, code):
        return super().header(code) + pack_table(code.table)

    def read_header(self, data, pos, sealed):
        code, length, pos = super().read_header(data, pos, sealed)
        code.table, pos = unpack_table(data, pos)
        return code, length, pos

    def table_of(self, code, prior):
        return code.table

    def ans_model(self, code, prior, model=None):
        return table_model(code.table)

    def least_stream_bytes(self, code, n, bits):
        return min_stream_bytes(n, code.table)


class Context(_Stream):
    """Coded symbol by symbol with the preset's table of each symbol's context
    (``l3ic.context_model``, format version 4 on): the entry holds the length only; the
    file's header names the context tables (``container``)."""

    id, name, since = CONTEXT, "context", 4

    def plan(self, symbols, hist, prior, tables=None):
        if tables is None or symbols.ndim != 2:
            return None
        cost = _stream_bytes(context_model.ideal_bits(symbols, tables))
        return cost, lambda: ChannelCode(CONTEXT, stream=context_model.encode(symbols, tables))

    def least_stream_bytes(self, code, n, bits):
        return bound_bytes(n, bits[CONTEXT])

    def likeliest(self, code, prior):
        return int(np.argmax(prior))  # the channel's marginal: its neighbours are unknown

    def decode(self, code, shape, prior, model=None, tables=None):
        if tables is None or np.ndim(shape) != 1:
            raise L3ICError("a context-coded channel needs its (h, w) and its context tables")
        return context_model.decode(code.stream, *shape, tables).ravel()


MODES: dict[int, ChannelMode] = {
    mode.id: mode for mode in (Constant(), Prior(), Table(), Context())
}


def encode_channel(symbols: np.ndarray, prior: np.ndarray, tables=None) -> ChannelCode:
    """Codes one channel in the cheapest mode (estimated by each mode's ``plan``, then coded
    once); on a tie the mode of the lower id wins.

    Args:
        symbols: (h, w) uint8 codebook indices 0..31 ((n,) without context tables).
        prior: (32,) int table of this channel's prior.
        tables: (CONTEXTS, 32) the channel's context tables, to let the context mode compete
            (format version 4); None: modes constant, prior and table only.
    """
    hist = np.bincount(symbols.ravel(), minlength=ALPHABET)
    best = None
    for mode in MODES.values():
        offer = mode.plan(symbols, hist, prior, tables)
        if offer is not None and (best is None or offer[0] < best[0]):
            best = offer
    return best[1]()


def decode_channel(code: ChannelCode, n, prior: np.ndarray, model=None, tables=None) -> np.ndarray:
    """Decodes one channel of ``n`` symbols; raises L3ICError if the stream does not fit.

    A sealed stream must end on the seal exactly: one that runs out before its ``n`` symbols
    are decoded, or has data left over, is an error. An unsealed (version 1) stream can only be
    checked for data left over (see the module docstring).

    Args:
        code: the channel.
        n: symbols in the channel (h * w), or its shape (h, w) (which the context mode needs).
        prior: (32,) the channel's prior table.
        model: ``table_model(prior)``, to save building it again for every file.
        tables: (CONTEXTS, 32) the channel's context tables (the context mode needs them).

    Returns:
        (n,) uint8 codebook indices.
    """
    return code.kind.decode(code, n, prior, model, tables)
