"""Progressive preview: the first k channels by importance, the rest at their likeliest value."""

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

from l3ic import L3ICError, channel_modes, container
from l3ic.cli import main
from l3ic.codebook import QMIN


@pytest.fixture(scope="module")
def data(codec16):
    return codec16.compress(smooth_image(40, 56, seed=2))


def test_all_channels_equal_full_decode(codec16, data):
    full = codec16.decompress(data)
    np.testing.assert_array_equal(codec16.decompress(data, top_channels=16), full)
    assert not np.array_equal(codec16.decompress(data, top_channels=4), full)


def test_partial_latent_keeps_decoded_and_fills_the_rest(codec16, data):
    full, _ = codec16.read_latent(data)
    parsed = container.parse(data)
    q, meta = codec16.read_partial_latent(data, [3, 7])
    assert meta["channels"] == [3, 7] and q.shape == full.shape
    for k, code in enumerate(parsed.codes):
        if k in (3, 7) or code.mode == channel_modes.CONSTANT:
            np.testing.assert_array_equal(q[..., k], full[..., k])
        else:
            table = code.table if code.mode == channel_modes.TABLE else codec16.priors[k]
            assert (q[..., k] == np.argmax(table) + QMIN).all()


def test_only_the_first_k_streams_in_importance_order_are_decoded(codec16, data, monkeypatch):
    latent, meta = codec16.read_latent(data)
    monkeypatch.setattr(codec16.coder, "channel_order", np.arange(16)[::-1].copy())
    data = codec16.coder.pack(latent, (meta["height"], meta["width"]))
    decoded = []
    real = channel_modes.decode_channel
    monkeypatch.setattr(
        channel_modes,
        "decode_channel",
        lambda c, n, p, m=None: decoded.append(c) or real(c, n, p, m),
    )
    codec16.decompress(data, top_channels=3)
    parsed = container.parse(data, codec16.coder.channel_order)
    assert [c.stream for c in decoded] == [parsed.codes[k].stream for k in (15, 14, 13)]
    # stored in that order: the header and the first k streams are a prefix of the file
    coded = [k for k in range(15, -1, -1) if parsed.codes[k].mode != channel_modes.CONSTANT]
    ends = np.cumsum([parsed.stream_lengths[k] for k in coded]) + parsed.header_bytes
    assert [parsed.offsets[k] for k in coded] == [parsed.header_bytes, *ends[:-1].tolist()]
    decoded.clear()
    assert codec16.decompress(data, top_channels=0).shape == (40, 56, 3) and decoded == []


@pytest.mark.parametrize("k", [-1, 17])
def test_channel_count_out_of_range(codec16, data, k):
    with pytest.raises(L3ICError, match="channels"):
        codec16.decompress(data, top_channels=k)


def test_cli_channels(presets, tmp_path, capsys):
    png = tmp_path / "a.png"
    iio.imwrite(png, smooth_image(24, 40, seed=1))
    assert main(["compress", "-m", "16c", str(png)]) == 0
    src = tmp_path / "a.l3ic"
    outs = {}
    for k in (None, 16, 2):
        out = tmp_path / f"k{k}.png"
        extra = [] if k is None else ["--top-channels", str(k)]
        assert main(["decompress", str(src), "-o", str(out), *extra]) == 0
        outs[k] = iio.imread(out)
    np.testing.assert_array_equal(outs[16], outs[None])
    assert not np.array_equal(outs[2], outs[None])
    capsys.readouterr()
    assert (
        main(["decompress", str(src), "-o", str(tmp_path / "x.png"), "--top-channels", "99"]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "channels" in err[0]
