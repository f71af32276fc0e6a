"""The .l3ic format: exact latent round trips and one clear error for every kind of damage."""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l3ic import channel_modes, container, entropy
from l3ic.errors import L3ICError


def latent_with_degenerate_channels(h, w, c, seed=0):
    rng = np.random.default_rng(seed)
    q = np.clip(np.round(rng.laplace(0, 2, (h, w, c))), -15, 16).astype(np.int8)
    q[..., 0] = 0  # constant
    if c > 1:
        q[..., 1] = 3
        q[0, 0, 1] = -15  # one outlier
    if c > 2:
        q[..., 2] = rng.integers(-15, 17, (h, w))  # uniform over the whole codebook
    return q


@pytest.mark.parametrize("shape", [(1, 1, 16), (5, 7, 16), (33, 20, 16)])
def test_latent_bytes_latent_exact(codec16, shape):
    q = latent_with_degenerate_channels(*shape)
    data = codec16.pack_latent(q, (8 * shape[0], 8 * shape[1]))
    out, meta = codec16.read_latent(data)
    np.testing.assert_array_equal(out, q)
    assert meta["latent_shape"] == shape


def test_every_channel_alone_and_subsets(codec16):
    q = latent_with_degenerate_channels(9, 11, 16, seed=3)
    data = codec16.pack_latent(q, (70, 85))
    for k in range(16):
        out, meta = codec16.read_latent(data, channels=[k])
        np.testing.assert_array_equal(out[..., 0], q[..., k])
    rng = np.random.default_rng(0)
    for _ in range(10):
        subset = rng.choice(16, size=rng.integers(1, 16), replace=False).tolist()
        out, _ = codec16.read_latent(data, channels=subset)
        np.testing.assert_array_equal(out, q[..., subset])


def test_skipped_streams_are_not_decoded(codec16, monkeypatch):
    # The Python reader (tests/test_record_decoder.py checks the same of the compiled one).
    monkeypatch.setattr(codec16.coder, "compiled", None)
    q = latent_with_degenerate_channels(6, 6, 16)
    data = codec16.pack_latent(q, (48, 48))
    decoded = []
    real = channel_modes.decode_channel

    def spy(code, n, prior, model=None):
        decoded.append(code)
        return real(code, n, prior, model)

    monkeypatch.setattr(channel_modes, "decode_channel", spy)
    codec16.read_latent(data, channels=[5, 9])
    parsed = container.parse(data, codec16.coder.channel_order)
    assert [c.stream for c in decoded] == [parsed.codes[5].stream, parsed.codes[9].stream]


def test_random_latents_hypothesis(codec16):
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
    def check(h, w, seed):
        rng = np.random.default_rng(seed)
        q = rng.integers(-15, 17, (h, w, 16)).astype(np.int8)
        q[..., rng.integers(0, 16)] = rng.integers(-15, 17)
        data = codec16.pack_latent(q, (8 * h - 3 if h > 1 else 8, 8 * w))
        np.testing.assert_array_equal(codec16.read_latent(data)[0], q)

    check()


@pytest.fixture(scope="module")
def valid_file(codec16):
    return codec16.pack_latent(latent_with_degenerate_channels(4, 6, 16), (30, 45))


def test_every_truncation_is_an_error(codec16, valid_file):
    for n in range(len(valid_file)):
        with pytest.raises(L3ICError):
            codec16.read_latent(valid_file[:n])


def test_trailing_bytes_are_an_error(codec16, valid_file):
    with pytest.raises(L3ICError, match="trailing"):
        codec16.read_latent(valid_file + b"\0")


def test_bit_flips_are_errors(codec16, valid_file):
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(0, 8 * len(valid_file) - 1))
    def check(bit):
        data = bytearray(valid_file)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(L3ICError):
            codec16.read_latent(bytes(data))

    check()


def test_random_bytes_are_errors(codec16):
    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=300))
    def check(data):
        with pytest.raises(L3ICError):
            codec16.read_latent(data)

    check()


def test_random_bytes_after_magic_are_errors(codec16):
    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=300))
    def check(tail):
        with pytest.raises(L3ICError):
            codec16.read_latent(container.MAGIC + bytes([container.VERSION]) + tail)

    check()


def test_wrong_magic_and_version(codec16, valid_file):
    with pytest.raises(L3ICError, match="magic"):
        codec16.read_latent(b"PNG!" + valid_file[4:])
    with pytest.raises(L3ICError, match="version 9"):
        codec16.read_latent(valid_file[:4] + b"\x09" + valid_file[5:])


def _resealed(header_without_crc: bytes) -> bytes:
    head = header_without_crc + zlib.crc32(header_without_crc).to_bytes(4, "little")
    return head + zlib.crc32(head).to_bytes(4, "little")


@pytest.mark.parametrize(
    "width,height",
    [(1 << 20, 1 << 20), (0, 10), (10, 0), (2**34, 1), (60000, 60000)],
)
def test_absurd_dimensions_fail_before_allocating(codec16, width, height):
    name = codec16.preset.encode()
    head = container.MAGIC + bytes([1, 0, len(name)]) + name + codec16.fingerprint
    for n in (width, height, -(-height // 8), -(-width // 8), 16):
        head += entropy.write_varint(n)
    head += bytes([channel_modes.CONSTANT, 15]) * 16
    with pytest.raises(L3ICError):
        codec16.read_latent(_resealed(head))


def test_file_from_other_weights_is_refused(codec16, valid_file):
    from support import untrained_codec

    other = untrained_codec(16, seed=7)
    with pytest.raises(L3ICError, match="weights"):
        other.read_latent(valid_file)


def test_header_overhead_is_small(codec16):
    q = latent_with_degenerate_channels(64, 64, 16)
    data = codec16.pack_latent(q, (512, 512))
    overhead = container.parse(data).header_bytes + 4
    assert overhead < 0.05 * len(data)
