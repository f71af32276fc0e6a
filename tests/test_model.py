"""The network: layer counts from docs/architecture.md, serialisation, quantiser gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from l3ic.layers import (
    FILM_WEIGHT_SUFFIX,
    ClipToUnit,
    DepthToSpace,
    LatentScale,
    ResidualBlock,
    ScaleFiLM,
)
from l3ic.model import L3ICModel
from l3ic.quantizer import Quantizer, channel_entropy, pooled_entropy, soft_assignment

# Parameter counts derived from the layer list of docs/architecture.md, "Network" (encoder,
# decoder).
COUNTS = {16: (1_146_513, 1_261_836), 32: (1_197_729, 1_335_564), 64: (1_300_161, 1_483_020)}


@pytest.mark.parametrize("channels", [16, 32, 64])
def test_parameter_counts(channels):
    m = L3ICModel(channels)
    assert (m.encoder.count_params(), m.decoder.count_params()) == COUNTS[channels]


def test_shapes():
    m = L3ICModel(16)
    out = m(np.zeros((2, 24, 40, 3), np.float32))
    assert tuple(out["z"].shape) == (2, 3, 5, 16) and tuple(out["y"].shape) == (2, 24, 40, 3)


def test_depth_to_space_matches_tensorflow():
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 12)).astype(np.float32)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(DepthToSpace(2)(x)), tf.nn.depth_to_space(x, 2).numpy()
    )


@pytest.mark.parametrize(
    "layer",
    [
        ResidualBlock(32, pre_activation=True),
        ResidualBlock(32, film=True),
        ScaleFiLM(),
        DepthToSpace(2),
        LatentScale(),
        ClipToUnit(),
        Quantizer("noise", seed=3),
    ],
)
def test_layer_config_roundtrip(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_model_config_roundtrip():
    m = L3ICModel(16, backward="soft-t", rate="pooled", lmbda=1e-3)
    clone = L3ICModel.from_config(m.get_config())
    assert (clone.num_channels, clone.backward, clone.rate, clone.lmbda) == (
        16,
        "soft-t",
        "pooled",
        1e-3,
    )


def _grad(backward, z):
    q = Quantizer(backward, seed=0)
    z = tf.Variable(z)
    with tf.GradientTape() as tape:
        out = q(z, training=True)
    return out.numpy(), tape.gradient(out, z).numpy()


def test_quantizer_forward_hard_backward_soft():
    z = np.array([-20.0, -0.3, 0.49, 2.51, 40.0], np.float32)
    hard = np.array([-15, 0, 0, 3, 16], np.float32)
    for backward in ("ste", "soft-t"):
        out, grad = _grad(backward, z)
        np.testing.assert_array_equal(out, hard)
    assert _grad("ste", z)[1][1:4].tolist() == [1.0, 1.0, 1.0]
    soft_grad = _grad("soft-t", np.array([0.5, 0.0], np.float32))[1]
    assert soft_grad[0] > 1 and abs(soft_grad[1]) < 1e-3  # peaked at bin midpoints
    noisy, _ = _grad("noise", np.zeros(1000, np.float32))
    assert 0 < np.abs(noisy).max() <= 0.5
    np.testing.assert_array_equal(Quantizer("noise")(z), hard)  # inference is hard


def test_rate_estimates():
    w = ops.convert_to_numpy(soft_assignment(np.array([0.0, 3.0, 100.0], np.float32)))
    np.testing.assert_allclose(w.sum(-1), 1, atol=1e-6)
    assert w[0].argmax() == 15 and w[1].argmax() == 18 and w[2].argmax() == 31
    rng = np.random.default_rng(0)
    z = np.zeros((2, 4, 4, 2), np.float32)
    z[..., 1] = rng.integers(-15, 17, (2, 4, 4))
    per_channel = float(channel_entropy(z))
    pooled = float(pooled_entropy(z))
    assert per_channel < pooled  # a constant channel costs nothing to a per-channel coder


def test_training_step_reduces_loss():
    keras.utils.set_random_seed(0)
    m = L3ICModel(16, lmbda=1e-3)
    m.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32) * 0.5 + 0.25
    first = m.train_on_batch(x, return_dict=True)["loss"]
    for _ in range(15):
        last = m.train_on_batch(x, return_dict=True)
    assert last["loss"] < first and {"mse", "bpp_est"} <= set(last)


def test_mean_ssim_is_scikit_image_default_ssim():
    """The training SSIM term is the metric of the targets (7x7 uniform window, per channel)."""
    from skimage.metrics import structural_similarity

    from l3ic.model import mean_ssim

    rng = np.random.default_rng(0)
    x = rng.random((2, 40, 48, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    expected = np.mean(
        [
            structural_similarity(a, b, channel_axis=-1, data_range=1.0)
            for a, b in zip(x, y, strict=True)
        ]
    )
    assert float(mean_ssim(x, y)) == pytest.approx(expected, abs=1e-5)


def test_ssim_weight_adds_the_ssim_term_to_the_loss():
    from l3ic.model import mean_ssim

    rng = np.random.default_rng(1)
    x = rng.random((1, 32, 32, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    plain, with_ssim = L3ICModel(8), L3ICModel(8, ssim_weight=0.5)
    d0, mse0 = (float(v) for v in plain.distortion(x, y))
    d1, mse1 = (float(v) for v in with_ssim.distortion(x, y))
    assert d0 == mse0 == pytest.approx(mse1)
    assert d1 == pytest.approx(mse1 + 0.5 * (1 - float(mean_ssim(x, y))), rel=1e-5)


def _noisy_pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random images x and a noisy copy y: (B, H, W, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    b, h, w, c = shape
    coarse = rng.random((b, h // 16, w // 16, c))
    x = np.kron(coarse, np.ones((1, 16, 16, 1))) * 0.6 + 0.2 + rng.normal(0, 0.03, shape)
    y = x + rng.normal(0, 0.06, shape)
    return np.clip(x, 0, 1).astype(np.float32), np.clip(y, 0, 1).astype(np.float32)


def test_mean_ms_ssim_is_the_metric_on_five_scales():
    """At 176 px and more, the training MS-SSIM is ``metrics.ms_ssim`` (tf.image's MS-SSIM)."""
    from l3ic import metrics
    from l3ic.model import mean_ms_ssim, ms_ssim_scales

    x, y = _noisy_pair(2, (2, 192, 176, 3))
    xq, yq = (np.round(a * 255).astype(np.uint8) for a in (x, y))
    expected = np.mean([metrics.ms_ssim(a, b) for a, b in zip(xq, yq, strict=True)])
    got = float(mean_ms_ssim(xq.astype(np.float32) / 255, yq.astype(np.float32) / 255))
    assert ms_ssim_scales(176) == 5 and 0.3 < expected < 0.99
    assert got == pytest.approx(expected, abs=1e-4)


def test_mean_ms_ssim_uses_the_scales_a_patch_holds():
    """A 128 px patch holds four scales (the fifth would be 8 px, under the 11 px window)."""
    from l3ic.model import mean_ms_ssim, ms_ssim_scales

    assert [ms_ssim_scales(s) for s in (16, 32, 64, 128, 175, 176)] == [1, 2, 3, 4, 4, 5]
    x, y = _noisy_pair(3, (1, 128, 128, 3))
    value = float(mean_ms_ssim(x, y))
    assert 0.0 < value < 1.0 and float(mean_ms_ssim(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_ssim_kind_ms_ssim_puts_ms_ssim_in_the_loss():
    from l3ic.model import mean_ms_ssim

    x, y = _noisy_pair(4, (1, 64, 64, 3))
    net = L3ICModel(8, ssim_weight=0.2, ssim_kind="ms-ssim")
    d, mse = (float(v) for v in net.distortion(x, y))
    assert d == pytest.approx(mse + 0.2 * (1 - float(mean_ms_ssim(x, y))), rel=1e-5)
    assert L3ICModel.from_config(net.get_config()).ssim_kind == "ms-ssim"
    with pytest.raises(ValueError, match="ssim_kind"):
        L3ICModel(8, ssim_kind="psnr")


def test_weights_with_a_scaled_latent_code_at_1_what_the_weights_code_at_that_scale():
    """``scale_latent`` (export --fit-rate): the encoder's latent is s z and the decoder reads q
    as the original reads q / s, so files at scale 1 are the original's files at scale s."""
    from l3ic.codebook import dequantize
    from l3ic.model import load_model, scale_latent
    from l3ic.presets import model_arrays

    rng = np.random.default_rng(1)
    net = load_model(8, patch=32, seed=0)
    x = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    z = np.asarray(net.encoder(x))
    for s in (0.7, 1.6):
        scaled = load_model(8, scale_latent(model_arrays(net), s), patch=32)
        np.testing.assert_allclose(np.asarray(scaled.encoder(x)), s * z, rtol=1e-5, atol=1e-6)
        q = rng.integers(-6, 7, (2, 4, 4, 8)).astype(np.int8)
        np.testing.assert_allclose(
            np.asarray(scaled.decode(q.astype(np.float32))),
            np.asarray(net.decode(dequantize(q, s))),
            atol=1e-5,
        )


def test_a_decoder_told_the_scale_is_plain_at_1_and_folds_into_plain_weights_at_any_scale():
    """--told-scale: FiLMs start at the identity (a plain weights file loads, and decodes as the
    plain decoder); trained ones change the image at s != 1 only, and ``fold_scale`` turns them
    into plain weights that decode exactly as the told decoder at that scale."""
    from l3ic.model import fold_scale, load_model
    from l3ic.presets import model_arrays

    rng = np.random.default_rng(0)
    plain = load_model(8, patch=32, seed=0)
    told = load_model(8, model_arrays(plain), patch=32, told_scale=True)
    films = [v for v in told.decoder.weights if v.path.endswith(FILM_WEIGHT_SUFFIX)]
    assert len(films) == 9 and all(not np.any(v.numpy()) for v in films)
    q = rng.integers(-4, 5, (2, 3, 4, 8)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(told.decode(q / 2, 2.0)), np.asarray(plain.decode(q / 2, 2.0))
    )
    for v in films:
        v.assign(rng.normal(0, 0.01, v.shape))
    np.testing.assert_allclose(np.asarray(told.decode(q, 1.0)), np.asarray(plain.decode(q)))
    for scale in (0.4, 2.5):
        y = np.asarray(told.decode(q / scale, scale))
        assert np.abs(y - np.asarray(plain.decode(q / scale))).max() > 0.01
        folded = load_model(8, fold_scale(model_arrays(told), scale), patch=32)
        np.testing.assert_allclose(np.asarray(folded.decode(q / scale)), y, atol=1e-4)
