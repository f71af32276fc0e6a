"""Integer latents <-> .l3ic bytes with one preset's entropy model; no network, no Keras.

A ``LatentCoder`` is what a preset's sidecar (``models/PRESET.json``) holds for coding, frozen
into tables: the per-channel priors, the channel importance order, the fingerprint of the
weights whose latents it codes, and the fingerprints of earlier weights of the preset (for a
clear message on old files); and, where the preset has them, its context tables
(``models/PRESET.contexts.npz``, ``l3ic.context_model``) for format version 4. It packs a
latent into a container (``container``) of per-channel ANS streams (``channel_modes``), and
reads back all channels or only some, through the compiled reader (``record_decoder``) where
it can. It imports numpy and constriction only
(and the compiled reader through ctypes), so a data-loader worker that reads latents never
pays for TensorFlow; ``codec.Codec`` adds the network on top.

Notation: the latent is (h, w, C) int8 with values ``QMIN..QMAX`` (-15..16), h = ceil(H / 8),
w = ceil(W / 8) for an image of H x W pixels; shapes of images are (H, W), as numpy's.
"""

import copy
import functools
from collections.abc import Sequence

import numpy as np

from . import channel_modes, container, context_model, entropy, record_decoder
from .codebook import QMAX, QMIN, SCALE_UNIT, from_symbols, snap_scale, to_symbols
from .deprecation import renamed_property, warn_deprecated
from .errors import L3ICError
from .presets import load_context_tables, load_sidecar, preset_num_channels

__all__ = ["LatentCoder", "get_coder", "channels_arg"]


class LatentCoder:
    """Packs and unpacks latents of one preset (numpy and constriction only).

    Args:
        preset: the preset name stored in every file, e.g. ``"32c"``.
        fingerprint: 8 bytes identifying the weights whose latents are coded.
        priors: (C, 32) integer per-channel prior tables, each summing to ``entropy.TABLE_TOTAL``.
        channel_order: (C,) channel indices, most important first.
        earlier: {fingerprint hex: sidecar entry} of the preset's earlier weights.
        context_tables: (C, context_model.CONTEXTS, 32) integer tables summing to 4096, the
            preset's context tables (None: it has none, and codes no channel in context mode).

    Attributes:
        preset, fingerprint, priors ((C, 32) int64), channel_order ((C,) int64), num_channels (C),
        context_tables ((C, CONTEXTS, 32) uint16 or None), tables_id (4 bytes naming them, or
        four zero bytes).
        write_version: the format version ``pack`` writes (``container.WRITE_VERSIONS``; the
            context mode needs 4; ``writing`` gives a coder of another).
        compiled: the compiled reader (``record_decoder.RecordDecoder``), None where it is not
            installed; set it to None to read with constriction alone (the same latents).
    """

    def __init__(
        self,
        preset: str,
        fingerprint: bytes,
        priors,
        channel_order,
        earlier: dict | None = None,
        context_tables=None,
    ):
        self.preset, self.fingerprint = preset, bytes(fingerprint)
        self.priors = np.asarray(priors, dtype=np.int64)
        self.channel_order = np.asarray(channel_order, dtype=np.int64)
        self.num_channels = len(self.priors)
        self.earlier = earlier or {}
        self.write_version = container.VERSION
        self._prior_models = [None] * self.num_channels  # built on first use
        c = self.num_channels
        if self.priors.shape != (c, entropy.ALPHABET) or sorted(self.channel_order) != list(
            range(c)
        ):
            raise L3ICError(f"preset {preset!r} has priors or channel order of wrong shape")
        self.context_tables, self.tables_id = None, bytes(container.TABLES_ID_BYTES)
        # The fewest bits per symbol of each channel's preset tables, by mode id.
        self._bits = [{channel_modes.PRIOR: entropy.min_bits_per_symbol(p)} for p in self.priors]
        if context_tables is not None:
            tables = np.asarray(context_tables, dtype=np.uint16)
            if (
                tables.shape != (c, context_model.CONTEXTS, entropy.ALPHABET)
                or (tables.sum(axis=2, dtype=np.int64) != entropy.TABLE_TOTAL).any()
            ):
                raise L3ICError(f"preset {preset!r} has context tables of wrong shape or sum")
            self.context_tables, self.tables_id = tables, context_model.tables_id(tables)
            # every table sums to TABLE_TOTAL, so the table with the largest count codes its
            # likeliest symbol in the fewest bits
            likeliest = tables.max(axis=2).argmax(axis=1)
            for k in range(c):
                least = entropy.min_bits_per_symbol(tables[k, likeliest[k]])
                self._bits[k][channel_modes.CONTEXT] = least

    @functools.cached_property
    def compiled(self) -> "record_decoder.RecordDecoder | None":
        """The compiled reader, built at the first read (about 25 ms for 32c; compressing never
        needs it); None where it is not installed, or for priors that do not sum to
        TABLE_TOTAL, the only ones it knows."""
        if record_decoder.COMPILED and (self.priors.sum(axis=1) == entropy.TABLE_TOTAL).all():
            return record_decoder.RecordDecoder(
                self.preset,
                self.fingerprint,
                self.priors,
                self.channel_order,
                self.context_tables,
                self.tables_id,
            )
        return None

    channels = renamed_property("LatentCoder", "channels", "num_channels")

    @classmethod
    def from_sidecar(
        cls, preset: str, sidecar: dict, fingerprint: bytes, num_channels: int, context_tables=None
    ):
        """The coder of a sidecar dict (a generic prior and the natural order where it has none).

        Args:
            preset: the name the files will carry.
            sidecar: the preset's JSON sidecar (``priors``, ``channel_order``, ``earlier``).
            fingerprint: the weights' 8-byte fingerprint.
            num_channels: latent channels C.
            context_tables: the preset's context tables, or None.
        """
        return cls(
            preset,
            fingerprint,
            sidecar.get("priors", entropy.default_prior(num_channels)),
            sidecar.get("channel_order", range(num_channels)),
            {e["fingerprint"]: e for e in sidecar.get("earlier", [])},
            context_tables,
        )

    def writing(self, version: int) -> "LatentCoder":
        """A copy of this coder that writes format ``version`` (one of
        ``container.WRITE_VERSIONS``; 4 for the context mode); it shares the tables and the
        compiled reader, so the shared coder of ``get_coder`` is left as it is."""
        if version not in container.WRITE_VERSIONS:
            raise L3ICError(f"this l3ic writes versions {container.WRITE_VERSIONS}, not {version}")
        coder = copy.copy(self)
        coder.write_version = version
        return coder

    # ----- latents -> bytes ---------------------------------------------------------------

    def pack(
        self, latent, shape: tuple[int, int], grayscale: bool = False, scale: float = 1.0
    ) -> bytes:
        """Entropy-codes a latent into .l3ic bytes.

        Args:
            latent: (h, w, C) integer array, values -15..16.
            shape: (H, W) of the image.
            grayscale: mark the file to decode as a (H, W) grayscale image.
            scale: the quantisation scale s the latent was made at (``codebook.quantize``), a
                multiple of 1/1024 in 0.125..8; a file at a scale other than 1 is written as
                format version 5, whatever ``write_version`` says (from 4 on).
        """
        return self.pack_checked(self.check_latent(latent), shape, grayscale, scale)

    def pack_checked(
        self, q: np.ndarray, shape: tuple[int, int], grayscale: bool, scale: float = 1.0
    ) -> bytes:
        """``pack`` for a latent known to be valid: (h, w, C) int8 in -15..16 (encoder output)."""
        if snap_scale(scale) != scale:
            raise L3ICError(f"the scale must be a multiple of 1/{SCALE_UNIT}, not {scale}")
        version = self.write_version
        if scale != 1.0:
            if version < container.CONTEXT_VERSION:
                raise L3ICError(f"format version {version} cannot hold a scale other than 1")
            version = container.SCALE_VERSION
        symbols = to_symbols(q)
        contexts = version >= container.CONTEXT_VERSION
        tables = self.context_tables if contexts else None
        codes = [
            channel_modes.encode_channel(
                symbols[..., k], self.priors[k], None if tables is None else tables[k]
            )
            for k in range(self.num_channels)
        ]
        height, width = shape
        c = container.Container(
            self.preset, self.fingerprint, width, height, grayscale, q.shape, codes
        )
        c.channel_order = self.channel_order.tolist()
        c.version, c.tables_id, c.scale = version, self.tables_id, scale
        return container.pack(c)

    def check_latent(self, latent) -> np.ndarray:
        """``latent`` as (h, w, C) int8 after checking shape, dtype and values; else L3ICError."""
        q = np.asarray(latent)
        if q.ndim != 3 or q.shape[2] != self.num_channels or 0 in q.shape:
            raise L3ICError(f"latent must have shape (h, w, {self.num_channels}), got {q.shape}")
        if not np.issubdtype(q.dtype, np.integer) or q.min() < QMIN or q.max() > QMAX:
            raise L3ICError(f"latent values must be integers in {QMIN}..{QMAX}")
        return q.astype(np.int8, copy=False)

    # ----- bytes -> latents ---------------------------------------------------------------

    def parse(self, data, max_pixels: int | None = None) -> container.Container:
        """Parses .l3ic bytes (or checks an already parsed ``Container``) for decoding.

        Bytes are parsed with this preset's stream order (``channel_order``, for version 3
        files). Checks, before any stream is decoded, that this preset and these weights wrote
        the file,
        that the image is within the pixel limit (``container.pixel_limit(max_pixels)``) and
        that every stream is long enough for its channel (``entropy.min_stream_bytes``).

        Raises:
            DecompressionBombError: over the pixel limit.
            L3ICError: damaged, or written by another preset or other weights.
        """
        if isinstance(data, container.Container):
            c = data
        else:
            c = container.parse(data, self.channel_order)
        container.check_pixel_limit(c, max_pixels)
        if c.preset == self.preset and c.fingerprint != self.fingerprint:
            raise L3ICError(self._other_weights(c.fingerprint.hex()))
        if c.preset != self.preset:
            raise L3ICError(
                f"file was written by preset {c.preset!r} (weights {c.fingerprint.hex()}), "
                f"not by this preset {self.preset!r} (weights {self.fingerprint.hex()})"
            )
        if c.latent_shape[2] != self.num_channels:
            raise L3ICError(
                f"file has {c.latent_shape[2]} latent channels, "
                f"preset {self.preset!r} has {self.num_channels}"
            )
        if (
            c.version >= container.ORDERED_VERSION
            and c.channel_order != self.channel_order.tolist()
        ):
            raise L3ICError(
                "a version 3 file parsed without its preset's stream order: pass its bytes"
            )
        if any(code.mode == channel_modes.CONTEXT for code in c.codes) and (
            self.context_tables is None or c.tables_id != self.tables_id
        ):
            raise L3ICError(
                f"file was coded with context tables {c.tables_id.hex()}, which preset "
                f"{self.preset!r} of this l3ic does not have ("
                + (f"it has {self.tables_id.hex()}" if self.context_tables is not None else "none")
                + "): decode it with the l3ic that wrote it"
            )
        h, w, _ = c.latent_shape
        lengths = c.stream_lengths or [len(code.stream) for code in c.codes]
        for k, code in enumerate(c.codes):
            if lengths[k] < code.kind.least_stream_bytes(code, h * w, self._bits[k]):
                raise L3ICError(
                    f"corrupt .l3ic file: channel {k}'s stream of {lengths[k]} bytes is "
                    f"too short for a {c.width}x{c.height} image"
                )
        return c

    def read(
        self, data, channels: Sequence[int] | None = None, *, max_pixels: int | None = None
    ) -> tuple[np.ndarray, dict]:
        """Decodes the latent of .l3ic bytes (or a parsed ``Container``), only ``channels``.

        Streams of channels not asked for are skipped by their stored lengths, not decoded.
        Bytes go through the compiled reader where it is installed and takes them
        (``read_compiled``), else through ``parse`` and constriction: the same latent.

        Args:
            data: the .l3ic file, or its ``Container`` (from ``container.parse``, or from
                ``container.parse_header`` with the streams of ``channels`` attached).
            channels: channel indices to decode, in the order wanted (default all).
            max_pixels: the pixel limit, as for ``parse``.

        Returns:
            ((h, w, len(channels)) int8 latent, metadata: ``Container.metadata()`` and
            ``channels``, the indices decoded).
        """
        picked = self._pick(channels)
        if isinstance(data, bytes):
            fast = self._read_compiled(data, picked, max_pixels, whole=True)
            if fast is not None:
                return fast[0], fast[1]
        c = self.parse(data, max_pixels)
        return self._decode_streams(c, picked), {**c.metadata(), "channels": picked}

    def read_compiled(
        self,
        data: bytes,
        channels: Sequence[int] | None = None,
        *,
        max_pixels: int | None = None,
        whole: bool = True,
    ) -> tuple[np.ndarray, dict, list[int]] | None:
        """``read`` by the compiled reader alone; None where it is not installed or gives up.

        Args:
            data: the record; with ``whole`` False, its first bytes: at least the header and
                the streams of ``channels`` (their CRC-32 cannot be checked then).
            channels, max_pixels: as for ``read``.

        Returns:
            (latent, metadata) as ``read``'s, and the C + 1 byte positions of the stored
            streams' starts and of their end; or None: then ``read`` (or ``parse``) decodes
            the record or says what is wrong with it.
        """
        try:
            picked = self._pick(channels)
        except L3ICError:
            return None
        return self._read_compiled(data, picked, max_pixels, whole)

    def _read_compiled(
        self, data: bytes, picked: list[int], max_pixels: int | None, whole: bool
    ) -> tuple[np.ndarray, dict, list[int]] | None:
        """``read_compiled`` of channels already checked (``_pick``)."""
        if self.compiled is None:
            return None
        try:
            limit = container.pixel_limit(max_pixels)
        except L3ICError:
            return None
        got = self.compiled.decode(data, picked, limit, whole)
        if got is None:
            return None
        q, meta, positions = got
        return q, {**meta, "channels": picked}, positions

    def read_partial(
        self, data, channels: Sequence[int], *, max_pixels: int | None = None
    ) -> tuple[np.ndarray, dict]:
        """The whole (h, w, C) latent with only ``channels`` decoded, the others at their
        likeliest value.

        A skipped channel gets the value its header makes most likely, without touching its
        stream: a constant channel its constant, a table-coded channel the argmax of its stored
        table, a prior-coded channel the argmax of its prior.

        Returns:
            ((h, w, C) int8 latent, metadata as ``read``'s).
        """
        c = self.parse(data, max_pixels)
        h, w, nc = c.latent_shape
        picked = self._pick(channels)
        q = np.empty((h, w, nc), dtype=np.int8)
        for k, code in enumerate(c.codes):
            q[..., k] = from_symbols(code.kind.likeliest(code, self.priors[k]))
        q[..., picked] = self._decode_streams(c, picked)
        return q, {**c.metadata(), "channels": picked}

    def top_channels(self, k: int) -> list[int]:
        """The ``k`` most important channels (0..C), from the preset's ``channel_order``."""
        if (
            isinstance(k, bool)
            or not isinstance(k, int | np.integer)
            or not 0 <= k <= self.num_channels
        ):
            raise L3ICError(
                f"top_channels must be a whole number in 0..{self.num_channels}, got {k!r}"
            )
        return self.channel_order[:k].tolist()

    def reader_channels(
        self, channels: Sequence[int] | None, top_channels: int | None
    ) -> list[int]:
        """The channels a dataset reader reads, from ``channels_arg``'s checked pair.

        Args:
            channels: channel indices (None with ``top_channels`` None: all).
            top_channels: the k most important channels, 1..C.

        Raises:
            L3ICError: ``top_channels`` 0, or channels empty or out of range.
        """
        if top_channels is not None:
            if top_channels == 0:
                raise L3ICError(f"top_channels must lie in 1..{self.num_channels}, got 0")
            channels = self.top_channels(top_channels)
        elif channels is None:
            channels = range(self.num_channels)
        picked = [int(k) for k in channels]
        if not picked or not all(0 <= k < self.num_channels for k in picked):
            raise L3ICError(f"channels must be a non-empty list of 0..{self.num_channels - 1}")
        return picked

    def _decode_streams(self, c: container.Container, picked: list[int]) -> np.ndarray:
        """Decodes the streams of channels ``picked`` only: (h, w, len(picked)) int8.

        Context-coded channels decode together, a wavefront of all of them at a time
        (``context_model.decode_many``); the others one by one."""
        h, w, _ = c.latent_shape
        symbols = np.empty((len(picked), h * w), dtype=np.uint8)
        contextual = [i for i, k in enumerate(picked) if c.codes[k].mode == channel_modes.CONTEXT]
        for i, k in enumerate(picked):
            if c.codes[k].mode == channel_modes.CONTEXT:
                continue
            if self._prior_models[k] is None:
                self._prior_models[k] = entropy.table_model(self.priors[k])
            model = self._prior_models[k]
            symbols[i] = channel_modes.decode_channel(c.codes[k], h * w, self.priors[k], model)
        if contextual:
            ks = [picked[i] for i in contextual]
            streams = [c.codes[k].stream for k in ks]
            decoded = context_model.decode_many(streams, h, w, self.context_tables[ks])
            symbols[contextual] = decoded.reshape(len(ks), h * w)
        return from_symbols(symbols.T.reshape(h, w, len(picked)))

    def _pick(self, channels: Sequence[int] | None) -> list[int]:
        nc = self.num_channels
        if channels is None:
            return list(range(nc))
        if isinstance(channels, int | np.integer):
            raise L3ICError(
                f"channels is a list of channel indices, got the number {channels}: for the k "
                "most important channels use top_channels=k"
            )
        picked = [int(k) for k in channels]
        if any(not 0 <= k < nc for k in picked):
            raise L3ICError(f"channels must lie in 0..{nc - 1}, got {list(channels)}")
        return picked

    def _other_weights(self, fp: str) -> str:
        """The message for a file of this preset written with weights other than these."""
        old = self.earlier.get(fp)
        if old is None:
            return (
                f"file was written by weights {fp} of preset {self.preset!r}, which this l3ic "
                f"does not know (it has {self.fingerprint.hex()}): it comes from a newer l3ic or "
                "from custom weights; decode it with the l3ic that wrote it"
            )
        version = old.get("l3ic_version", "?")
        return (
            f"file was written by earlier weights of preset {self.preset!r} ({fp}, shipped with "
            f"l3ic {version}, commit {old.get('commit') or '?'}), replaced by "
            f"{self.fingerprint.hex()} in this l3ic: decode it with l3ic {version} (the preset "
            "policy in the README says why)"
        )


@functools.lru_cache(maxsize=8)
def get_coder(preset: str) -> LatentCoder:
    """The shared coder of a shipped preset, from its sidecar alone (loaded once per process).

    Raises:
        L3ICError: unknown preset, or its sidecar missing or without a fingerprint.
    """
    num_channels = preset_num_channels(preset)
    sidecar = load_sidecar(preset)
    if "fingerprint" not in sidecar:
        raise L3ICError(f"the sidecar of preset {preset!r} has no weights fingerprint")
    fp = bytes.fromhex(sidecar["fingerprint"])
    tables = load_context_tables(preset, fp)
    return LatentCoder.from_sidecar(preset, sidecar, fp, num_channels, tables)


def channels_arg(channels, top_channels: int | None) -> tuple[Sequence[int] | None, int | None]:
    """Checks the pair (``channels``: indices, ``top_channels``: a count) a reader was given.

    A number passed as ``channels`` is the deprecated spelling of ``top_channels``: it warns
    (pointing at the caller's caller) and is moved there.

    Returns:
        (channels, top_channels), at most one of them not None.
    """
    if isinstance(channels, int | np.integer) and not isinstance(channels, bool):
        warn_deprecated(
            "channels=k for the k most important channels",
            "top_channels=k (channels= takes a list of channel indices)",
        )
        channels, top_channels = None, int(channels)
    if channels is not None and top_channels is not None:
        raise L3ICError("give channels (indices) or top_channels (a count), not both")
    return channels, top_channels
