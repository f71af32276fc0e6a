"""Same-channel context modelling of a latent channel: the coding model of format version 4's
context mode (docs/format.md, "Version 4: the context mode", which is still being built).

Each symbol of a channel is coded with the table of its *context*, drawn only from symbols of
the same channel that a decoder already has, so every channel still decodes alone:

    context = 20 * (clip(L, -2, 2) + 2) + 4 * (clip(T, -2, 2) + 2) + bucket(|TL| + |TR| + |LL|)

with L, T, TL, TR, LL the latent values (q = symbol - 15) left, above, above-left, above-right
and two to the left of the symbol, 0 outside the image, and bucket(x) = 0 for x = 0, 1 for
1..2, 2 for 3..5, 3 for 6 and more: ``CONTEXTS`` = 100 contexts. The tables are static, one
(100, 32) set per channel, learned from training latents (``learn_tables``), in which groups of
contexts share a table (at most ``TABLE_GROUPS`` distinct tables per channel). The choice was
measured on the validation split (docs/format.md).

Symbols are coded in *wavefront* order: wavefront t = 2 i + j holds the symbols (i, t - 2 i),
by ascending row i, and t runs from 0 to 2 (h - 1) + w - 1. Every neighbour a context reads
lies in an earlier wavefront (L and TR in t - 1, T and LL in t - 2, TL in t - 3), so a decoder
can decode a whole wavefront, of all channels at once, in one vectorised step, which keeps the
Python reader usable; a compiled reader may go symbol by symbol in the same order.

Symbols are codebook indices 0..31 (``q + 15``) as uint8; shapes are (h, w) per channel.
"""

import functools
import hashlib

import constriction
import numpy as np

from .codebook import ALPHABET
from .entropy import SEAL, TABLE_TOTAL, quantize_counts
from .errors import L3ICError

__all__ = [
    "CONTEXTS",
    "TABLE_GROUPS",
    "EDGE",
    "contexts",
    "wavefronts",
    "group_contexts",
    "learn_tables",
    "ideal_bits",
    "encode",
    "decode",
    "decode_many",
    "tables_id",
]

CONTEXTS = 100
# Learned tables per channel: its contexts grouped into 16 share them (learn_tables). On the
# validation split this cost 0.16 / 0.07 / 0.01 % of the context mode's bits for 16c / 32c /
# 64c (8 groups: 0.58 / 0.39 / 0.19 %) and keeps a channel's tables within 6.2 KB, which the
# compiled reader's speed depends on.
TABLE_GROUPS = 16
EDGE = 15  # the symbol of q = 0, what a neighbour outside the image reads as

_family = constriction.stream.model.Categorical(perfect=False)
_SEAL_WORDS = SEAL.tolist()


def _lookup() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The context as lookups over neighbour symbols:
    ``LEFT_TOP[L, T] + BUCKET[SIZE[TL] + SIZE[TR] + SIZE[LL]]``."""
    v = np.arange(ALPHABET) - EDGE  # the latent value of each symbol
    c = np.clip(v, -2, 2) + 2
    left_top = 20 * c[:, None] + 4 * c[None, :]
    bucket = np.searchsorted([1, 3, 6], np.arange(3 * 16 + 1), side="right")
    return left_top.astype(np.int64), np.abs(v).astype(np.int64), bucket.astype(np.int64)


_LEFT_TOP, _SIZE, _BUCKET = _lookup()


def _padded(symbols: np.ndarray) -> np.ndarray:
    """(m, h + 1, w + 3) uint8: (m, h, w) ``symbols`` at [:, 1:, 2:-1], ``EDGE`` around."""
    m, h, w = symbols.shape
    p = np.full((m, h + 1, w + 3), EDGE, dtype=np.uint8)
    p[:, 1:, 2:-1] = symbols
    return p


def _flat_context(flat: np.ndarray, at: np.ndarray, row: int) -> np.ndarray:
    """The contexts of the cells ``at`` of ``_padded`` planes flattened to (m, cells), of row
    length ``row`` (w + 3): (m, len(at)) int64."""
    size = _SIZE[flat[:, at - row - 1]] + _SIZE[flat[:, at - row + 1]] + _SIZE[flat[:, at - 2]]
    return _LEFT_TOP[flat[:, at - 1], flat[:, at - row]] + _BUCKET[size]


def contexts(symbols: np.ndarray) -> np.ndarray:
    """The context of every symbol of a channel.

    Args:
        symbols: (h, w) uint8 codebook indices.

    Returns:
        (h, w) int64 contexts, 0..CONTEXTS-1.
    """
    h, w = symbols.shape
    at = (np.arange(1, h + 1)[:, None] * (w + 3) + np.arange(2, w + 2)).ravel()
    return _flat_context(_padded(symbols[None]).reshape(1, -1), at, w + 3).reshape(h, w)


@functools.lru_cache(maxsize=64)
def wavefronts(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coding order of an (h, w) channel.

    Returns:
        (rows, cols, starts): (n,) int64 row and column of each symbol in coding order, and
        the (wavefronts + 1,) int64 positions where each wavefront starts in it (and the end).
    """
    i, j = np.mgrid[0:h, 0:w]
    t = (2 * i + j).ravel()
    order = np.lexsort((i.ravel(), t))
    starts = np.searchsorted(t[order], np.arange(2 * (h - 1) + w + 1))
    rows, cols = i.ravel()[order], j.ravel()[order]
    for a in (rows, cols, starts):
        a.flags.writeable = False
    return rows, cols, starts


def _code_length(counts: np.ndarray) -> np.ndarray:
    """Bits of coding histograms ``counts`` (..., 32) each with its own distribution."""
    n = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(counts > 0, np.log2(counts / np.maximum(n, 1)), 0.0)
    return -(counts * logs).sum(axis=-1)


def group_contexts(hist: np.ndarray, groups: int) -> np.ndarray:
    """Groups a channel's contexts so that each group can share one table.

    Greedy merging: starting from one group per context seen in ``hist``, merge the two groups
    whose pooled histogram costs the fewest extra bits over coding each with its own, until
    ``groups`` are left.

    Args:
        hist: (CONTEXTS, 32) int64 symbol counts per context.
        groups: how many groups to keep (at least 1).

    Returns:
        (CONTEXTS,) int64 group of each context seen, 0..groups-1 (fewer where fewer were
        seen); -1 for the contexts never seen.
    """
    seen = np.flatnonzero(hist.sum(axis=1) > 0)
    members = [[int(c)] for c in seen]
    pooled = hist[seen].astype(np.float64)
    while len(members) > max(groups, 1):
        own = _code_length(pooled)
        extra = _code_length(pooled[:, None] + pooled[None]) - own[:, None] - own[None]
        np.fill_diagonal(extra, np.inf)
        a, b = sorted(np.unravel_index(int(np.argmin(extra)), extra.shape))
        members[a] += members.pop(b)
        pooled[a] += pooled[b]
        pooled = np.delete(pooled, b, axis=0)
    group = np.full(CONTEXTS, -1)
    for g, cs in enumerate(members):
        group[cs] = g
    return group


def learn_tables(latents, priors: np.ndarray, groups: int = TABLE_GROUPS) -> np.ndarray:
    """Per-channel context tables from training latents.

    Each channel's contexts are grouped (``group_contexts``), and each group's pooled
    histogram, plus 1 in every bin, is quantised to 12-bit counts (``entropy.quantize_counts``:
    sum 4096, every symbol at least 1): the contexts of a group share that table, which keeps a
    decoder's working set small. A context that no training symbol had takes the channel's
    prior.

    Args:
        latents: (h, w, C) int8 latents (any sizes).
        priors: (C, 32) the preset's prior tables (each summing to 4096).
        groups: distinct learned tables per channel, at most (``CONTEXTS``: no grouping).

    Returns:
        (C, CONTEXTS, 32) uint16 tables, each summing to 4096.
    """
    priors = np.asarray(priors, dtype=np.int64)
    channels = len(priors)
    hist = np.zeros((channels, CONTEXTS, ALPHABET), dtype=np.int64)
    for q in latents:
        symbols = np.asarray(q, dtype=np.int64) + EDGE
        for k in range(channels):
            ctx = contexts(symbols[..., k])
            np.add.at(hist[k], (ctx.ravel(), symbols[..., k].ravel()), 1)
    tables = np.empty((channels, CONTEXTS, ALPHABET), dtype=np.uint16)
    for k in range(channels):
        group = group_contexts(hist[k], groups)
        tables[k, group < 0] = priors[k]
        for g in np.unique(group[group >= 0]):
            tables[k, group == g] = quantize_counts(hist[k, group == g].sum(axis=0) + 1)
    return tables


def ideal_bits(symbols: np.ndarray, tables: np.ndarray) -> float:
    """The bits the context model spends on a channel, before the coder's rounding.

    Args:
        symbols: (h, w) uint8; tables: (CONTEXTS, 32) counts summing to 4096.
    """
    p = np.asarray(tables, dtype=np.float64)[contexts(symbols), symbols] / TABLE_TOTAL
    return float(-np.log2(p).sum())


def encode(symbols: np.ndarray, tables: np.ndarray) -> bytes:
    """Codes a channel with its context tables: a sealed stream (``entropy.SEAL``).

    Args:
        symbols: (h, w) uint8 codebook indices.
        tables: (CONTEXTS, 32) counts summing to 4096.

    Returns:
        The ANS words as little-endian bytes.
    """
    h, w = symbols.shape
    rows, cols, _ = wavefronts(h, w)
    ctx = contexts(symbols)[rows, cols]
    coder = constriction.stream.stack.AnsCoder(SEAL.copy())
    coder.encode_reverse(
        symbols[rows, cols].astype(np.int32),
        _family,
        np.asarray(tables, dtype=np.float64)[ctx] / TABLE_TOTAL,
    )
    return coder.get_compressed().astype("<u4").tobytes()


def decode(stream: bytes, h: int, w: int, tables: np.ndarray) -> np.ndarray:
    """``decode_many`` of one channel: (h, w) uint8 codebook indices."""
    return decode_many([stream], h, w, np.asarray(tables)[None])[0]


def decode_many(streams: list[bytes], h: int, w: int, tables: np.ndarray) -> np.ndarray:
    """Decodes channels coded by ``encode``, one wavefront of all of them at a time.

    Args:
        streams: m channels' streams.
        h, w: the channels' size.
        tables: (m, CONTEXTS, 32) counts summing to 4096, each channel's.

    Returns:
        (m, h, w) uint8 codebook indices.

    Raises:
        L3ICError: a stream does not hold exactly its channel's symbols.
    """
    for stream in streams:
        if len(stream) < 8 or len(stream) % 4:
            raise L3ICError(f"corrupt channel stream of {len(stream)} bytes")
    rows, cols, starts = wavefronts(h, w)
    probabilities = np.asarray(tables, dtype=np.float64) / TABLE_TOTAL
    m = len(streams)
    channel = np.arange(m)[:, None]
    p = _padded(np.zeros((m, h, w), dtype=np.uint8))  # filled wavefront by wavefront
    coders = [
        constriction.stream.stack.AnsCoder(np.frombuffer(s, "<u4").astype(np.uint32))
        for s in streams
    ]
    flat = p.reshape(m, -1)  # the planes' cells, row after row
    cells = (rows + 1) * (w + 3) + cols + 2  # each symbol's cell in its plane, in coding order
    try:
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            at = cells[a:b]
            models = probabilities[channel, _flat_context(flat, at, w + 3)]  # (m, cells, 32)
            flat[:, at] = [coder.decode(_family, models[k]) for k, coder in enumerate(coders)]
        exact = all(coder.get_compressed().tolist() == _SEAL_WORDS for coder in coders)
    except (ValueError, RuntimeError, OverflowError) as e:
        raise L3ICError(f"corrupt channel stream: {e}") from None
    if not exact:
        raise L3ICError("corrupt channel stream: it does not hold exactly the image's symbols")
    return p[:, 1:, 2:-1].copy()


def tables_id(tables: np.ndarray) -> bytes:
    """The 4 bytes that name a preset's context tables in version 4 files: the first bytes of
    SHA-256 over the (C, CONTEXTS, 32) counts as little-endian uint16."""
    data = np.ascontiguousarray(tables, dtype="<u2").tobytes()
    return hashlib.sha256(data).digest()[:4]
