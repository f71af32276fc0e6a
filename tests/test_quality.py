"""The quality knob: files at a quantisation scale (format version 5), --quality, --bpp, --size."""

import hashlib
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from test_format_golden import V4_SHAPE, v4_coder, v4_latent

import l3ic
from l3ic import container
from l3ic.cli import main
from l3ic.codebook import dequantize, quantize, snap_scale
from l3ic.errors import L3ICError
from l3ic.evaluate import CURVE_SCALES
from l3ic.presets import PRESETS
from l3ic.rate_control import (
    FIT_TOLERANCE,
    MAX_TRIES,
    choose_for_bpp,
    choose_for_quality,
    efficient_points,
    fit_scale,
    quality_rate,
    quality_scale,
    shipped_curves,
)

SAMPLE = Path(l3ic.__file__).parent / "samples" / "astronaut.png"
V5_PINNED_SHA256 = "fd4b24d0a3d07faeccc7aaa48e0b9bee46b82b13c4345db8864f86472d5723f4"


@pytest.fixture(scope="module")
def photo():
    return iio.imread(SAMPLE)[:256, :320]


def test_scale_one_writes_todays_version_4_files_bit_for_bit(photo):
    codec = l3ic.Codec("16c")
    plain = codec.compress(photo)
    assert plain[4] == 4 and container.parse(plain).scale == 1.0
    assert codec.compress(photo, quality=50) == plain
    assert codec.compress(photo, scale=1.0) == plain
    assert codec.pack_latent(codec.encode_latent(photo), photo.shape[:2]) == plain


def test_quality_sets_the_scale_monotone_in_bytes_and_files_carry_it(photo):
    codec = l3ic.Codec("16c")
    sizes = []
    for quality in (0, 25, 50, 75, 100):
        data = codec.compress(photo, quality=quality)
        scale = quality_scale(quality)
        assert container.parse(data).scale == scale
        assert data[4] == (4 if scale == 1 else 5)
        q, meta = l3ic.read_latent(data)
        assert meta["scale"] == scale
        np.testing.assert_array_equal(q, codec.encode_latent(photo, scale))
        decoded = codec.decompress(data)
        np.testing.assert_array_equal(decoded, codec.decode_latent(q, photo.shape[:2], scale))
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < 0.8 * sizes[2] < 0.7 * sizes[4]
    # 1.5 octaves below quality 50 and 0.75 above, on the 1/1024 grid a file stores.
    assert [quality_scale(q) for q in (0, 25, 50, 75, 100)] == [
        round(2**e * 1024) / 1024 for e in (-1.5, -0.75, 0, 0.375, 0.75)
    ]


def test_decoding_a_scaled_file_divides_by_its_scale(photo):
    codec = l3ic.Codec("16c")
    q = codec.encode_latent(photo, 1.5)
    z = codec.encode_z(photo)
    np.testing.assert_array_equal(q, quantize(z, 1.5))
    y = codec.decode_latent(q, photo.shape[:2], 1.5)
    other = codec.decode_latent(q, photo.shape[:2])  # read as scale 1: another image
    assert np.abs(y.astype(int) - other).mean() > 1
    assert dequantize(np.array([3], np.int8), 1.5)[0] == np.float32(3) / np.float32(1.5)


@pytest.mark.parametrize("target", [0.25, 0.5, 0.9])
def test_bpp_and_size_give_the_largest_file_within_the_budget(photo, target):
    codec = l3ic.Codec("16c")
    pixels = photo.shape[0] * photo.shape[1]
    data = codec.compress(photo, bpp=target)
    bpp = 8 * len(data) / pixels
    assert target * 0.97 <= bpp <= target
    budget = int(target * pixels / 8)
    assert codec.compress(photo, max_bytes=budget) == data


def test_an_unreachable_size_is_one_error(photo):
    with pytest.raises(L3ICError, match="cannot be made 50 bytes or smaller: at scale 0.125"):
        l3ic.compress(photo, "16c", max_bytes=50)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"quality": 101}, "quality must be from 0 to 100"),
        ({"quality": "high"}, "quality must be a number"),
        ({"scale": 9}, "within 0.125..8"),
        ({"scale": float("nan")}, "within 0.125..8"),
        ({"bpp": 0}, "bpp must be more than 0"),
        ({"max_bytes": 0}, "whole number of bytes"),
        ({"quality": 20, "bpp": 1}, "not quality and bpp"),
    ],
)
@pytest.mark.parametrize("preset", ["16c", None])
def test_bad_rate_arguments_are_errors(photo, kwargs, message, preset):
    with pytest.raises(L3ICError, match=message):
        l3ic.compress(photo, preset, **kwargs)


def _point(scale, bpp, ssim):
    return {"scale": scale, "bpp": bpp, "ssim": ssim, "psnr": 30.0}


# Three made-up presets: "a" low rates, "b" (the default) in the middle, "c" high rates; "b"
# beats "a" where they overlap (0.6-0.7 bpp), "c" beats "b" above 1.3 bpp; "c" saturates past
# scale 1.41 and "b" at 2.
CURVES = {
    "a": [
        _point(0.5, 0.35, 0.78),
        _point(1.0, 0.5, 0.82),
        _point(1.41, 0.6, 0.83),
        _point(2, 0.7, 0.835),
    ],
    "b": [
        _point(0.5, 0.6, 0.84),
        _point(1.0, 1.0, 0.89),
        _point(1.41, 1.2, 0.9),
        _point(2, 1.45, 0.88),
    ],
    "c": [
        _point(0.5, 1.1, 0.87),
        _point(1.0, 1.8, 0.93),
        _point(1.41, 2.2, 0.94),
        _point(2, 2.7, 0.9),
    ],
}


def test_efficient_points_drop_where_quality_stops_rising():
    assert [p["scale"] for p in efficient_points(CURVES["b"])] == [0.5, 1.0, 1.41]
    assert [p["scale"] for p in efficient_points(CURVES["a"][::-1])] == [0.5, 1.0, 1.41, 2]


def test_quality_without_a_preset_spans_all_presets_and_picks_the_winner():
    rates = [quality_rate(CURVES, q, "b") for q in range(0, 101, 5)]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert math.isclose(rates[0], 0.35) and math.isclose(rates[-1], 2.2)  # c's s = 2 is dropped
    assert choose_for_quality(50, CURVES, "b") == ("b", 1.0)
    assert choose_for_quality(0, CURVES, "b") == ("a", 0.5)
    assert choose_for_quality(100, CURVES, "b") == ("c", snap_scale(1.41))
    assert choose_for_bpp(0.65, CURVES) == "b"  # a reaches 0.65 bpp too, at a lower SSIM
    assert choose_for_bpp(0.45, CURVES) == "a"
    assert choose_for_bpp(1.15, CURVES) == "b"  # b: 0.8975 against c: about 0.868
    assert choose_for_bpp(1.4, CURVES) == "c"  # b's points end at 1.2
    assert choose_for_bpp(0.1, CURVES) == "a" and choose_for_bpp(9, CURVES) == "c"
    for q in range(0, 101, 10):  # the scale chosen gives the rate asked for, on its curve
        preset, scale = choose_for_quality(q, CURVES, "b")
        points = efficient_points(CURVES[preset])
        got = np.exp(
            np.interp(
                np.log(scale),
                np.log([p["scale"] for p in points]),
                np.log([p["bpp"] for p in points]),
            )
        )
        assert got == pytest.approx(quality_rate(CURVES, q, "b"), rel=2e-3)


def test_where_ssim_and_ms_ssim_part_both_decide_the_preset():
    # "hi" at its low scales: a hair more SSIM than "lo" at its high scales, far less MS-SSIM
    lo = [
        {**_point(1.0, 1.0, 0.89), "ms-ssim": 0.977},
        {**_point(1.41, 1.2, 0.9), "ms-ssim": 0.981},
    ]
    hi = [
        {**_point(0.5, 1.1, 0.896), "ms-ssim": 0.970},
        {**_point(1.0, 1.8, 0.94), "ms-ssim": 0.986},
    ]
    assert choose_for_bpp(1.15, {"lo": lo, "hi": hi}) == "lo"
    assert choose_for_bpp(1.6, {"lo": lo, "hi": hi}) == "hi"  # lo's points end at 1.2
    without = {
        name: [{k: v for k, v in p.items() if k != "ms-ssim"} for p in pts]
        for name, pts in {"lo": lo, "hi": hi}.items()
    }
    assert choose_for_bpp(1.15, without) == "hi"  # by SSIM alone
    mixed = [lo[0], {**lo[1], "ms-ssim": None}]  # a point without MS-SSIM: SSIM alone
    assert choose_for_bpp(1.15, {"lo": mixed, "hi": hi}) == "hi"


def test_the_shipped_presets_carry_scale_curves_of_their_weights():
    curves = shipped_curves()
    assert sorted(curves) == sorted(PRESETS)
    for preset, points in curves.items():
        assert [p["scale"] for p in points] == [round(s, 4) for s in CURVE_SCALES], preset
        assert [p["bpp"] for p in points] == sorted(p["bpp"] for p in points), preset


def test_a_rate_without_a_preset_picks_one(photo, tmp_path):
    assert l3ic.compress(photo, quality=50) == l3ic.compress(photo) == l3ic.compress(photo, "32c")
    for quality in (0, 100):
        preset, scale = choose_for_quality(quality)
        data = l3ic.compress(photo, quality=quality)
        header = container.parse(data)
        assert (header.preset, header.scale) == (preset, scale)
    bpp = 0.3
    data = l3ic.compress(photo, bpp=bpp)
    assert container.parse(data).preset == choose_for_bpp(bpp)
    assert 8 * len(data) / photo[..., 0].size <= bpp
    src, out = tmp_path / "photo.png", tmp_path / "photo.l3ic"
    iio.imwrite(src, photo)
    assert main(["compress", "--size", "2KB", str(src), "-o", str(out)]) == 0
    assert container.parse(out.read_bytes()).preset == choose_for_bpp(8 * 2048 / photo[..., 0].size)
    assert out.stat().st_size <= 2048


def test_fit_scale_searches_in_few_codings_and_stays_within_the_budget():
    calls = []

    def pack(scale):  # bytes ~ 9000 s^0.85, like a preset's curve
        calls.append(scale)
        return bytes(round(9000 * scale**0.85))

    for budget in (2500, 6000, 9000, 20000, 40000):
        calls.clear()
        scale, data = fit_scale(pack, budget)
        assert len(data) <= budget and len(calls) <= MAX_TRIES
        assert len(data) >= (1 - FIT_TOLERANCE) * budget or len(calls) == MAX_TRIES
        assert scale == snap_scale(scale)
    calls.clear()
    scale, data = fit_scale(pack, 10**9)  # past the largest scale: the largest file
    assert scale == 8.0
    with pytest.raises(L3ICError, match="cannot be made 100 bytes"):
        fit_scale(pack, 100)


def test_fit_scale_copes_with_sizes_that_are_not_monotone():
    def pack(scale):  # a bump: sizes fall between 1.0 and 1.3
        n = 9000 * scale**0.9 * (1 - 0.15 * math.exp(-(((scale - 1.15) / 0.1) ** 2)))
        return bytes(round(n))

    for budget in range(7000, 14000, 500):
        scale, data = fit_scale(pack, budget)
        assert len(data) <= budget and len(pack(scale)) == len(data)


def test_version_5_packs_to_pinned_bytes_and_older_versions_refuse_a_scale():
    coder, q = v4_coder(), v4_latent()
    data = coder.pack(q, V4_SHAPE, scale=1.5)
    assert hashlib.sha256(data).hexdigest() == V5_PINNED_SHA256
    c = container.parse(data, coder.channel_order)
    assert (c.version, c.scale) == (5, 1.5)
    scaled, meta = coder.read(data)
    np.testing.assert_array_equal(scaled, q)
    assert meta["scale"] == 1.5
    plain = coder.pack(q, V4_SHAPE)
    assert len(data) == len(plain) + 2  # the 2 bytes of the scale
    with pytest.raises(L3ICError, match="cannot hold a scale"):
        coder.writing(3).pack(q, V4_SHAPE, scale=1.5)
    with pytest.raises(L3ICError, match="multiple of 1/1024"):
        coder.pack(q, V4_SHAPE, scale=1.0001)
    broken = bytearray(data)  # scale 0: refused, though both checksums are right
    pos = 7 + 6 + 8 + 4
    broken[pos : pos + 2] = b"\0\0"
    broken = _reseal(bytes(broken), c.header_bytes)
    with pytest.raises(L3ICError, match="scale 0"):
        container.parse(broken)


def _reseal(data: bytes, header_bytes: int) -> bytes:
    """``data`` with its header and file CRC-32s recomputed."""
    import zlib

    head = data[: header_bytes - 4]
    body = head + zlib.crc32(head).to_bytes(4, "little") + data[header_bytes:-4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_cli_quality_bpp_and_size(photo, tmp_path, capsys):
    src = tmp_path / "photo.png"
    iio.imwrite(src, photo)
    out = tmp_path / "photo.l3ic"
    assert main(["compress", "-m", "16c", "--quality", "20", str(src), "-o", str(out)]) == 0
    assert container.parse(out.read_bytes()).scale == quality_scale(20)
    assert main(["info", str(out)]) == 0
    assert f"scale {quality_scale(20):g}" in capsys.readouterr().out
    assert main(["compress", "-m", "16c", "--size", "3KB", str(src), "-f", "-o", str(out)]) == 0
    assert 0.97 * 3072 <= out.stat().st_size <= 3072
    assert main(["compress", "-m", "16c", "--bpp", "0.4", str(src), "-f", "-o", str(out)]) == 0
    assert 0.97 * 0.4 <= 8 * out.stat().st_size / photo[..., 0].size <= 0.4
    assert main(["decompress", str(out), "-o", str(tmp_path / "back.png")]) == 0
    capsys.readouterr()
    gone = tmp_path / "never.l3ic"
    assert main(["compress", "-m", "16c", "--size", "40", str(src), "-o", str(gone)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be made 40 bytes" in err[0] and not gone.exists()
    with pytest.raises(SystemExit) as e:
        main(["compress", "--quality", "20", "--bpp", "1", str(src)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["compress", "--quality", "120", str(src)])


def test_imageio_writes_at_a_quality_or_a_size(photo, tmp_path):
    path = tmp_path / "x.l3ic"
    iio.imwrite(path, photo, preset="16c", quality=80)
    assert iio.immeta(path)["scale"] == quality_scale(80)
    assert iio.imread(path).shape == photo.shape
    iio.imwrite(path, photo, preset="16c", max_bytes=2000)
    assert path.stat().st_size <= 2000
