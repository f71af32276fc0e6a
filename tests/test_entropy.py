import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l3ic import channel_modes, entropy
from l3ic.errors import L3ICError


def roundtrip(symbols, prior):
    code = channel_modes.encode_channel(symbols, prior)
    return code, channel_modes.decode_channel(code, symbols.size, prior)


PRIOR = entropy.default_prior(1)[0]


@pytest.mark.parametrize(
    "symbols",
    [
        np.full(100, 15, np.uint8),  # constant
        np.array([15] * 99 + [31], np.uint8),  # one outlier
        np.array([0], np.uint8),  # 1x1 latent
        np.arange(32, dtype=np.uint8),  # every symbol once
        np.random.default_rng(0).integers(0, 32, 5000).astype(np.uint8),  # uniform
    ],
)
def test_channel_roundtrip_degenerate(symbols):
    code, out = roundtrip(symbols, PRIOR)
    np.testing.assert_array_equal(out, symbols)
    if np.unique(symbols).size == 1:
        assert code.mode == channel_modes.CONSTANT and code.stream == b""


def _cost(code):
    return len(code.stream) + (
        len(entropy.pack_table(code.table)) if code.mode == channel_modes.TABLE else 0
    )


def test_mode_and_precision_choice_is_near_the_cheapest():
    rng = np.random.default_rng(1)
    near_prior = np.clip(np.round(rng.laplace(15, 1.5, 4000)), 0, 31).astype(np.uint8)
    far = np.clip(np.round(rng.normal(28, 1, 4000)), 0, 31).astype(np.uint8)
    for symbols in (near_prior, far):
        hist = np.bincount(symbols, minlength=32)
        costs = [len(entropy.ans_encode(symbols, PRIOR))]
        for bits in range(entropy.MIN_TABLE_BITS, entropy.TABLE_BITS + 1):
            table = entropy.quantize_counts(hist, bits)
            costs.append(len(entropy.ans_encode(symbols, table)) + len(entropy.pack_table(table)))
        assert _cost(channel_modes.encode_channel(symbols, PRIOR)) <= min(costs) + 4  # one ANS word
    assert channel_modes.encode_channel(near_prior, PRIOR).mode == channel_modes.PRIOR
    assert channel_modes.encode_channel(far, PRIOR).mode == channel_modes.TABLE


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 100_000), min_size=32, max_size=32).filter(lambda h: sum(h) > 0),
    st.integers(entropy.MIN_TABLE_BITS, entropy.TABLE_BITS),
)
def test_quantize_counts(hist, bits):
    counts = entropy.quantize_counts(np.array(hist), bits)
    assert counts.sum() == 1 << bits
    assert ((counts > 0) == (np.array(hist) > 0)).all()
    table, pos = entropy.unpack_table(entropy.pack_table(counts), 0)
    np.testing.assert_array_equal(table, counts)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(0, 31), st.floats(0.2, 8.0), st.integers(0, 2**32 - 1))
def test_channel_roundtrip_random(n, centre, spread, seed):
    rng = np.random.default_rng(seed)
    symbols = np.clip(np.round(rng.normal(centre, spread, n)), 0, 31).astype(np.uint8)
    _, out = roundtrip(symbols, PRIOR)
    np.testing.assert_array_equal(out, symbols)


def test_corrupt_stream_is_an_error():
    rng = np.random.default_rng(2)
    symbols = rng.integers(10, 20, 1000).astype(np.uint8)
    code = channel_modes.encode_channel(symbols, PRIOR)
    code.stream = code.stream[:-4]
    with pytest.raises(L3ICError):
        channel_modes.decode_channel(code, symbols.size, PRIOR)


def test_varint_roundtrip():
    for n in (0, 1, 127, 128, 300, 2**20, 2**32 - 1):
        assert entropy.read_varint(entropy.write_varint(n), 0) == (n, len(entropy.write_varint(n)))
