"""The l3ic autoencoder: encoder, quantiser, decoder and the rate-distortion loss.

Data flow (docs/architecture.md, "Network")::

    x (B, H, W, 3) in [0, 1]
      -> encoder -> z (B, H/8, W/8, C) float
      -> quantiser -> q (B, H/8, W/8, C), integers -15..16
      -> decoder -> y (B, H, W, 3) in [0, 1]

H and W must be multiples of 8 here; ``l3ic.codec`` pads any image to that.
"""

from pathlib import Path

import keras
import numpy as np
from keras import ops

from .layers import (
    FILM_WEIGHT_SUFFIX,
    LEAKY_SLOPE,
    ClipToUnit,
    DepthToSpace,
    LatentScale,
    ResidualBlock,
    ScaleFiLM,
    film_name,
    film_terms,
)
from .metrics import MS_SSIM_WEIGHTS, gaussian_taps
from .presets import assign_arrays, load_matching, read_arrays
from .quantizer import GAMMA, Quantizer, channel_entropy, pooled_entropy

__all__ = [
    "build_encoder",
    "build_decoder",
    "fold_scale",
    "scale_latent",
    "L3ICModel",
    "load_model",
    "RATES",
    "default_lmbda",
    "mean_ssim",
    "mean_ms_ssim",
    "SSIM_KINDS",
]

RATES = {"channel": channel_entropy, "pooled": pooled_entropy}


def default_lmbda(num_channels: int) -> float:
    """The published rate weight carried over to bits per pixel: 2.03e-4 * 64 / C.

    (docs/architecture.md, "Rate term and loss": 250 on a summed L2 loss over 50 x 128 x 128 x 3
    values and bits per latent value, restated for mean MSE and bits per pixel.)
    """
    return 2.03e-4 * 64 / num_channels


def mean_ssim(x, y, window: int = 7):
    """Differentiable mean SSIM of two image batches, as scikit-image's default computes it.

    A ``window`` x ``window`` uniform window, sample covariances, K1 = 0.01, K2 = 0.03, data
    range 1, each colour channel on its own, averaged over the valid windows and the channels.

    Args:
        x, y: (B, H, W, 3) float32 images in [0, 1], H and W at least ``window``.

    Returns:
        scalar float32.
    """
    c1, c2 = 0.01**2, 0.03**2
    cov = window * window / (window * window - 1.0)

    def pool(t):
        return ops.average_pool(t, window, strides=1, padding="valid")

    mx, my = pool(x), pool(y)
    vx = cov * (pool(x * x) - mx * mx)
    vy = cov * (pool(y * y) - my * my)
    vxy = cov * (pool(x * y) - mx * my)
    s = (2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ops.mean(s)


def ms_ssim_scales(side: int) -> int:
    """How many of MS-SSIM's five scales fit an image whose shorter side is ``side`` pixels:
    the coarsest scale (side / 2^(scales-1)) must still hold the 11-pixel window."""
    scales, window = 1, len(gaussian_taps())
    while scales < len(MS_SSIM_WEIGHTS) and side // 2**scales >= window:
        scales += 1
    return scales


def mean_ms_ssim(x, y):
    """Differentiable mean MS-SSIM of two image batches, as ``l3ic.metrics.ms_ssim`` computes it.

    An 11x11 Gaussian window (sigma 1.5, 'valid'), population covariances, K1 = 0.01,
    K2 = 0.03, data range 1, 2x2 average pooling between scales, each colour channel on its own.
    Images with sides of at least 176 pixels get all five scales (and equal ``metrics.ms_ssim``);
    smaller ones, such as 128-pixel training patches (four scales), get the scales that fit
    (``ms_ssim_scales``), with the first weights scaled to sum to 1. Each factor is floored
    at 1e-6 (``metrics.ms_ssim`` at 0) so that its power keeps a finite gradient.

    Args:
        x, y: (B, H, W, 3) float32 images in [0, 1]; H and W at least 11 and multiples of
            2^(scales - 1).

    Returns:
        scalar float32: the mean over images and colour channels.
    """
    c1, c2 = 0.01**2, 0.03**2
    taps = gaussian_taps().astype("float32")
    channels = 3
    rows = ops.convert_to_tensor(np.tile(taps.reshape(-1, 1, 1, 1), (1, 1, channels, 1)))
    cols = ops.convert_to_tensor(np.tile(taps.reshape(1, -1, 1, 1), (1, 1, channels, 1)))

    def blur(t):
        t = ops.depthwise_conv(t, rows, strides=1, padding="valid")
        return ops.depthwise_conv(t, cols, strides=1, padding="valid")

    scales = ms_ssim_scales(min(x.shape[1], x.shape[2]))
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    value = 1.0
    for k in range(scales):
        if k:
            x = ops.average_pool(x, 2, strides=2, padding="valid")
            y = ops.average_pool(y, 2, strides=2, padding="valid")
        mx, my = blur(x), blur(y)
        num0, den0 = 2 * mx * my, mx * mx + my * my
        cs = (2 * blur(x * y) - num0 + c2) / (blur(x * x + y * y) - den0 + c2)
        if k == scales - 1:
            cs = cs * (num0 + c1) / (den0 + c1)  # the coarsest scale takes the whole SSIM
        factor = ops.maximum(ops.mean(cs, axis=(1, 2)), 1e-6)  # (B, 3)
        value = value * factor ** float(weights[k])
    return ops.mean(value)


SSIM_KINDS = {"ssim": mean_ssim, "ms-ssim": mean_ms_ssim}


def _conv(filters: int, size: int, name: str, stride: int = 1, activation=None, dtype=None):
    return keras.layers.Conv2D(
        filters, size, strides=stride, padding="same", activation=activation, name=name, dtype=dtype
    )


def _lrelu(x):
    return ops.leaky_relu(x, LEAKY_SLOPE)


def build_encoder(num_channels: int) -> keras.Model:
    """Encoder: (B, H, W, 3) float in [0, 1] -> z (B, H/8, W/8, C) float."""
    x = keras.Input((None, None, 3), name="x")
    a = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(x)
    a = _conv(64, 5, "e1", stride=2, activation=_lrelu)(a)
    a = _conv(128, 5, "e2", stride=2)(a)
    a = ResidualBlock(128, pre_activation=True, name="r1")(a)
    a = ResidualBlock(128, name="r2")(a)
    a = ResidualBlock(128, name="r3")(a)
    # The latent is computed in float32 even under bf16 mixed precision: bf16 would put steps of
    # up to 0.125 into values that the quantiser rounds and the rate kernel (width 1/25) reads.
    a = _conv(num_channels, 5, "e3", stride=2, dtype="float32")(a)
    z = LatentScale(name="scale", dtype="float32")(a)
    return keras.Model(x, z, name="encoder")


def build_decoder(num_channels: int, told_scale: bool = False) -> keras.Model:
    """Decoder: q (B, h, w, C) float -> y (B, 8h, 8w, 3) float in [0, 1].

    With ``told_scale`` the decoder also takes t = log2 s (B, 1) float32, the quantisation
    scale its input q / s was coded at, and every convolution is followed by a ``ScaleFiLM``
    (named after it: ``d1_film``, ``r4/conv1_film``, ...), the identity at s = 1; inputs
    ``[q, t]``.
    """
    q = keras.Input((None, None, num_channels), name="q")
    t = keras.Input((1,), name="log_scale", dtype="float32") if told_scale else None

    def told(a, name):
        return ScaleFiLM(name=film_name(name))([a, t]) if told_scale else a

    def residual(a, name):
        block = ResidualBlock(128, film=told_scale, name=name)
        return block([a, t]) if told_scale else block(a)

    a = told(_conv(512, 3, "d1")(q), "d1")
    a = DepthToSpace(2, name="p1")(a)
    a = residual(a, "r4")
    a = residual(a, "r5")
    a = residual(a, "r6")
    a = _lrelu(told(_conv(256, 3, "d2")(a), "d2"))
    a = DepthToSpace(2, name="p2")(a)
    a = told(_conv(12, 3, "d3")(a), "d3")
    a = DepthToSpace(2, name="p3")(a)
    y = ClipToUnit(name="y")(a)
    return keras.Model([q, t] if told_scale else q, y, name="decoder")


def fold_scale(arrays: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """The weights of a decoder told the scale (``build_decoder(told_scale=True)``) as plain
    weights for files at one ``scale``: each ``ScaleFiLM`` folded into the convolution before it
    (kernel and bias times m, plus b), its own weights dropped.

    Args:
        arrays: {"decoder/d1/kernel": array, "decoder/d1_film/film": (4, C), ...} float.
        scale: the quantisation scale s.

    Returns:
        The same names without the ``*_film/film`` ones, float32; arrays without FiLM weights
        come back unchanged.
    """
    suffix = FILM_WEIGHT_SUFFIX
    out = {k: np.asarray(v, np.float32) for k, v in arrays.items() if not k.endswith(suffix)}
    t = np.float32(np.log2(scale))
    for key, film in arrays.items():
        if key.endswith(suffix):
            conv = key[: -len(suffix)]
            m, b = film_terms(np.asarray(film, np.float32), t)
            out[f"{conv}/kernel"] = out[f"{conv}/kernel"] * m
            out[f"{conv}/bias"] = out[f"{conv}/bias"] * m + b
    return out


def scale_latent(arrays: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """Weights whose latent is ``scale`` times that of ``arrays``: what they code at scale 1 is
    what ``arrays`` code at quantisation scale s (``codebook.quantize``/``dequantize``).

    The encoder's ``LatentScale`` is multiplied by s and the decoder's first convolution ``d1``
    (which reads q / s, linearly, with zero padding) has its kernel divided by s; everything else
    is unchanged. Export uses it to put a preset at its rate target (``export_run``'s
    ``fit_rate``).

    Args:
        arrays: plain weights, {"encoder/scale/scale": (), "decoder/d1/kernel": (3, 3, C, 512),
            ...} float.
        scale: s > 0.

    Returns:
        The same names, float32.
    """
    s = np.float32(scale)
    out = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    out["encoder/scale/scale"] = out["encoder/scale/scale"] * s
    out["decoder/d1/kernel"] = out["decoder/d1/kernel"] / s
    return out


@keras.saving.register_keras_serializable(package="l3ic")
class L3ICModel(keras.Model):
    """Encoder + quantiser + decoder, trained with ``loss = MSE + lmbda * estimated bpp``.

    Args:
        num_channels: latent channels C (16, 32 or 64 for the presets).
        backward: the quantiser's gradient, ``"soft-t"`` (published), ``"ste"`` or ``"noise"``.
        rate: ``"channel"`` (mean of per-channel soft entropies, what the coder pays) or
            ``"pooled"`` (one histogram over all channels, the published estimate).
        rate_gamma: width of the soft histogram's Student-t kernel (25 as published).
        ssim_weight: weight w of an SSIM term in the distortion, ``MSE + w * (1 - SSIM)``
            (0 = plain MSE, the default).
        ssim_kind: that term's SSIM, ``"ssim"`` (``mean_ssim``, the targets' 7x7 window) or
            ``"ms-ssim"`` (``mean_ms_ssim``).
        lmbda: initial weight of the estimated bits per pixel against the MSE of images in
            [0, 1]. It lives in the non-trainable float32 variable ``rate_weight``, so training
            can steer it toward a target rate (``l3ic train --target-bpp``) without retracing.
        seed: seed of the quantiser's noise (``backward="noise"``).
        told_scale: the decoder is also told log2 of ``train_scale`` (``build_decoder``); an
            experiment (docs/quality.md): no runtime decodes with it yet.

    ``call(x)`` takes x (B, H, W, 3) float in [0, 1] and returns ``{"y": (B, H, W, 3),
    "z": (B, H/8, W/8, C)}``.
    """

    def __init__(
        self,
        num_channels: int = 32,
        backward: str = "ste",
        rate: str = "channel",
        rate_gamma: float = GAMMA,
        lmbda: float = 4e-4,
        seed: int | None = None,
        ssim_weight: float = 0.0,
        ssim_kind: str = "ssim",
        told_scale: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if rate not in RATES:
            raise ValueError(f"rate must be one of {sorted(RATES)}, got {rate!r}")
        if ssim_kind not in SSIM_KINDS:
            raise ValueError(f"ssim_kind must be one of {sorted(SSIM_KINDS)}, got {ssim_kind!r}")
        self.num_channels = num_channels
        self.backward = backward
        self.rate = rate
        self.rate_gamma = rate_gamma
        self.lmbda = lmbda
        self.seed = seed
        self.ssim_weight = ssim_weight
        self.ssim_kind = ssim_kind
        self.rate_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(lmbda),
            trainable=False,
            dtype="float32",
            name="rate_weight",
        )
        # The quantisation scale s of the training step (1 unless the training loop draws one,
        # ``--scale-range``): the step quantises s z and decodes q / s, as files at scale s do.
        self.train_scale = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(1.0),
            trainable=False,
            dtype="float32",
            name="train_scale",
        )
        self.encoder = build_encoder(num_channels)
        self.quantizer = Quantizer(backward, seed=seed, name="quantizer", dtype="float32")
        self.told_scale = told_scale
        self.decoder = build_decoder(num_channels, told_scale)
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self.bpp_tracker = keras.metrics.Mean(name="bpp_est")

    def call(self, x, training=False):
        """x (B, H, W, 3) float in [0, 1] -> {"y": decoded (B, H, W, 3), "z": the scaled latent
        s z (B, H/8, W/8, C), whose rate the loss estimates}; s = ``train_scale`` (1 by
        default, so z itself)."""
        z = self.encoder(x, training=training)
        z = z * ops.cast(self.train_scale, z.dtype)
        q = self.quantizer(z, training=training)
        y = self.decode(q / ops.cast(self.train_scale, q.dtype), self.train_scale, training)
        return {"y": y, "z": z}

    def decode(self, y, scale=1.0, training=False):
        """y = q / s (B, h, w, C) float -> (B, 8h, 8w, 3) float in [0, 1].

        ``scale`` (s, a float or scalar tensor) is what a decoder told the scale is told
        (``told_scale``); other decoders see y alone.
        """
        if not self.told_scale:
            return self.decoder(y, training=training)
        y = ops.convert_to_tensor(y)
        t = ops.ones((ops.shape(y)[0], 1), "float32") * ops.log2(ops.cast(scale, "float32"))
        return self.decoder([y, t], training=training)

    def estimated_bpp(self, z):
        """Differentiable bits per pixel of a batch of latents z (B, h, w, C): scalar float32."""
        bits = RATES[self.rate](z, self.rate_gamma)
        return bits * (self.num_channels / 64.0)

    def distortion(self, x, y):
        """(training distortion, MSE) of images x and decoded y (B, H, W, 3): float32 scalars.

        The distortion is the MSE, plus ``ssim_weight * (1 - SSIM)`` when that weight is set
        (``SSIM_KINDS[ssim_kind]``, computed in float32 under bf16 too).
        """
        x, y = ops.cast(x, "float32"), ops.cast(y, "float32")
        mse = ops.mean(ops.square(x - y))
        if not self.ssim_weight:
            return mse, mse
        return mse + self.ssim_weight * (1.0 - SSIM_KINDS[self.ssim_kind](x, y)), mse

    def _terms(self, x, y_pred):
        distortion, mse = self.distortion(x, y_pred["y"])
        return distortion, mse, self.estimated_bpp(y_pred["z"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        distortion, _, bpp = self._terms(x, y_pred)
        return distortion + ops.cast(self.rate_weight, "float32") * bpp

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        _, mse, bpp = self._terms(x, y_pred)
        self.mse_tracker.update_state(mse)
        self.bpp_tracker.update_state(bpp)
        return self.get_metrics_result()

    @property
    def metrics(self):
        return [*super().metrics, self.mse_tracker, self.bpp_tracker]

    def get_config(self):
        return {
            **super().get_config(),
            "num_channels": self.num_channels,
            "backward": self.backward,
            "rate": self.rate,
            "rate_gamma": self.rate_gamma,
            "lmbda": self.lmbda,
            "seed": self.seed,
            "ssim_weight": self.ssim_weight,
            "ssim_kind": self.ssim_kind,
            "told_scale": self.told_scale,
        }


def load_model(
    num_channels: int,
    weights: str | Path | dict | None = None,
    *,
    trunk: str | Path | None = None,
    lmbda: float | None = None,
    patch: int = 16,
    **kwargs,
) -> L3ICModel:
    """An ``L3ICModel`` built under the current dtype policy, with weights loaded: the one way
    every tool (training, export, ship, the GPU run, the benchmarks) makes a model.

    Args:
        num_channels: latent channels C.
        weights: a weights ``.npz`` (float16, as shipped, or float32) or a dict
            {"encoder/e1/kernel": array}; None keeps the fresh initial weights.
        trunk: instead, load only the layers of this ``.npz`` that fit (another preset's trunk:
            all but e3 and d1's kernel); the names of the others are in ``model.fresh``.
        lmbda: the rate weight (default ``default_lmbda(num_channels)``).
        patch: the side of the zero image the model is built on.
        **kwargs: the other arguments of ``L3ICModel`` (backward, rate, ssim_weight,
            ssim_kind, seed, told_scale).

    Raises:
        L3ICError: the weights cannot be read or do not fit.
    """
    lmbda = default_lmbda(num_channels) if lmbda is None else lmbda
    net = L3ICModel(num_channels, lmbda=lmbda, **kwargs)
    net(np.zeros((1, patch, patch, 3), dtype=np.float32))
    net.fresh = []
    if weights is not None:
        arrays = weights if isinstance(weights, dict) else read_arrays(weights)
        if net.told_scale:  # plain weights start a told decoder with its FiLMs at the identity
            arrays = {**_film_arrays(net), **arrays}
        assign_arrays(net, arrays, "given as arrays" if isinstance(weights, dict) else weights)
    elif trunk is not None:
        net.fresh = load_matching(net, trunk)
    return net


def _film_arrays(net: L3ICModel) -> dict[str, np.ndarray]:
    """The ``ScaleFiLM`` weights of ``net``'s decoder as they start (zeros), by array name."""
    return {
        f"decoder/{v.path}": np.zeros(v.shape, np.float32)
        for v in net.decoder.weights
        if v.path.endswith(FILM_WEIGHT_SUFFIX)
    }
