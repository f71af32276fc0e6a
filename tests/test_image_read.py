"""read_image: orientation, colour profiles, 16-bit input and error messages."""

import os
import struct
import warnings
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import ExifTags, Image, ImageCms, ImageOps

from l3ic.errors import L3ICError
from l3ic.image import read_image, to_rgb8

# Not symmetric under any transposition.
RGB = np.random.default_rng(7).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def read_recording(path):
    """read_image(path) and the texts of the warnings it gave, which must name its caller."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = read_image(path)
    assert all(w.filename == __file__ for w in caught)
    return x, [str(w.message) for w in caught]


# ----- EXIF orientation ---------------------------------------------------------------------------


def with_orientation(path, array, orientation):
    """Saves ``array`` with an EXIF orientation; returns it as ImageOps.exif_transpose shows it."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(array).save(path, exif=exif)
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_png(tmp_path, orientation):
    path = tmp_path / "o.png"
    expected = with_orientation(path, RGB, orientation)
    x, caught = read_recording(path)
    assert caught == []
    np.testing.assert_array_equal(x, expected)
    assert x.shape == ((7, 5, 3) if orientation >= 5 else (5, 7, 3))


def test_exif_orientation_tiff(tmp_path):
    path = tmp_path / "o.tif"
    expected = with_orientation(path, RGB, 8)
    np.testing.assert_array_equal(read_image(path), expected)
    np.testing.assert_array_equal(expected, np.rot90(RGB))


def test_exif_orientation_jpeg(tmp_path):
    path = tmp_path / "o.jpg"
    rows, cols = np.mgrid[0:40, 0:24]
    smooth = np.dstack([rows * 6, cols * 10, np.full_like(rows, 90)]).astype(np.uint8)
    expected = with_orientation(path, smooth, 6)
    x = read_image(path)
    assert x.shape == (24, 40, 3)
    np.testing.assert_array_equal(x, expected)  # the same decoder, so the same pixels


# ----- ICC colour profiles ------------------------------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)
# Adobe RGB (1998) primaries adapted to D50 (columns: red, green, blue), gamma 563/256.
ADOBE = np.array(
    [[0.60974, 0.20528, 0.14919], [0.31111, 0.62567, 0.06322], [0.01947, 0.06087, 0.74457]]
)
SRGB = np.array(
    [[0.43607, 0.38515, 0.14307], [0.22249, 0.71687, 0.06061], [0.01392, 0.09708, 0.71410]]
)


def icc_profile(space: bytes, tags: dict) -> bytes:
    """A minimal ICC v2 display profile: header, tag table, desc and wtpt (D50) plus ``tags``."""
    tags = {b"desc": desc("test profile"), b"wtpt": xyz(D50), **tags}
    table_end = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags.items():
        table += sig + struct.pack(">II", table_end + len(body), len(data))
        body += data + bytes(-len(data) % 4)
    size = table_end + len(body)
    header = struct.pack(">I4sI4s4s4s", size, bytes(4), 0x02100000, b"mntr", space, b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(28) + s15(D50)  # date, signature, ..., illuminant
    return header + bytes(128 - len(header)) + table + body


def s15(values) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def xyz(values) -> bytes:
    return b"XYZ " + bytes(4) + s15(values)


def curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))


def desc(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(78)


def adobe_rgb() -> bytes:
    primaries = {s: xyz(ADOBE[:, k]) for k, s in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))}
    return icc_profile(
        b"RGB ", {**primaries, **{s: curve(2.2) for s in (b"rTRC", b"gTRC", b"bTRC")}}
    )


def srgb_encode(linear):
    s = np.clip(linear, 0, 1)
    return np.round(255 * np.where(s <= 0.0031308, 12.92 * s, 1.055 * s ** (1 / 2.4) - 0.055))


def adobe_to_srgb(rgb: np.ndarray) -> np.ndarray:
    """The sRGB values of 8-bit Adobe RGB colours, computed from the profile's definition."""
    return srgb_encode((rgb / 255) ** (563 / 256) @ ADOBE.T @ np.linalg.inv(SRGB).T)


def test_wide_gamut_profile_converted_to_srgb(tmp_path):
    colours = np.array(
        [[[0, 255, 0], [40, 180, 60], [200, 50, 120], [128, 128, 128], [0, 0, 0]]], np.uint8
    )
    path = tmp_path / "adobe.png"
    Image.fromarray(colours).save(path, icc_profile=adobe_rgb())
    x, caught = read_recording(path)
    assert caught == []
    np.testing.assert_allclose(x, adobe_to_srgb(colours), atol=1)
    assert abs(int(x[0, 1, 0]) - 40) > 30  # a green of Adobe RGB loses its red in sRGB


def test_wide_gamut_profile_with_alpha(tmp_path):
    rgba = np.dstack([RGB, np.arange(35, dtype=np.uint8).reshape(5, 7)])
    path = tmp_path / "adobe.png"
    Image.fromarray(rgba).save(path, icc_profile=adobe_rgb())
    x, caught = read_recording(path)
    assert caught == [] and x.shape == (5, 7, 4)
    np.testing.assert_array_equal(x[..., 3], rgba[..., 3])
    np.testing.assert_allclose(x[..., :3], adobe_to_srgb(RGB), atol=1)


def test_gray_profile_converted_to_srgb_gray(tmp_path):
    ramp = np.arange(0, 256, 17, dtype=np.uint8).reshape(2, 8)
    path = tmp_path / "gray.png"
    Image.fromarray(ramp).save(path, icc_profile=icc_profile(b"GRAY", {b"kTRC": curve(1.8)}))
    x, caught = read_recording(path)
    assert caught == [] and x.shape == (2, 8) and x.dtype == np.uint8
    np.testing.assert_allclose(x, srgb_encode((ramp / 255) ** 1.8), atol=1)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_srgb_profile_left_alone(tmp_path, suffix):
    path = tmp_path / f"srgb{suffix}"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(RGB).save(path, icc_profile=srgb)
    x, caught = read_recording(path)
    assert caught == []
    np.testing.assert_array_equal(x, iio.imread(path))


def test_unusable_profile_warns(tmp_path):
    path = tmp_path / "bad.png"
    Image.fromarray(RGB).save(path, icc_profile=b"not an ICC profile")
    x, caught = read_recording(path)
    assert len(caught) == 1 and "taken as sRGB" in caught[0] and str(path) in caught[0]
    np.testing.assert_array_equal(x, RGB)


def test_no_imagecms_warns(tmp_path, monkeypatch):
    def unavailable(*args):
        raise ImportError("The _imagingcms C module is not installed")

    monkeypatch.setattr(ImageCms, "ImageCmsProfile", unavailable)
    path = tmp_path / "adobe.png"
    Image.fromarray(RGB).save(path, icc_profile=adobe_rgb())
    x, caught = read_recording(path)
    assert len(caught) == 1 and "taken as sRGB" in caught[0] and "_imagingcms" in caught[0]
    np.testing.assert_array_equal(x, RGB)


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.tif"
    cmyk = Image.fromarray(RGB).convert("CMYK")
    cmyk.save(path)
    np.testing.assert_array_equal(read_image(path), np.asarray(cmyk.convert("RGB")))


# ----- 16-bit input -------------------------------------------------------------------------------

# Values whose rounding to 8 bits (to_rgb8, 16-bit gray) differs from Pillow's high byte (511 -> 1).
WIDE = np.array([0, 128, 129, 511, 32895, 32896, 40000, 65407, 65535], np.uint16)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG of an (H, W, C) array: gray, gray + alpha, RGB or RGBA; Sub-filtered rows."""
    h, w, c = array.shape
    rows = array.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    sub = rows.copy()
    sub[:, 2 * c :] -= rows[:, : -2 * c]  # wraps modulo 256, as the filter does
    raw = np.hstack([np.ones((h, 1), np.uint8), sub]).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    idat = png_chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + idat + png_chunk(b"IEND", b"")


def wide_image(channels: int) -> np.ndarray:
    return np.random.default_rng(channels).permuted(np.resize(WIDE, (6, 5, channels)), axis=1)


def rounded(x: np.ndarray) -> np.ndarray:
    return np.round(x / 257).astype(np.uint8)


def high_byte(x: np.ndarray) -> np.ndarray:
    """What Pillow makes of 16-bit colour samples (off by at most one level from rounding)."""
    return (x >> 8).astype(np.uint8)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_warns(tmp_path, channels):
    wide = wide_image(channels)
    path = tmp_path / "wide.png"
    path.write_bytes(png16(wide))
    x, caught = read_recording(path)
    assert caught == ["16-bit image converted to 8 bits"]
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(x, high_byte(wide))
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        y, _ = to_rgb8(read_image(path), drop_alpha=True)
    assert len(again) == 1  # read_image's; to_rgb8 gets 8 bits
    np.testing.assert_array_equal(y, high_byte(wide)[..., :3])


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_16bit_colour_tiff_warns(tmp_path, compression):
    wide = wide_image(3)
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, wide, photometric="rgb", compression=compression)
    x, caught = read_recording(path)
    assert caught == ["16-bit image converted to 8 bits"]
    np.testing.assert_array_equal(x, high_byte(wide))


def test_16bit_colour_png_with_orientation_and_profile(tmp_path):
    wide = wide_image(3)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    iccp = png_chunk(b"iCCP", b"ICC\0\0" + zlib.compress(adobe_rgb()))
    data = png16(wide)
    path = tmp_path / "wide.png"
    # After the signature (8 bytes) and IHDR (25).
    path.write_bytes(data[:33] + iccp + png_chunk(b"eXIf", exif.tobytes()) + data[33:])
    x, caught = read_recording(path)
    assert caught == ["16-bit image converted to 8 bits"]
    np.testing.assert_allclose(x, np.rot90(adobe_to_srgb(high_byte(wide)), -1), atol=1)


def test_16bit_gray_stays_16bit(tmp_path):
    wide = wide_image(1)
    path = tmp_path / "gray.png"
    path.write_bytes(png16(wide))
    x, caught = read_recording(path)
    assert caught == [] and x.dtype == np.uint16
    np.testing.assert_array_equal(x, wide[..., 0])
    with pytest.warns(UserWarning, match="16-bit image converted to 8 bits"):
        y, gray = to_rgb8(x)
    assert gray
    np.testing.assert_array_equal(y[..., 0], rounded(wide[..., 0]))


# ----- unchanged results for plain files ----------------------------------------------------------


PLAIN = {
    "rgb.png": lambda p: Image.fromarray(RGB).save(p),
    "gray.png": lambda p: Image.fromarray(RGB[..., 0]).save(p),
    "rgba.png": lambda p: Image.fromarray(np.dstack([RGB, RGB[..., 0]])).save(p),
    "palette.png": lambda p: Image.fromarray(RGB).quantize(8).save(p, transparency=0),
    "photo.jpg": lambda p: Image.fromarray(RGB).save(p, quality=90),
    "photo.bmp": lambda p: Image.fromarray(RGB).save(p),
    "photo.webp": lambda p: Image.fromarray(RGB).save(p, lossless=True),
}


@pytest.mark.parametrize("name", PLAIN)
def test_plain_files_read_as_imageio_reads_them(tmp_path, name):
    path = tmp_path / name
    PLAIN[name](path)
    x, caught = read_recording(path)
    assert caught == []
    expected = iio.imread(path, index=0)
    assert x.dtype == expected.dtype and x.flags.writeable
    np.testing.assert_array_equal(x, expected)


def test_first_frame_of_animation(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (6, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(read_image(path), np.full((4, 6, 3), (255, 0, 0), np.uint8))


# ----- error messages -----------------------------------------------------------------------------


def one_line_error(path) -> str:
    with pytest.raises(L3ICError) as info:
        read_image(path)
    text = str(info.value)
    assert "\n" not in text and "pyav" not in text.lower() and "opencv" not in text.lower()
    return text


def test_folder(tmp_path):
    assert one_line_error(tmp_path) == f"{tmp_path} is a folder, not a file"


def test_missing_file(tmp_path):
    assert one_line_error(tmp_path / "nope.png") == f"no such file: {tmp_path / 'nope.png'}"


def test_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert one_line_error(fifo) == f"{fifo} is not a regular file"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert one_line_error(path).startswith(f"{path} is empty")


@pytest.mark.parametrize("name", ["x.png", "x.txt", "x"])
@pytest.mark.parametrize(
    "content", [b"hello, this is text\n", bytes(range(256))], ids=["text", "bytes"]
)
def test_not_an_image(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    message = f"cannot read {path} as an image: not a recognised image format"
    assert one_line_error(path) == message


def test_damaged_image(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.resize(RGB, (64, 64, 3))).save(path)
    path.write_bytes(path.read_bytes()[:300])
    text = one_line_error(path)
    assert text.startswith(f"cannot read {path} as an image: ") and "truncated" in text


def test_decompression_bomb(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 10)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    text = one_line_error(path)
    assert text.startswith(f"cannot read {path}: ") and "MAX_IMAGE_PIXELS" in text
