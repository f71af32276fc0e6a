"""bench.codecs: the BenchCodec interface round trip for every available classic codec."""

from __future__ import annotations

import numpy as np
import pytest

from bench.codecs import CODECS, L3IC, Availability, bench_codec
from l3ic.metrics import psnr

CLASSIC = [name for name, cls in CODECS.items() if not cls.is_learned]
PSNR_FLOOR = 30.0  # dB at the second-highest sweep point on the smooth test image


def _codec(name: str, threads: int | None = None):
    availability = CODECS[name].is_available()
    if not availability.ok:
        pytest.skip(f"{name} unavailable: {availability.reason}")
    return bench_codec(name, threads)


@pytest.mark.parametrize("name", CLASSIC)
def test_round_trip(name, small_image):
    codec = _codec(name)
    assert codec.description and codec.label
    data = codec.encode(small_image, codec.qualities[-2])
    assert isinstance(data, bytes) and len(data) > 0
    recon = codec.decode(data)
    assert recon.shape == small_image.shape and recon.dtype == np.uint8
    assert psnr(small_image, recon) > PSNR_FLOOR


@pytest.mark.parametrize("name", CLASSIC)
def test_quality_axis_changes_rate(name, small_image):
    # Catches a codec stuck in lossless mode or ignoring its quality setting.
    codec = _codec(name)
    low = codec.encode(small_image, codec.qualities[0])
    high = codec.encode(small_image, codec.qualities[-1])
    assert len(low) < len(high)
    assert psnr(small_image, codec.decode(low)) < psnr(small_image, codec.decode(high))


@pytest.mark.parametrize("name", CLASSIC)
def test_threads(name, small_image):
    cls = CODECS[name]
    if not cls.threaded:
        with pytest.raises(ValueError, match="no thread setting"):
            cls(threads=2)
        return
    codec = _codec(name, threads=1)
    recon = codec.decode(codec.encode(small_image, codec.qualities[-2]))
    assert recon.shape == small_image.shape


def test_rejects_bad_input(small_image):
    codec = _codec("jpeg420")
    with pytest.raises(ValueError, match="uint8"):
        codec.encode(small_image.astype(np.float32), 50)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        codec.encode(small_image[..., :2].copy(), 50)
    with pytest.raises(ValueError, match="unknown codec"):
        bench_codec("bpg")


def test_l3ic_availability_never_raises():
    availability = L3IC.is_available()
    assert isinstance(availability, Availability)
    assert availability.ok or availability.reason


def test_l3ic_round_trip(small_image):
    availability = L3IC.is_available()
    if not availability.ok:
        pytest.skip(f"l3ic unavailable: {availability.reason}")
    codec = L3IC()
    preset = codec.sweep()[0]
    assert preset in L3IC.qualities and preset in codec.description
    recon = codec.decode(codec.encode(small_image, preset))
    assert recon.shape == small_image.shape and recon.dtype == np.uint8


def test_l3ic_loads_each_preset_once():
    """Encoding (the bench) and decoding (``l3ic.decompress``) share one Codec per preset."""
    availability = L3IC.is_available()
    if not availability.ok:
        pytest.skip(f"l3ic unavailable: {availability.reason}")
    from l3ic.api import get_codec

    preset = L3IC().sweep()[0]
    assert L3IC.l3ic_codec(preset) is get_codec(preset)


@pytest.mark.parametrize("name", ["l3ic-16c", "l3ic-32c", "l3ic-64c"])
def test_l3ic_presets_sweep_their_quality(name, small_image):
    codec = _codec(name)
    assert codec.is_learned and codec.sweep() == codec.qualities and name[5:] in codec.description
    sizes = [len(codec.encode(small_image, q)) for q in (0, 50, 100)]
    assert sizes[0] < sizes[1] < sizes[2]
    plain = L3IC().encode(small_image, name[5:])  # the preset axis: quality 50
    assert codec.encode(small_image, 50) == plain
    # the network that bench.speed times is the preset's, at every quality
    assert codec.codec_at(100) is L3IC().codec_at(name[5:])


def test_l3ic_chosen_sweeps_quality_across_the_presets(small_image):
    from l3ic import container
    from l3ic.rate_control import choose_for_quality

    codec = _codec("l3ic-chosen")
    assert codec.is_learned and "without a preset" in codec.description
    assert codec.encode(small_image, 50) == L3IC().encode(small_image, "32c")
    for quality in (0, 100):
        preset, scale = choose_for_quality(quality)
        header = container.parse(codec.encode(small_image, quality))
        assert (header.preset, header.scale) == (preset, scale)
        assert codec.codec_at(quality) is L3IC().codec_at(preset)
