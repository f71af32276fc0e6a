"""The context model of format version 4's context mode (``l3ic.context_model``)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l3ic import context_model as cm
from l3ic import entropy
from l3ic.errors import L3ICError


def _by_definition(symbols: np.ndarray) -> np.ndarray:
    """The contexts, one symbol at a time, as the module docstring defines them."""
    h, w = symbols.shape
    q = symbols.astype(int) - 15

    def at(i, j):
        return int(q[i, j]) if 0 <= i < h and 0 <= j < w else 0

    out = np.empty((h, w), dtype=int)
    for i in range(h):
        for j in range(w):
            left, top = at(i, j - 1), at(i - 1, j)
            size = abs(at(i - 1, j - 1)) + abs(at(i - 1, j + 1)) + abs(at(i, j - 2))
            bucket = 0 if size == 0 else 1 if size <= 2 else 2 if size <= 5 else 3
            out[i, j] = 20 * (np.clip(left, -2, 2) + 2) + 4 * (np.clip(top, -2, 2) + 2) + bucket
    return out


def _symbols(rng: np.random.Generator, h: int, w: int, spread: float) -> np.ndarray:
    """(h, w) uint8 symbols around 15, as latents are, with an occasional extreme."""
    q = np.clip(np.round(rng.laplace(0, spread, (h, w))), -15, 16)
    q.flat[rng.integers(0, h * w)] = rng.choice([-15, 16])
    return (q + 15).astype(np.uint8)


def _tables(rng: np.random.Generator) -> np.ndarray:
    """(CONTEXTS, 32) random tables summing to 4096, every symbol possible."""
    return np.stack([entropy.quantize_counts(rng.random(32) + 0.01) for _ in range(cm.CONTEXTS)])


def test_contexts_follow_their_definition():
    rng = np.random.default_rng(0)
    for h, w, spread in [(1, 1, 1), (1, 7, 2), (6, 1, 2), (9, 11, 1.5), (5, 5, 20)]:
        s = _symbols(rng, h, w, spread)
        np.testing.assert_array_equal(cm.contexts(s), _by_definition(s))
    assert cm.contexts(np.full((3, 3), 15, np.uint8)).max() < cm.CONTEXTS


def test_each_wavefront_reads_only_earlier_ones():
    for h, w in [(1, 1), (1, 6), (5, 1), (4, 7), (7, 4)]:
        rows, cols, starts = cm.wavefronts(h, w)
        assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [
            (i, j) for i in range(h) for j in range(w)
        ]
        front = np.empty((h, w), dtype=int)
        for t, (a, b) in enumerate(zip(starts[:-1], starts[1:], strict=True)):
            front[rows[a:b], cols[a:b]] = t
        for i in range(h):
            for j in range(w):
                for di, dj in [(0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2)]:
                    if 0 <= i + di < h and 0 <= j + dj < w:
                        assert front[i + di, j + dj] < front[i, j]


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    spread=st.sampled_from([0.3, 1.0, 4.0]),
    seed=st.integers(0, 2**31),
)
def test_channels_round_trip(h, w, spread, seed):
    rng = np.random.default_rng(seed)
    tables = np.stack([_tables(rng) for _ in range(3)])
    channels = [_symbols(rng, h, w, spread) for _ in range(3)]
    streams = [cm.encode(s, t) for s, t in zip(channels, tables, strict=True)]
    np.testing.assert_array_equal(cm.decode_many(streams, h, w, tables), np.stack(channels))
    np.testing.assert_array_equal(cm.decode(streams[1], h, w, tables[1]), channels[1])


def test_the_stream_costs_what_the_model_says():
    rng = np.random.default_rng(1)
    tables = _tables(rng)
    s = _symbols(rng, 40, 60, 1.0)
    bits = cm.ideal_bits(s, tables)
    assert bits / 8 <= len(cm.encode(s, tables)) <= bits / 8 + 12  # the seal and a last word


def test_a_damaged_stream_is_refused():
    rng = np.random.default_rng(2)
    tables = _tables(rng)
    s = _symbols(rng, 8, 8, 2.0)
    stream = cm.encode(s, tables)
    for bad in (stream[:-4], stream + stream[-4:], stream[4:], b"\0" * 4):
        with pytest.raises(L3ICError, match="corrupt channel stream"):
            cm.decode(bad, 8, 8, tables)
    with pytest.raises(L3ICError):  # more symbols than were coded
        cm.decode(stream, 8, 9, tables)


def test_learned_tables_sum_to_4096_and_fall_back_to_the_prior():
    rng = np.random.default_rng(3)
    latents = [(_symbols(rng, 6, 7, 0.5).astype(np.int16) - 15)[..., None] for _ in range(4)]
    latents = [np.concatenate([q, np.zeros_like(q)], axis=2).astype(np.int8) for q in latents]
    priors = entropy.default_prior(2)
    tables = cm.learn_tables(latents, priors)
    assert tables.shape == (2, cm.CONTEXTS, 32) and (tables.sum(axis=2) == 4096).all()
    # Channel 1 is all zeros: only its zero-neighbour context was seen; the others are the prior.
    seen = cm.contexts(np.full((2, 2), 15, np.uint8))[0, 0]
    assert tables[1, seen].argmax() == 15 and tables[1, seen].min() >= 1
    others = [c for c in range(cm.CONTEXTS) if c != seen]
    np.testing.assert_array_equal(
        tables[1, others], np.broadcast_to(priors[1], (cm.CONTEXTS - 1, 32))
    )


def test_grouping_merges_alike_contexts_first():
    # Contexts 0-2 draw from one distribution, 3-5 from another, 6 from a third: three groups
    # keep them apart, two put context 6 with the nearer pair; unseen contexts get -1.
    a, b, c = np.zeros((3, 32), np.int64)
    a[[14, 15, 16]], b[[10, 11, 12]], c[[14, 15, 17]] = [10, 80, 10], [30, 40, 30], [10, 70, 20]
    hist = np.zeros((cm.CONTEXTS, 32), np.int64)
    hist[[0, 1, 2]], hist[[3, 4, 5]], hist[6] = a * 5, b * 7, c * 3
    three = cm.group_contexts(hist, 3)
    assert len(set(three[:3])) == len(set(three[3:6])) == 1
    assert len({three[0], three[3], three[6]}) == 3
    assert (three[7:] == -1).all()
    two = cm.group_contexts(hist, 2)
    assert two[6] == two[0] != two[3]


def test_learned_tables_are_at_most_the_groups_and_the_prior():
    rng = np.random.default_rng(5)
    latents = [(_symbols(rng, 24, 24, 1.5).astype(np.int16) - 15)[..., None] for _ in range(6)]
    latents = [q.astype(np.int8) for q in latents]
    priors = entropy.default_prior(1)
    for groups in (1, 4, cm.TABLE_GROUPS):
        tables = cm.learn_tables(latents, priors, groups)
        distinct = {tuple(t) for t in tables[0]} - {tuple(priors[0])}
        assert 1 <= len(distinct) <= groups
    ungrouped = cm.learn_tables(latents, priors, cm.CONTEXTS)
    assert len({tuple(t) for t in ungrouped[0]}) > cm.TABLE_GROUPS


# ----- the context mode in version 4 files (LatentCoder, container) ------------------------


def _coder(tables: bool = True):
    """A 3-channel LatentCoder with generic priors and tables learned from smooth latents."""
    from l3ic.latent_coder import LatentCoder

    rng = np.random.default_rng(5)
    latents = [_latent(rng, 32, 32) for _ in range(40)]
    priors = entropy.default_prior(3)
    learned = cm.learn_tables(latents, priors) if tables else None
    return LatentCoder("3c", b"\1" * 8, priors, [2, 0, 1], context_tables=learned), rng


def _latent(rng: np.random.Generator, h: int = 12, w: int = 17) -> np.ndarray:
    """(h, w, 3) int8: neighbours alike (what contexts exploit), one channel constant."""
    q = np.cumsum(rng.laplace(0, 0.6, (h, w, 3)), axis=1)
    q = np.clip(np.round(q - q.mean(axis=(0, 1))), -15, 16)
    q[..., 1] = 2
    return q.astype(np.int8)


def test_version_4_files_read_back_and_are_smaller():
    from l3ic import channel_modes, container

    coder, rng = _coder()
    q = _latent(rng)
    v3 = coder.writing(3).pack(q, (96, 136))
    v4 = coder.pack(q, (96, 136))  # version 4, the default
    c = container.parse(v4, coder.channel_order)
    assert c.version == 4 and c.tables_id == coder.tables_id
    assert channel_modes.CONTEXT in {code.mode for code in c.codes}
    assert len(v4) < len(v3)
    for data in (v3, v4):
        np.testing.assert_array_equal(coder.read(data)[0], q)
        np.testing.assert_array_equal(coder.read(data, [2, 0])[0], q[..., [2, 0]])
        partial = coder.read_partial(data, [0])[0]
        np.testing.assert_array_equal(partial[..., 0], q[..., 0])


def test_a_version_4_file_needs_its_context_tables():
    from l3ic.latent_coder import LatentCoder

    coder, rng = _coder()
    data = coder.pack(_latent(rng), (96, 136))  # version 4, the default
    other, _ = _coder(tables=False)
    with pytest.raises(L3ICError, match="context tables"):
        other.read(data)
    tables = coder.context_tables.astype(np.int64)
    tables[0, 0, [0, int(tables[0, 0].argmax())]] += [1, -1]  # still summing to 4096
    changed = LatentCoder("3c", b"\1" * 8, coder.priors, coder.channel_order, None, tables)
    with pytest.raises(L3ICError, match="context tables"):
        changed.read(data)


def test_the_context_mode_is_refused_in_earlier_versions():
    import zlib

    from l3ic import container

    coder, rng = _coder()
    data = bytearray(coder.pack(_latent(rng), (96, 136)))  # version 4, the default
    c = container.parse(bytes(data), coder.channel_order)
    # The same header as version 3: drop the tables id, mend both checksums.
    at = 7 + data[6] + 8  # where the tables id starts: after the preset name and fingerprint
    head = data[:4] + b"\3" + data[5:at] + data[at + 4 : c.header_bytes - 4]
    head += zlib.crc32(head).to_bytes(4, "little")
    body = head + data[c.header_bytes : -4]
    body += zlib.crc32(body).to_bytes(4, "little")
    with pytest.raises(L3ICError, match="channel mode 3"):
        container.parse(bytes(body))
    with pytest.raises(L3ICError, match="needs version 4"):
        c.version = 3
        container.pack(c)
