"""The .l3ic file format, version 3 (byte by byte in docs/format.md); versions 1 and 2 are
still read, and version 4 (the context mode: ``channel_modes.Context``) is read, and written on
request until its compiled decoding is fast enough to be the default (docs/format.md).

A file is a header (magic, version, preset, weights fingerprint, sizes, one entry per channel,
header CRC-32), then the channel streams back to back, then a CRC-32 of everything before it.
Every stream's length is in the header, so channel k is found without decoding the others.
Version 2 differs from version 1 in its streams, which are sealed (``entropy.SEAL``). Version 3
stores the streams in the preset's importance order (its ``channel_order``, the *stream order*)
instead of channel order, so the k most important channels are one contiguous byte range
right after the header: a prefix of the file. The stream order is the preset's, not stored in
the file (like the priors); ``LatentCoder`` supplies it. Version 4 adds a channel mode that codes
symbols with the preset's context tables, and 4 bytes after the fingerprint that name those
tables (``context_model.tables_id``), so a file never decodes with other tables. Version 5 adds
2 bytes after those that hold the file's quantisation scale s (``codebook.quantize``: the
latent is round(s z), decoded from q / s); files at s = 1 are written as version 4, byte for
byte what l3ic wrote before scales existed.

Decoding is bounded by a pixel limit (``pixel_limit``), checked from the header alone, like
Pillow's ``MAX_IMAGE_PIXELS``: a file of a few bytes can declare a huge image of constant
channels, which would cost minutes and gigabytes to decode.
"""

import itertools
import os
import zlib
from dataclasses import dataclass, field

from .channel_modes import MODES, ChannelCode
from .codebook import SCALE_UNIT, latent_size
from .entropy import read_varint
from .entropy import write_varint as _v
from .errors import DecompressionBombError, L3ICError

__all__ = [
    "MAGIC",
    "VERSION",
    "READ_VERSIONS",
    "WRITE_VERSIONS",
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "pixel_limit",
    "check_pixel_limit",
    "coded_pixels",
    "MAX_PIXELS",
    "MAX_SIDE",
    "Container",
    "pack",
    "parse",
    "parse_header",
    "preset_name",
]

MAGIC = b"L3IC"
VERSION = 4  # written by default at scale 1 (version 3 still on request: LatentCoder.writing(3))
READ_VERSIONS = (1, 2, 3, 4, 5)
WRITE_VERSIONS = (3, 4, 5)
ORDERED_VERSION = 3  # from this version on, streams are stored in stream order
CONTEXT_VERSION = 4  # from this version on, the header names the context tables
SCALE_VERSION = 5  # from this version on, the header holds the quantisation scale
TABLES_ID_BYTES = 4
SCALE_BYTES = 2  # the scale in 1/1024ths (codebook.SCALE_UNIT), 1..65535
FLAG_GRAY = 1
MAX_SIDE = 1 << 20  # pixels per side
MAX_PIXELS = 1 << 28  # 268 megapixels: a larger decode would need gigabytes
MAX_CHANNELS = 1024
FINGERPRINT_BYTES = 8
# Decoding limit (see pixel_limit): 2**25 pixels = 33.5 Mpx (e.g. 8192 x 4096), room for a
# 24 Mpx (6000 x 4000) photo. Decoding costs about 1 s per Mpx on a 2-core CPU, so a file of
# a few bytes can ask for at most about half a minute of work (docs/format.md, "Limits");
# Pillow's MAX_IMAGE_PIXELS is 89 Mpx, but Pillow decodes far faster per pixel.
DEFAULT_MAX_PIXELS = 1 << 25
MAX_PIXELS_ENV = "L3IC_MAX_PIXELS"


@dataclass
class Container:
    """Everything a .l3ic file holds.

    Attributes:
        preset: the preset, e.g. ``"32c"`` (ASCII, 1..32 characters).
        fingerprint: 8 bytes identifying the weights the file was encoded with.
        width, height: size of the original image in pixels.
        grayscale: decode to a (H, W) image instead of (H, W, 3).
        latent_shape: (h, w, C) with h = ceil(height / 8), w = ceil(width / 8).
        codes: C ChannelCode, one per latent channel.
        offsets: byte offset of each channel's stream in the file (filled by ``parse`` and
            ``parse_header`` where the stream order is known: always for versions 1 and 2, for
            version 3 when it is given; else empty, and the streams are not attached).
        stream_lengths: bytes of each channel's stream, 0 for a constant channel (filled by
            ``parse`` and ``parse_header``).
        header_bytes: bytes of the header, everything but the streams and the final CRC-32
            (filled by ``parse`` and ``parse_header``).
        version: the format version read, or to write (one of ``WRITE_VERSIONS``).
        channel_order: the channel of each stored stream, in file order (version 3; ``pack``
            needs it, ``parse`` fills it when it is given); None: channel order.
        tables_id: version 4: the 4 bytes that name the context tables the file was coded
            with (``context_model.tables_id``); empty before.
        scale: the quantisation scale s, a multiple of 1/1024 (``codebook.snap_scale``); other
            than 1 only from version 5 on.
    """

    preset: str
    fingerprint: bytes
    width: int
    height: int
    grayscale: bool
    latent_shape: tuple[int, int, int]
    codes: list[ChannelCode] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    stream_lengths: list[int] = field(default_factory=list)
    header_bytes: int = 0
    version: int = VERSION
    channel_order: list[int] | None = None
    tables_id: bytes = b""
    scale: float = 1.0

    @property
    def file_bytes(self) -> int:
        """Size of the whole file: header, streams and the final CRC-32."""
        return self.header_bytes + sum(self.stream_lengths) + 4

    def metadata(self) -> dict:
        """The header as a dict: preset, width, height, grayscale, latent_shape, fingerprint,
        scale."""
        return {
            "preset": self.preset,
            "width": self.width,
            "height": self.height,
            "grayscale": self.grayscale,
            "latent_shape": self.latent_shape,
            "fingerprint": self.fingerprint.hex(),
            "scale": self.scale,
        }


def _check_sizes(width: int, height: int, latent_shape: tuple[int, int, int]) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise L3ICError(f"image size {width}x{height} out of range (1..{MAX_SIDE} per side)")
    if width * height > MAX_PIXELS:
        raise L3ICError(f"image size {width}x{height} exceeds {MAX_PIXELS} pixels")
    h, w, c = latent_shape
    if (h, w) != latent_size(height, width):
        raise L3ICError(f"latent shape {h}x{w} does not match image size {width}x{height}")
    if not 1 <= c <= MAX_CHANNELS:
        raise L3ICError(f"latent channel count {c} out of range (1..{MAX_CHANNELS})")


def pixel_limit(max_pixels: int | None = None) -> int:
    """The most pixels a file may declare to be decoded.

    ``max_pixels`` if given, else the environment variable ``L3IC_MAX_PIXELS``, else
    ``DEFAULT_MAX_PIXELS``. No limit can exceed ``MAX_PIXELS``, the format's own bound.

    Raises:
        L3ICError: the limit or the variable is not a positive integer.
    """
    if max_pixels is None:
        text = os.environ.get(MAX_PIXELS_ENV, "").strip()
        if not text:
            return DEFAULT_MAX_PIXELS
        try:
            max_pixels = int(text)
        except ValueError:
            raise L3ICError(f"{MAX_PIXELS_ENV}={text!r} is not a whole number") from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise L3ICError(f"the pixel limit must be a positive integer, got {max_pixels!r}")
    return min(max_pixels, MAX_PIXELS)


def coded_pixels(width: int, height: int) -> int:
    """The pixels the network computes for a ``width`` x ``height`` image: both sides padded to
    a multiple of 8 (a 33-pixel side costs 40)."""
    return 64 * (-(-width // 8)) * (-(-height // 8))


def check_pixel_limit(c: Container, max_pixels: int | None = None) -> None:
    """Refuses to decode a file that declares more pixels than ``pixel_limit(max_pixels)``,
    counted as the network computes them (``coded_pixels``).

    Raises:
        DecompressionBombError: over the limit (the message says how to raise it).
    """
    limit = pixel_limit(max_pixels)
    if coded_pixels(c.width, c.height) > limit:
        raise DecompressionBombError(
            f"image size {c.width}x{c.height} ({coded_pixels(c.width, c.height):,} pixels, "
            f"padded to multiples of 8) exceeds the limit of {limit:,} pixels, a guard against "
            f"decompression bombs; if you trust the file, raise it (max_pixels=..., "
            f"{MAX_PIXELS_ENV}=... or --max-pixels)"
        )


def _order(channel_order, num_channels: int) -> list[int]:
    """``channel_order`` checked to be a permutation of the channels (None: channel order)."""
    if channel_order is None:
        return list(range(num_channels))
    order = [int(k) for k in channel_order]
    if sorted(order) != list(range(num_channels)):
        raise L3ICError(f"stream order must be a permutation of 0..{num_channels - 1}")
    return order


def pack(c: Container) -> bytes:
    """Serialises a container as version ``c.version``, its streams in ``c.channel_order``.
    Returns the whole file."""
    _check_sizes(c.width, c.height, c.latent_shape)
    order = _order(c.channel_order, c.latent_shape[2])
    name = c.preset.encode("ascii")
    if not 1 <= len(name) <= 32 or len(c.fingerprint) != FINGERPRINT_BYTES:
        raise L3ICError(f"bad preset name {c.preset!r} or fingerprint")
    if c.version not in WRITE_VERSIONS:
        raise L3ICError(f"this l3ic writes versions {WRITE_VERSIONS}, not {c.version}")
    tables_id = c.tables_id if c.version >= CONTEXT_VERSION else b""
    if c.version >= CONTEXT_VERSION and len(tables_id) != TABLES_ID_BYTES:
        raise L3ICError(f"a version {c.version} file needs a {TABLES_ID_BYTES}-byte tables id")
    head = bytearray(MAGIC)
    head += bytes([c.version, FLAG_GRAY if c.grayscale else 0, len(name)]) + name + c.fingerprint
    head += tables_id
    units = round(c.scale * SCALE_UNIT)
    if units != c.scale * SCALE_UNIT or not 1 <= units < 1 << (8 * SCALE_BYTES):
        raise L3ICError(f"scale {c.scale} is not a whole number of 1/{SCALE_UNIT} (0..64)")
    if c.version >= SCALE_VERSION:
        head += units.to_bytes(SCALE_BYTES, "little")
    elif units != SCALE_UNIT:
        raise L3ICError(f"a scale other than 1 needs format version {SCALE_VERSION}")
    for n in (c.width, c.height, *c.latent_shape):
        head += _v(n)
    for code in c.codes:
        if code.kind.since > c.version:
            raise L3ICError(f"channel mode {code.kind.name} needs version {code.kind.since}")
        head.append(code.mode)
        head += code.kind.header(code)
    head += zlib.crc32(head).to_bytes(4, "little")
    body = head + b"".join(c.codes[k].stream for k in order)
    return bytes(body + zlib.crc32(body).to_bytes(4, "little"))


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise L3ICError("truncated .l3ic file")


def parse(data: bytes, channel_order=None) -> Container:
    """Parses and checks a .l3ic file (both checksums, sizes, stream lengths).

    Args:
        data: the whole file.
        channel_order: for version 3 files, the preset's ``channel_order``; without it (or
            with one of another channel count) the file is checked whole but its streams are
            not attached (``offsets`` empty), which is all that metadata needs. Ignored for
            versions 1 and 2.

    Raises:
        L3ICError: not an .l3ic file, unknown version, damaged, truncated or absurd sizes.
    """
    data = bytes(data)
    c = parse_header(data, channel_order)
    if c.file_bytes != len(data):
        raise L3ICError(
            "truncated .l3ic file"
            if c.file_bytes > len(data)
            else "trailing bytes after .l3ic data"
        )
    end = c.file_bytes - 4
    if zlib.crc32(data[:end]) != int.from_bytes(data[end:], "little"):
        raise L3ICError("corrupt .l3ic file (checksum mismatch)")
    for code, offset, length in zip(c.codes, c.offsets, c.stream_lengths, strict=False):
        code.stream = data[offset : offset + length]
    return c


def preset_name(data: bytes) -> str:
    """The preset named in a file's header, from its first bytes alone (nothing else checked).

    Raises:
        L3ICError: not an .l3ic file, or its name cut short or not ASCII.
    """
    if len(data) < 7 or data[:4] != MAGIC or len(data) < 7 + data[6]:
        raise L3ICError("not an .l3ic file (wrong magic bytes or cut short)")
    try:
        return bytes(data[7 : 7 + data[6]]).decode("ascii")
    except UnicodeDecodeError:
        raise L3ICError("corrupt .l3ic header (preset name)") from None


def parse_header(data: bytes, channel_order=None) -> Container:
    """Parses and checks the header of a .l3ic file, up to and including its CRC-32.

    What a reader of only some channels needs: where each channel's stream lies
    (``offsets``, ``stream_lengths``) and how it is coded. The streams are not attached (each
    code's ``stream`` is empty); the caller reads the ones it wants and sets them. The file's
    own CRC-32, over the whole file, cannot be checked from part of it; sealed streams
    (version 2) still detect a stream that is cut or too long.

    Args:
        data: the file's first bytes, at least its header (anything after it is ignored).
        channel_order: as for ``parse``.

    Raises:
        L3ICError: as ``parse``, for the header.
    """
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise L3ICError("not an .l3ic file (wrong magic bytes)")
    _need(data, 4, 3)
    version, flags, name_len = data[4], data[5], data[6]
    if version not in READ_VERSIONS:
        raise L3ICError(
            f"unsupported .l3ic version {version} (this l3ic reads versions "
            f"{', '.join(map(str, READ_VERSIONS))}: the file may come from a newer l3ic)"
        )
    if flags & ~FLAG_GRAY or not 1 <= name_len <= 32:
        raise L3ICError("corrupt .l3ic header")
    pos = 7
    _need(data, pos, name_len + FINGERPRINT_BYTES)
    try:
        preset = data[pos : pos + name_len].decode("ascii")
    except UnicodeDecodeError:
        raise L3ICError("corrupt .l3ic header (preset name)") from None
    pos += name_len
    fingerprint = data[pos : pos + FINGERPRINT_BYTES]
    pos += FINGERPRINT_BYTES
    tables_id = b""
    if version >= CONTEXT_VERSION:
        _need(data, pos, TABLES_ID_BYTES)
        tables_id = data[pos : pos + TABLES_ID_BYTES]
        pos += TABLES_ID_BYTES
    scale = 1.0
    if version >= SCALE_VERSION:
        _need(data, pos, SCALE_BYTES)
        units = int.from_bytes(data[pos : pos + SCALE_BYTES], "little")
        if units == 0:
            raise L3ICError("corrupt .l3ic header (scale 0)")
        scale = units / SCALE_UNIT
        pos += SCALE_BYTES
    sizes = []
    for _ in range(5):
        n, pos = read_varint(data, pos)
        sizes.append(n)
    width, height, *latent = sizes
    _check_sizes(width, height, tuple(latent))
    codes, lengths, sealed = [], [], version >= 2
    for _ in range(latent[2]):
        _need(data, pos, 1)
        mode = MODES.get(data[pos])
        if mode is None or mode.since > version:
            raise L3ICError(f"corrupt .l3ic header (channel mode {data[pos]})")
        code, length, pos = mode.read_header(data, pos + 1, sealed)
        codes.append(code)
        lengths.append(length)
    _need(data, pos, 4)
    if zlib.crc32(data[:pos]) != int.from_bytes(data[pos : pos + 4], "little"):
        raise L3ICError("corrupt .l3ic file (header checksum mismatch)")
    pos += 4
    header_bytes = pos
    offsets, order = [], None
    # A stream order of another channel count is another preset's: the streams are left
    # unattached, and the reader's preset check says whose file this is.
    if version < ORDERED_VERSION or (
        channel_order is not None and len(channel_order) == len(codes)
    ):
        order = _order(channel_order if version >= ORDERED_VERSION else None, len(codes))
        starts = itertools.accumulate((lengths[k] for k in order[:-1]), initial=header_bytes)
        offsets = [0] * len(codes)
        for k, start in zip(order, starts, strict=True):
            offsets[k] = start
    return Container(
        preset,
        fingerprint,
        width,
        height,
        bool(flags & FLAG_GRAY),
        tuple(latent),
        codes,
        offsets,
        lengths,
        header_bytes,
        version,
        order if version >= ORDERED_VERSION else None,
        tables_id,
        scale,
    )
