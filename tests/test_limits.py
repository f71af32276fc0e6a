"""What a small file can make l3ic do: stream lengths are exact, and a pixel limit, checked from
the header before anything is decoded, bounds the work of decompression bombs."""

import subprocess
import sys
import textwrap

import imageio.v3 as iio
import numpy as np
import pytest
from fuzz_l3ic import as_version1, build, split
from support import smooth_image

import l3ic
from l3ic import channel_modes, container, entropy
from l3ic.errors import DecompressionBombError, L3ICError


def constant_file(codec, width: int, height: int) -> bytes:
    """A valid file of a few dozen bytes: every channel constant, any declared size."""
    h, w = -(-height // 8), -(-width // 8)
    codes = [
        channel_modes.ChannelCode(channel_modes.CONSTANT, symbol=15)
        for _ in range(codec.num_channels)
    ]
    shape = (h, w, codec.num_channels)
    c = container.Container(codec.preset, codec.fingerprint, width, height, False, shape, codes)
    c.channel_order, c.tables_id = codec.coder.channel_order.tolist(), codec.coder.tables_id
    return container.pack(c)


def resized(data: bytes, width: int, height: int) -> bytes:
    """The file with another declared size (latent shape to match) and its streams unchanged."""
    f = split(data)
    f.sizes[:4] = [width, height, -(-height // 8), -(-width // 8)]
    return build(f)


@pytest.fixture(scope="module")
def small(codec16):
    """A 32 x 32 image's file (latent 4 x 4 x 16, streams of several kinds)."""
    return codec16.compress(smooth_image(32, 32))


# ----- stream lengths --------------------------------------------------------------------------


def test_stream_that_ends_before_its_symbols_is_an_error(codec16, small):
    # 4 x 5 cells declared for streams that hold 4 x 4: long enough by the size bound, so only
    # the seal can tell (before it, this decoded "successfully", the missing cells made up)
    data = resized(small, 40, 32)
    with pytest.raises(L3ICError, match="does not hold exactly"):
        codec16.decompress(data)


def test_stream_with_symbols_left_over_is_an_error(codec16, small):
    with pytest.raises(L3ICError, match="does not hold exactly"):
        codec16.decompress(resized(small, 32, 24))


def test_stream_far_too_short_is_refused_before_decoding(codec16, small, monkeypatch):
    decoded = []
    monkeypatch.setattr(channel_modes, "decode_channel", lambda *a: decoded.append(a))
    data = resized(small, 4096, 4096)  # the reported 131-byte "4096 x 4096" file
    with pytest.raises(L3ICError, match="too short"):
        codec16.decompress(data, max_pixels=1 << 28)
    assert decoded == []


@pytest.mark.parametrize("n", [1, 100, 5000])
def test_min_stream_bytes_is_a_true_lower_bound(n):
    rng = np.random.default_rng(n)
    for skew in (0.3, 3.0, 30.0):
        p = np.exp(-skew * np.abs(np.arange(32) - 15.0))
        symbols = rng.choice(32, size=n, p=p / p.sum()).astype(np.uint8)
        code = channel_modes.encode_channel(symbols, entropy.default_prior(1)[0])
        if code.mode != channel_modes.CONSTANT:
            table = code.table if code.table is not None else entropy.default_prior(1)[0]
            assert len(code.stream) >= entropy.min_stream_bytes(n, table)


def test_version1_files_still_decode(codec16, presets):
    data = l3ic.compress(smooth_image(24, 40), preset="16c")
    old = as_version1(data)
    assert old[4] == 1 and data[4] == container.VERSION == 4
    np.testing.assert_array_equal(l3ic.read_latent(old)[0], l3ic.read_latent(data)[0])
    np.testing.assert_array_equal(l3ic.decompress(old), l3ic.decompress(data))


def test_declared_lengths_are_checked_against_the_bytes_present(small):
    f = split(small)
    mode, length, table = next(e for e in f.entries if e[0] != channel_modes.CONSTANT)
    i = f.entries.index((mode, length, table))
    f.entries[i] = (mode, length + 4, table)  # the header claims 4 bytes more than are there
    with pytest.raises(L3ICError, match="truncated"):
        container.parse(build(f))
    f.entries[i] = (mode, 6, table)  # not whole 32-bit words
    with pytest.raises(L3ICError, match="stream of 6 bytes"):
        container.parse(build(f))


# ----- the pixel limit ------------------------------------------------------------------------


def test_bomb_is_refused_from_the_header_alone(codec16, monkeypatch):
    data = constant_file(codec16, 8192, 8192)  # 67 bytes; decoding took 49 s and 1.3 GB
    assert len(data) < 100
    monkeypatch.setattr(codec16, "_decode", lambda *a: pytest.fail("the network ran"))
    monkeypatch.setattr(
        channel_modes, "decode_channel", lambda *a: pytest.fail("a stream was decoded")
    )
    with pytest.raises(DecompressionBombError, match="limit") as e:
        codec16.decompress(data)
    assert isinstance(e.value, L3ICError)
    with pytest.raises(DecompressionBombError):
        codec16.read_latent(data)


def test_limit_is_an_argument_an_environment_variable_and_has_a_default(codec16, monkeypatch):
    data = constant_file(codec16, 64, 48)
    monkeypatch.delenv(container.MAX_PIXELS_ENV, raising=False)
    assert container.pixel_limit() == container.DEFAULT_MAX_PIXELS == 1 << 25
    assert codec16.decompress(data).shape == (48, 64, 3)
    with pytest.raises(DecompressionBombError):
        codec16.decompress(data, max_pixels=64 * 48 - 1)
    assert codec16.decompress(data, max_pixels=64 * 48).shape == (48, 64, 3)
    monkeypatch.setenv(container.MAX_PIXELS_ENV, "1000")
    with pytest.raises(DecompressionBombError, match="1,000 pixels"):
        codec16.decompress(data)
    assert codec16.decompress(data, max_pixels=5000).shape == (48, 64, 3)  # argument wins
    monkeypatch.setenv(container.MAX_PIXELS_ENV, "lots")
    with pytest.raises(L3ICError, match="L3IC_MAX_PIXELS"):
        codec16.decompress(data)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(L3ICError, match="positive integer"):
            container.pixel_limit(bad)


def test_the_limit_counts_the_pixels_the_network_computes(codec16):
    # A 33 x 33 image is coded padded to 40 x 40: 1,600 pixels of work, not 1,089.
    data = constant_file(codec16, 33, 33)
    assert container.coded_pixels(33, 33) == 1600
    coder = codec16.coder
    assert coder.read(data, max_pixels=1600)[0].shape == (5, 5, 16)
    with pytest.raises(DecompressionBombError, match="1,600 pixels, padded"):
        coder.read(data, max_pixels=1599)
    if coder.compiled is not None:  # the compiled reader gives up; Python then says why
        assert coder.read_compiled(data, max_pixels=1600) is not None
        assert coder.read_compiled(data, max_pixels=1599) is None


def test_api_lazy_file_and_imageio_enforce_the_limit(presets, tmp_path):
    codec = l3ic.api.get_codec("16c")
    path = tmp_path / "bomb.l3ic"
    path.write_bytes(constant_file(codec, 8192, 8192))
    with pytest.raises(DecompressionBombError):
        l3ic.decompress(path.read_bytes())
    with pytest.raises(DecompressionBombError):
        l3ic.read_latent(path.read_bytes())
    with pytest.raises(DecompressionBombError):
        l3ic.imread(path)
    with pytest.raises(DecompressionBombError):
        l3ic.open(path).image()
    with pytest.raises(DecompressionBombError):
        iio.imread(path)
    assert iio.improps(path).shape == (8192, 8192, 3)  # the header alone is fine to read
    small = tmp_path / "small.l3ic"
    small.write_bytes(constant_file(codec, 64, 48))
    with pytest.raises(DecompressionBombError):
        iio.imread(small, max_pixels=100)
    assert iio.imread(small, max_pixels=64 * 48).shape == (48, 64, 3)


def test_cli_refuses_a_bomb_and_takes_max_pixels(presets, tmp_path, capsys):
    from l3ic.cli import main

    codec = l3ic.api.get_codec("16c")
    path = tmp_path / "bomb.l3ic"
    path.write_bytes(constant_file(codec, 8192, 8192))
    assert main(["decompress", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exceeds the limit" in err[0] and "--max-pixels" in err[0]
    assert not (tmp_path / "bomb.png").exists()
    small = tmp_path / "small.l3ic"
    small.write_bytes(constant_file(codec, 64, 48))
    assert main(["decompress", str(small), "--max-pixels", "100"]) == 1
    assert main(["decompress", str(small), "--max-pixels", "3072"]) == 0
    assert iio.imread(tmp_path / "small.png").shape == (48, 64, 3)


@pytest.mark.slow
def test_large_image_within_the_limit_decodes_in_bounded_memory(tmp_path):
    """6000 x 4000 (24 Mpx) decodes tile by tile: peak memory grows by far less than a
    whole-image network pass would need (several GB). About 30 s on 2 cores."""
    script = textwrap.dedent(
        """
        import resource, sys, numpy as np, l3ic
        codec = l3ic.Codec("16c")
        rng = np.random.default_rng(0)
        q = np.clip(np.round(rng.laplace(0, 1.5, (500, 750, 16))), -15, 16).astype(np.int8)
        data = codec.pack_latent(q, (4000, 6000))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = codec.decompress(data)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(image.shape, (after - before) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    shape, grown_mb = out.stdout.strip().rsplit(" ", 1)
    assert shape == "(4000, 6000, 3)"
    assert int(grown_mb) < 600  # the output alone is 72 MB
