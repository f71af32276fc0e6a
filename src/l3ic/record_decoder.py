"""The compiled reader of .l3ic records: header and channel streams decoded in one C call.

``record_decoder.c`` (built into the wheel next to this module when a C compiler is found at
install time, loaded with ctypes) parses a version 3 or 4 record and decodes the streams of the
channels asked for (context-coded ones too, with the preset's context tables), bit for bit as
``container.parse``, ``channel_modes.decode_channel`` and ``context_model.decode_many`` do
with constriction, about ten times faster per symbol: what lets a data loader read latents
faster than JPEG decodes (docs/latents.md). It is a fast path only. It accepts what the Python
reader accepts or gives up (returns None): another format version, another preset, a damaged
record; the caller then runs the Python reader, which decodes or says what is wrong. Without
the compiled library (no compiler at install time, or ``L3IC_PURE_PYTHON=1``) ``COMPILED`` is
False and everything runs in Python and constriction.
"""

import ctypes
import os
import sysconfig
import zlib
from pathlib import Path

import numpy as np

from .container import Container
from .entropy import ALPHABET

__all__ = ["COMPILED", "LIBRARY", "PURE_ENV", "RecordDecoder", "quantized_cdfs", "lookups"]

LIBRARY = "_record_decoder" + (sysconfig.get_config_var("SHLIB_SUFFIX") or ".so")
PURE_ENV = "L3IC_PURE_PYTHON"  # "1": do not load the compiled reader
PRECISION = 24  # constriction's Categorical: probabilities in 24 bits
CONTEXT_LUT_SHIFT = 16  # record_decoder.c's lookup of a context table: 2**16 quantiles an entry
# record_decoder.c's block of one context's tables: 33 uint32 cumulative, then the lookup.
CONTEXT_BLOCK = 4 * (ALPHABET + 1) + (1 << (PRECISION - CONTEXT_LUT_SHIFT))
_I_WIDTH, _I_HEIGHT, _I_H, _I_W, _I_GRAY, _I_HEADER, _I_FILE, _INFO = range(8)


def _load():
    """The C function ``l3ic_decode``, or None."""
    if os.environ.get(PURE_ENV, "").strip() not in ("", "0"):
        return None
    try:
        lib = ctypes.CDLL(str(Path(__file__).with_name(LIBRARY)))
    except OSError:
        return None
    fn = lib.l3ic_decode
    p, i, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    fn.argtypes = [p, i64, i, p, i, p, i, p, p, i64, p, i, p, i64, p, p, p, p, p, p]
    fn.restype = i
    return fn


_decode = _load()
COMPILED = _decode is not None


def quantized_cdfs(tables) -> np.ndarray:
    """The cumulative tables constriction codes with, for tables of counts.

    ``Categorical(table, perfect=False)`` gives every symbol 1 plus its share of the rest of
    2**24: cdf[i] = floor(sum(table[:i]) * (2**24 - 32) / 2**bits) + i (exact, in float64, for
    counts summing to 2**bits <= 2**12), cdf[32] = 2**24.

    Args:
        tables: (N, 32) integer counts, each row summing to a power of two (at most 2**12).

    Returns:
        (N, 33) uint32.
    """
    tables = np.asarray(tables, dtype=np.int64)
    bits = np.log2(tables.sum(axis=1)).astype(np.int64)[:, None]
    cumulative = np.concatenate([np.zeros_like(tables[:, :1]), np.cumsum(tables, axis=1)], 1)
    cdf = ((cumulative * ((1 << PRECISION) - ALPHABET)) >> bits) + np.arange(ALPHABET + 1)
    cdf[:, ALPHABET] = 1 << PRECISION
    return cdf.astype(np.uint32)


def lookups(cdfs: np.ndarray, shift: int) -> np.ndarray:
    """For (N, 33) cumulative tables: (N, 2**24 >> shift) uint8, the first symbol whose
    interval may hold each run of 2**shift quantiles (where the C decoder starts its search)."""
    starts = np.arange(1 << (PRECISION - shift), dtype=np.int64) << shift
    return (cdfs[:, None, 1:] <= starts[None, :, None]).sum(axis=2).astype(np.uint8)


def _context_blocks(tables: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What record_decoder.c reads of a preset's (C, CONTEXTS, 32) context tables.

    Returns:
        blocks: (N, CONTEXT_BLOCK) uint8, one per distinct table of each channel: the
            cumulative table (33 uint32, in the machine's order) then the lookup (uint8);
        where: (C, CONTEXTS) uint32, the byte offset in ``blocks`` of each context's block;
        bits: (C,) float64, fewer bits per symbol than any stream of a channel's tables
            spends (record_decoder.c's min_bits_per_symbol, a margin of 2**-12).
    """
    distinct, owner, where = [], [], np.empty(tables.shape[:2], dtype=np.uint32)
    for k, channel in enumerate(tables):
        unique, inverse = np.unique(channel, axis=0, return_inverse=True)
        where[k] = (len(distinct) + inverse.ravel()) * CONTEXT_BLOCK
        distinct.extend(unique)
        owner.extend([k] * len(unique))
    cdfs = quantized_cdfs(np.asarray(distinct))
    blocks = np.concatenate(
        [cdfs.astype(np.uint32).view(np.uint8), lookups(cdfs, CONTEXT_LUT_SHIFT)], axis=1
    )
    widest = np.diff(cdfs.astype(np.int64), axis=1).max(axis=1) / (1 << PRECISION)
    bits = np.full(len(tables), np.inf)
    np.minimum.at(bits, owner, -np.log2(np.minimum(1.0, widest + 2.0**-12)))
    return np.ascontiguousarray(blocks), where, bits


class RecordDecoder:
    """One preset's compiled reader (``LatentCoder`` holds one when ``COMPILED``).

    Args:
        preset: the preset name the records must carry.
        fingerprint: the 8-byte fingerprint of its weights.
        priors: (C, 32) integer prior tables.
        channel_order: (C,) the channel of each stored stream (the preset's ``channel_order``).
        context_tables: (C, CONTEXTS, 32) the preset's context tables and tables_id their 4-byte
            name, or None: then version 4 records with context-coded channels are left to
            Python.
    """

    def __init__(
        self,
        preset: str,
        fingerprint: bytes,
        priors,
        channel_order,
        context_tables=None,
        tables_id: bytes | None = None,
    ):
        self.preset, self.fingerprint = preset.encode("ascii"), bytes(fingerprint)
        self._cdfs = np.ascontiguousarray(quantized_cdfs(priors))
        self._order = np.ascontiguousarray(channel_order, dtype=np.int32)
        self.num_channels = len(self._order)
        self._contexts = (None, None, None, None)  # tables id, blocks, where, fewest bits
        if context_tables is not None:
            self._contexts = (bytes(tables_id), *_context_blocks(np.asarray(context_tables)))
        # Shared by threads (ctypes releases the GIL during the call): a dict of read-only
        # arrays, and a size hint that is only ever a guess checked by the C code.
        self._picked = {}  # tuple of channels -> (k,) int32
        self._size = 0  # the last latent's bytes: most datasets have one image size

    def decode(
        self, data: bytes, picked: list[int], max_pixels: int, whole: bool = True
    ) -> tuple[np.ndarray, dict, list[int]] | None:
        """Decodes channels ``picked`` of a record; None if the Python reader must do it.

        Args:
            data: the record (``whole``), or its first bytes: at least the header and the
                streams of ``picked``. The header's CRC-32 is checked, and with ``whole``
                the record's.
            picked: channel indices, in the order wanted.
            max_pixels: the decoding limit (``container.pixel_limit``).

        Returns:
            ((h, w, len(picked)) int8 latent, header fields as ``Container.metadata()``,
            the C + 1 byte positions of the stored streams and of their end), or None.
        """
        if not isinstance(data, bytes):
            return None
        key = tuple(picked)
        channels = self._picked.get(key)
        if channels is None:
            if len(self._picked) >= 256:  # a reader of ever new subsets: keep it bounded
                self._picked.clear()
            channels = self._picked.setdefault(key, np.asarray(key, dtype=np.int32))
        info = np.empty(_INFO, dtype=np.int64)
        positions = np.empty(self.num_channels + 1, dtype=np.int64)
        out = np.empty(self._size, dtype=np.int8)
        args = [
            data, len(data), whole, self.preset, len(self.preset), self.fingerprint,
            self.num_channels, self._order.ctypes.data, self._cdfs.ctypes.data, max_pixels,
            channels.ctypes.data, len(key), out.ctypes.data, out.size,
            info.ctypes.data, positions.ctypes.data, self._contexts[0],
            *(None if a is None else a.ctypes.data for a in self._contexts[1:]),
        ]  # fmt: skip
        status = _decode(*args)
        if status == 1:  # another size: again, with a buffer of the right one
            out = np.empty(int(info[_I_H] * info[_I_W]) * len(key), dtype=np.int8)
            self._size = out.size
            args[12], args[13] = out.ctypes.data, out.size
            status = _decode(*args)
        if status != 0:
            return None
        view, header = memoryview(data), int(info[_I_HEADER])
        if zlib.crc32(view[: header - 4]) != int.from_bytes(view[header - 4 : header], "little"):
            return None
        end = int(info[_I_FILE]) - 4
        if whole and zlib.crc32(view[:end]) != int.from_bytes(view[end:], "little"):
            return None
        h, w = int(info[_I_H]), int(info[_I_W])
        meta = Container(  # the compiled reader takes versions 3 and 4, whose scale is 1
            self.preset.decode(),
            self.fingerprint,
            int(info[_I_WIDTH]),
            int(info[_I_HEIGHT]),
            bool(info[_I_GRAY]),
            (h, w, self.num_channels),
        ).metadata()
        return out.reshape(h, w, len(key)), meta, positions.tolist()
