"""The bitstream, pinned: a fixed latent with fixed priors packs to bytes of a known SHA-256.

The network's outputs vary with Keras versions and CPU kernels; the coding of a given latent must
not. Any change to the format, the entropy coder's use, the table quantisation or the choice of
modes changes these bytes, and then this test fails: update the pinned hash only with a new
container version (docs/format.md).
"""

import hashlib

import numpy as np

from l3ic import channel_modes, container, context_model
from l3ic.latent_coder import LatentCoder

# A (6, 5, 4) int8 latent, row-major bytes: channel 0 constant (3), channel 1 near zero (coded
# with the prior), channel 2 mostly 9 (its own table), channel 3 spread over -15..16.
LATENT_HEX = (
    "030209f20301f40803010900030209f30300f4f8030109020302090803ff090103fe090403ff090c03ff0906"
    "030209fc0302f40503fe0904030009f4030209f203fe0906030109fd03fe0904030009fb030209f803ff09f5"
    "03ff09fd03fff40b030109fd03ff09fd0302f403030009100300f4fd03000903"
)
# One prior table (p(q) ~ 2**-|q|, summing to 4096), for all four channels.
PRIOR = [1, 1, 1, 1, 1, 1, 2, 5, 10, 21, 42, 85, 170, 341, 683, 1366]
PRIOR += [682, 341, 170, 85, 42, 21, 10, 5, 2, 1, 1, 1, 1, 1, 1, 1]
SHAPE = (41, 37)  # (H, W) of the image: a 6 x 5 latent
PINNED_SHA256 = "42060b170799cc3b30cb11e3ff93387066dbab6e638f229e2e0fa6a80dee229d"  # version 3
# The same latent as l3ic 0.5 wrote it, in format version 2 (streams in channel order): still read.
VERSION_2_HEX = (
    "4c334943020106676f6c64656e676f6c64656e21212529060504001201100208c3160c0000000000000000000000"
    "0000000000000000000124fd7fe79ab84c18620da345e42830e275cfd40b00b4fa3e0034483300508312d4d244"
    "00ff68500bba023bfae4bcbdff41fa8a00024566ffb7031300a1020000000fc34b9f"
)


def golden_coder() -> LatentCoder:
    """A coder of the golden priors writing version 3 (no context tables)."""
    return LatentCoder("golden", b"golden!!", [PRIOR] * 4, [2, 0, 3, 1]).writing(3)


def golden_latent() -> np.ndarray:
    return np.frombuffer(bytes.fromhex(LATENT_HEX), dtype=np.int8).reshape(6, 5, 4)


def test_fixed_latent_packs_to_pinned_bytes():
    data = golden_coder().pack(golden_latent(), SHAPE, grayscale=True)
    assert len(data) == 125
    assert hashlib.sha256(data).hexdigest() == PINNED_SHA256


def test_pinned_bytes_use_every_mode_and_unpack_to_the_latent():
    coder, q = golden_coder(), golden_latent()
    data = coder.pack(q, SHAPE, grayscale=True)
    c = container.parse(data)
    assert [code.mode for code in c.codes] == [
        channel_modes.CONSTANT,
        channel_modes.PRIOR,
        channel_modes.TABLE,
        channel_modes.PRIOR,
    ]
    assert (c.height, c.width, c.grayscale, c.latent_shape) == (41, 37, True, (6, 5, 4))
    latent, meta = coder.read(data)
    np.testing.assert_array_equal(latent, q)
    assert meta["preset"] == "golden" and meta["fingerprint"] == b"golden!!".hex()
    np.testing.assert_array_equal(coder.read(data, [3, 1])[0], q[..., [3, 1]])
    partial, _ = coder.read_partial(data, [2])
    np.testing.assert_array_equal(partial[..., [0, 2]], q[..., [0, 2]])
    assert (partial[..., [1, 3]] == 0).all()  # the prior's likeliest value, q = 0


def test_streams_are_stored_in_the_stream_order_and_version_2_still_reads():
    coder, q = golden_coder(), golden_latent()
    data = coder.pack(q, SHAPE, grayscale=True)
    assert data[4] == 3
    c = container.parse(data, coder.channel_order)
    # channel order [2, 0, 3, 1]; channel 0 is constant (no stream): 2, 3, 1 follow the header
    assert c.offsets[2] == c.header_bytes
    assert c.offsets[3] == c.offsets[2] + c.stream_lengths[2]
    assert c.offsets[1] == c.offsets[3] + c.stream_lengths[3]
    unordered = container.parse(data)  # checked whole, streams not attached
    assert unordered.offsets == [] and unordered.file_bytes == len(data)
    old = bytes.fromhex(VERSION_2_HEX)
    assert container.parse(old).version == 2
    latent, meta = coder.read(old)
    np.testing.assert_array_equal(latent, q)
    np.testing.assert_array_equal(coder.read(old, [3, 1])[0], q[..., [3, 1]])


# ----- version 4: the context mode ---------------------------------------------------------

# A (7, 9, 4) latent made by formula: channel 0 constant (3), channel 1 a smooth ramp in -2..2
# (context-coded), channel 2 mostly 9 (its own table), channel 3 spread (the prior).
V4_SHAPE = (53, 67)  # (H, W): a 7 x 9 latent
# Context tables: every context's table peaks at clip(L, -2, 2), L being the left neighbour.
V4_PEAK = [2] * 14 + [300, 3438, 300] + [2] * 15
V4_PINNED_SHA256 = "df38c18efee36f063a3e54ba8298022566cff95010f7376a1caa907ab6aeab5e"
V4_TABLES_ID = "6e523865"


def v4_latent() -> np.ndarray:
    i, j = np.mgrid[0:7, 0:9]
    q = np.zeros((7, 9, 4), dtype=np.int8)
    q[..., 0] = 3
    q[..., 1] = np.clip(np.round(2.4 * np.sin((i + j) / 3.0)), -2, 2)
    q[..., 2] = np.where((i * 5 + j) % 11 == 0, -3, 9)
    q[..., 3] = (i * 7 + j * 13) % 32 - 15
    return q


def v4_coder() -> LatentCoder:
    tables = [[np.roll(V4_PEAK, c // 20 - 2) for c in range(context_model.CONTEXTS)]] * 4
    return LatentCoder("golden", b"golden!!", [PRIOR] * 4, [2, 0, 3, 1], None, tables)


def test_version_4_packs_to_pinned_bytes_with_every_mode():
    coder, q = v4_coder(), v4_latent()
    assert coder.write_version == container.VERSION == 4  # the default
    data = coder.pack(q, V4_SHAPE)
    assert hashlib.sha256(data).hexdigest() == V4_PINNED_SHA256
    assert coder.tables_id.hex() == V4_TABLES_ID
    c = container.parse(data, coder.channel_order)
    assert (c.version, c.tables_id.hex()) == (4, V4_TABLES_ID)
    assert [code.mode for code in c.codes] == [
        channel_modes.CONSTANT,
        channel_modes.CONTEXT,
        channel_modes.TABLE,
        channel_modes.PRIOR,
    ]
    np.testing.assert_array_equal(coder.read(data)[0], q)
    np.testing.assert_array_equal(coder.read(data, [1, 3])[0], q[..., [1, 3]])
    compiled, coder.compiled = coder.compiled, None  # the Python reader too
    np.testing.assert_array_equal(coder.read(data)[0], q)
    coder.compiled = compiled
