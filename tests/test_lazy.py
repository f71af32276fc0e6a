"""l3ic.open: the header on open, only the asked-for streams on demand."""

import numpy as np
import pytest
from support import smooth_image

import l3ic
from l3ic import L3ICError, channel_modes, codec, container
from l3ic.latent_coder import get_coder


@pytest.fixture
def l3ic_file(presets, tmp_path):
    path = tmp_path / "photo.l3ic"
    path.write_bytes(l3ic.compress(smooth_image(30, 45, seed=4), preset="16c"))
    return path


@pytest.fixture
def spy(monkeypatch):
    decoded = []
    real = channel_modes.decode_channel
    monkeypatch.setattr(
        channel_modes,
        "decode_channel",
        lambda c, n, p, m=None: decoded.append(c) or real(c, n, p, m),
    )
    return decoded


def test_open_reads_the_header_only(l3ic_file, spy, monkeypatch):
    loaded = []
    monkeypatch.setattr(codec, "Codec", lambda preset: loaded.append(preset))
    f = l3ic.open(l3ic_file)
    assert f.shape == (30, 45) and (f.width, f.height) == (45, 30)
    assert f.preset == "16c" and f.latent_shape == (4, 6, 16)
    assert f.nbytes == l3ic_file.stat().st_size and len(f.channel_bytes) == 16
    assert not f.grayscale and "16c 45x30" in repr(f)
    assert spy == [] and loaded == []


def test_latent_channels_decode_only_those_streams(l3ic_file, spy, monkeypatch):
    data = l3ic_file.read_bytes()
    full, _ = l3ic.read_latent(data)
    f = l3ic.open(l3ic_file)
    # The Python reader, whose calls the spy sees (tests/test_record_decoder.py checks the same
    # of the compiled one).
    monkeypatch.setattr(get_coder(f.preset), "compiled", None)
    spy.clear()
    part = f.latent(channels=[9, 2])
    np.testing.assert_array_equal(part, full[..., [9, 2]])
    parsed = container.parse(data, get_coder(f.preset).channel_order)
    assert [c.stream for c in spy] == [parsed.codes[9].stream, parsed.codes[2].stream]
    np.testing.assert_array_equal(f.latent(), full)


def test_image_and_preview(l3ic_file):
    data = l3ic_file.read_bytes()
    f = l3ic.open(l3ic_file)
    np.testing.assert_array_equal(f.image(), l3ic.decompress(data))
    np.testing.assert_array_equal(f.image(top_channels=5), l3ic.decompress(data, top_channels=5))
    assert f.image(top_channels=5).shape == (30, 45, 3)


def test_open_errors(tmp_path):
    with pytest.raises(L3ICError, match="cannot read"):
        l3ic.open(tmp_path / "missing.l3ic")
    bad = tmp_path / "bad.l3ic"
    bad.write_bytes(b"L3IC\x01junk")
    with pytest.raises(L3ICError, match="bad.l3ic"):
        l3ic.open(bad)
