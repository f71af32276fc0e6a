"""Images through the codec: any size, grayscale, alpha, bit depth, tiling, batches."""

import warnings

import numpy as np
import pytest
from support import smooth_image, untrained_codec

import l3ic
from l3ic.errors import L3ICError


@pytest.mark.parametrize("size", [(1, 1), (7, 9), (8, 8), (37, 53), (64, 24)])
def test_roundtrip_any_size(codec16, size):
    x = smooth_image(*size)
    data = codec16.compress(x)
    y = codec16.decompress(data)
    assert y.shape == x.shape and y.dtype == np.uint8
    latent, meta = codec16.read_latent(data)
    assert latent.shape == (-(-size[0] // 8), -(-size[1] // 8), 16)
    np.testing.assert_array_equal(latent, codec16.encode_latent(x))
    np.testing.assert_array_equal(y, codec16.decode_latent(latent, size))
    assert (meta["height"], meta["width"]) == size


def test_deterministic(codec16):
    x = smooth_image(40, 40)
    assert codec16.compress(x) == codec16.compress(x.copy())


def test_grayscale_in_grayscale_out(codec16):
    x = smooth_image(20, 30)[..., 0]
    y = codec16.decompress(codec16.compress(x))
    assert y.shape == (20, 30) and y.dtype == np.uint8
    y3 = codec16.decompress(codec16.compress(x[..., None]))
    np.testing.assert_array_equal(y, y3)


def test_rgba_refused_unless_dropped(codec16):
    x = np.dstack([smooth_image(16, 16), np.full((16, 16), 255, np.uint8)])
    with pytest.raises(L3ICError, match="alpha"):
        codec16.compress(x)
    assert codec16.compress(x, drop_alpha=True) == codec16.compress(x[..., :3])


def test_16bit_converted_with_warning(codec16):
    x8 = smooth_image(16, 24)
    x16 = x8.astype(np.uint16) * 257
    with pytest.warns(UserWarning, match="16-bit"):
        data = codec16.compress(x16)
    assert data == codec16.compress(x8)


def test_float_input(codec16):
    x8 = smooth_image(16, 16)
    assert codec16.compress(x8 / 255.0) == codec16.compress(x8)
    with pytest.raises(L3ICError, match="float"):
        codec16.compress(x8 * 2.0)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((0, 5, 3), np.uint8),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((4, 4, 3), np.int64),
        np.full((4, 4, 3), np.nan),
        "not an image",
    ],
)
def test_bad_arrays(codec16, bad):
    with pytest.raises(L3ICError):
        codec16.compress(bad)


def test_tiled_equals_untiled():
    x = smooth_image(200, 264, seed=4)  # 25 x 33 latent cells: many 8-cell tiles
    whole, tiled = untrained_codec(16, tile=64), untrained_codec(16, tile=8)
    z = whole.encode_latent(x)
    assert np.unique(z).size > 8  # a spread-out latent, not all zeros
    np.testing.assert_array_equal(tiled.encode_latent(x), z)
    # The tiles' margins cover the decoder's receptive field, so the images agree up to float
    # rounding: the convolutions run on other shapes, which some CPUs (AMD EPYC, AVX2) sum in
    # another order, and a rare pixel lands one step off (2026-12-06: 1 of 158,400 values).
    a = tiled.decode_latent(z, x.shape[:2]).astype(int)
    b = whole.decode_latent(z, x.shape[:2]).astype(int)
    assert np.abs(a - b).max() <= 1
    assert np.count_nonzero(a != b) <= a.size // 10_000


def test_batches_equal_single(codec16):
    images = [smooth_image(24, 32, seed=s) for s in range(3)] + [smooth_image(17, 9)]
    latents = codec16.encode_latent_batch(images)
    for im, z in zip(images, latents, strict=True):
        np.testing.assert_array_equal(z, codec16.encode_latent(im))
    sizes = [im.shape[:2] for im in images]
    for y, z, s in zip(codec16.decode_latent_batch(latents, sizes), latents, sizes, strict=True):
        np.testing.assert_array_equal(y, codec16.decode_latent(z, s))


def test_bad_latents(codec16):
    with pytest.raises(L3ICError):
        codec16.decode_latent(np.zeros((2, 2, 8), np.int8))
    with pytest.raises(L3ICError):
        codec16.decode_latent(np.full((2, 2, 16), 17, np.int16))
    with pytest.raises(L3ICError):
        codec16.decode_latent(np.zeros((2, 2, 16), np.int8), shape=(40, 16))


def test_public_api_with_presets(presets, tmp_path):
    x = smooth_image(30, 41)
    data = l3ic.compress(x, preset="16c")
    y = l3ic.decompress(data)
    assert y.shape == x.shape
    latent, meta = l3ic.read_latent(data, channels=[3, 1])
    full, _ = l3ic.read_latent(data)
    np.testing.assert_array_equal(latent, full[..., [3, 1]])
    assert meta["preset"] == "16c" and meta["channels"] == [3, 1]
    codec = l3ic.Codec("16c")
    np.testing.assert_array_equal(full, codec.encode_latent(x))
    l3ic.imwrite(tmp_path / "a.l3ic", x, preset="16c")
    np.testing.assert_array_equal(l3ic.imread(tmp_path / "a.l3ic"), y)
    l3ic.imwrite(tmp_path / "a.png", x)
    np.testing.assert_array_equal(l3ic.imread(tmp_path / "a.png"), x)
    assert l3ic.compress(tmp_path / "a.png", preset="16c") == data


def test_missing_weights_name_the_file(presets):
    with pytest.raises(L3ICError, match="64c.npz"):
        l3ic.Codec("64c")
    with pytest.raises(L3ICError, match="unknown preset"):
        l3ic.Codec("12c")


def test_no_warnings_on_plain_use(codec16):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec16.decompress(codec16.compress(smooth_image(16, 16)))


def test_files_of_replaced_weights_say_which_version_wrote_them():
    """A file of the same preset but other weights: named as earlier weights, or as unknown."""
    from l3ic.codec import Codec

    old = untrained_codec(16, seed=1)
    new = untrained_codec(16, seed=2)
    data = Codec.from_model(old.net.model, "16c", {}).compress(smooth_image(24, 24))
    fp = old.fingerprint.hex()
    history = {"earlier": [{"fingerprint": fp, "l3ic_version": "0.1.0", "commit": "abc1234"}]}
    with pytest.raises(L3ICError, match=f"earlier weights of preset '16c' \\({fp}.*0.1.0.*abc1234"):
        Codec.from_model(new.net.model, "16c", history).decompress(data)
    with pytest.raises(L3ICError, match=f"weights {fp} of preset '16c', which this l3ic does not"):
        Codec.from_model(new.net.model, "16c", {}).decompress(data)


def test_compress_batch_equals_compress(codec16, tmp_path):
    import imageio.v3 as iio

    images = [smooth_image(24, 32, seed=s) for s in range(3)] + [smooth_image(17, 9)[..., 0]]
    iio.imwrite(tmp_path / "x.png", images[0])
    datas = codec16.compress_batch([*images, tmp_path / "x.png"], quality=70)
    assert datas == [codec16.compress(im, quality=70) for im in [*images, images[0]]]
    assert codec16.decompress(datas[3]).shape == (17, 9)  # grayscale stays grayscale
    rgba = np.dstack([images[0], images[0][..., :1]])
    with pytest.raises(L3ICError, match="alpha"):
        codec16.compress_batch([images[0], rgba])
    assert codec16.compress_batch([rgba], drop_alpha=True) == [codec16.compress(images[0])]
    with pytest.raises(L3ICError, match="not both"):
        codec16.compress_batch(images, quality=70, scale=1.5)
