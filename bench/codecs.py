"""One interface for every codec of the benchmark, ``BenchCodec``: classic codecs (Pillow,
imagecodecs, pillow-heif, pillow-jxl-plugin) and l3ic.

A codec turns an (H, W, 3) uint8 RGB image into bytes at one point of its quality sweep and
back. Metrics are never computed here: ``bench.rd`` scores every codec with
``l3ic.metrics.score``.

    codec = CODECS["avif420"](threads=1)
    data = codec.encode(image, 60)
    recon = codec.decode(data)

``threads`` is ``None`` for the library default (usually all cores); codecs whose library has
no thread setting (``threaded = False``) reject any other value.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import PIL
from PIL import Image, features

from l3ic.presets import PRESETS

__all__ = [
    "AVIF420",
    "AVIF444",
    "CODECS",
    "HEVC444",
    "JPEG420",
    "JPEG444",
    "JPEG2000",
    "JPEGXL",
    "L3IC",
    "Availability",
    "BenchCodec",
    "Quality",
    "WebP",
    "bench_codec",
]

Quality = int | float | str


@dataclass(frozen=True)
class Availability:
    """Whether a codec can run here, and if not, why."""

    ok: bool
    reason: str = ""


def _check_image(image: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', image)}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")


class BenchCodec(ABC):
    """A lossy image codec with a default quality sweep.

    Class attributes:
        name: id used on the command line, in file names and in the cache key.
        label: human-readable name for plots and tables.
        qualities: default sweep, chosen to cover about 0.1-2.5 bpp on Kodak.
        quality_unit: what the quality value means (e.g. "quality 0-100", "PSNR target dB").
        threaded: whether the library takes a thread count.
        is_learned: plotted as points (presets) rather than a curve.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    qualities: ClassVar[tuple[Quality, ...]]
    quality_unit: ClassVar[str] = "quality 0-100"
    threaded: ClassVar[bool] = False
    is_learned: ClassVar[bool] = False

    def __init__(self, threads: int | None = None) -> None:
        """Args:
        threads: encoder/decoder threads; ``None`` keeps the library default.
        """
        if threads is not None and not self.threaded:
            raise ValueError(f"codec {self.name!r} has no thread setting (threads={threads})")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads

    @classmethod
    def is_available(cls) -> Availability:
        """Whether the codec's library is importable and built with the needed format."""
        return Availability(True)

    @property
    @abstractmethod
    def description(self) -> str:
        """Codec, settings and library versions (goes into the results JSON)."""

    def sweep(self) -> tuple[Quality, ...]:
        """The qualities that can actually be run (all of ``qualities`` for classic codecs)."""
        return self.qualities

    @abstractmethod
    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        """Compress one image.

        Args:
            image: (H, W, 3) uint8 RGB.
            quality: one value of the codec's quality axis.

        Returns:
            The complete coded file (container and headers included).
        """

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decompress bytes from ``encode`` to an (H, W, 3) uint8 RGB image."""


def _pillow_decode(data: bytes) -> np.ndarray:
    """Decode any Pillow-readable file to (H, W, 3) uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class _PillowCodec(BenchCodec):
    """A codec that Pillow encodes with ``Image.save(format=..., **options)``."""

    pillow_format: ClassVar[str]

    def _save_options(self, quality: Quality) -> dict[str, Any]:
        """Keyword arguments for ``Image.save`` at ``quality``."""
        return {"quality": int(quality)}

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        _check_image(image)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=self.pillow_format, **self._save_options(quality))
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data)


class _JPEG(_PillowCodec):
    """Baseline JPEG through Pillow's libjpeg-turbo, standard Huffman tables (no optimize)."""

    pillow_format = "JPEG"
    subsampling: ClassVar[str]
    qualities = (
        2,
        5,
        8,
        10,
        15,
        20,
        25,
        30,
        35,
        40,
        45,
        50,
        55,
        60,
        65,
        70,
        75,
        80,
        85,
        90,
        93,
        95,
    )
    quality_unit = "JPEG quality 1-95"

    @classmethod
    def is_available(cls) -> Availability:
        if not features.check("jpg"):
            return Availability(False, "Pillow built without JPEG")
        return Availability(True)

    @property
    def description(self) -> str:
        turbo = "libjpeg-turbo" if features.check_feature("libjpeg_turbo") else "libjpeg"
        return (
            f"JPEG {self.subsampling}, Pillow {PIL.__version__} "
            f"({turbo} {features.version_feature('libjpeg_turbo') or features.version('jpg')})"
        )

    def _save_options(self, quality: Quality) -> dict[str, Any]:
        return {"quality": int(quality), "subsampling": self.subsampling}


class JPEG420(_JPEG):
    """JPEG with 4:2:0 chroma subsampling (Pillow's default)."""

    name = "jpeg420"
    label = "JPEG 4:2:0"
    subsampling = "4:2:0"


class JPEG444(_JPEG):
    """JPEG without chroma subsampling."""

    name = "jpeg444"
    label = "JPEG 4:4:4"
    subsampling = "4:4:4"


class WebP(_PillowCodec):
    """Lossy WebP through Pillow's libwebp (method 4, libwebp's default; no thread setting)."""

    name = "webp"
    label = "WebP"
    pillow_format = "WEBP"
    qualities = (0, 5, 10, 20, 30, 40, 50, 60, 65, 70, 75, 80, 85, 88, 90, 93, 95, 97)

    @classmethod
    def is_available(cls) -> Availability:
        if not features.check("webp"):
            return Availability(False, "Pillow built without WebP")
        return Availability(True)

    @property
    def description(self) -> str:
        return (
            f"WebP lossy, method 4, Pillow {PIL.__version__} (libwebp {features.version('webp')})"
        )

    def _save_options(self, quality: Quality) -> dict[str, Any]:
        return {"quality": int(quality), "method": 4, "lossless": False}


class _AVIF(_PillowCodec):
    """AVIF through Pillow's libavif, aom encoder, speed 6 (Pillow's default), full range."""

    pillow_format = "AVIF"
    subsampling: ClassVar[str]
    threaded = True
    qualities = (10, 20, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 92)

    @classmethod
    def is_available(cls) -> Availability:
        if not features.check("avif"):
            return Availability(False, "Pillow built without AVIF (needs Pillow >= 11.2 wheels)")
        from PIL import AvifImagePlugin

        if AvifImagePlugin.get_codec_version("aom") is None:
            return Availability(False, "libavif in Pillow has no aom encoder")
        return Availability(True)

    @property
    def description(self) -> str:
        from PIL import AvifImagePlugin

        return (
            f"AVIF {self.subsampling}, aom {AvifImagePlugin.get_codec_version('aom')} speed 6, "
            f"dav1d {AvifImagePlugin.get_codec_version('dav1d')} decode, Pillow {PIL.__version__} "
            f"(libavif {features.version('avif')})"
        )

    def _save_options(self, quality: Quality) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "quality": int(quality),
            "speed": 6,
            "subsampling": self.subsampling,
            "codec": "aom",
        }
        if self.threads is not None:
            opts["max_threads"] = self.threads
        return opts

    def decode(self, data: bytes) -> np.ndarray:
        from PIL import AvifImagePlugin

        with _module_setting(AvifImagePlugin, "DEFAULT_MAX_THREADS", self.threads):
            return _pillow_decode(data)


class AVIF420(_AVIF):
    """AVIF with 4:2:0 chroma subsampling (Pillow's default)."""

    name = "avif420"
    label = "AVIF 4:2:0"
    subsampling = "4:2:0"


class AVIF444(_AVIF):
    """AVIF without chroma subsampling."""

    name = "avif444"
    label = "AVIF 4:4:4"
    subsampling = "4:4:4"


@contextlib.contextmanager
def _module_setting(module: ModuleType, attr: str, value: object) -> Iterator[None]:
    """Temporarily set a module-level library option (skipped when ``value`` is None)."""
    if value is None:
        yield
        return
    old = getattr(module, attr)
    setattr(module, attr, value)
    try:
        yield
    finally:
        setattr(module, attr, old)


class JPEG2000(BenchCodec):
    """JPEG 2000 through imagecodecs/OpenJPEG, raw J2K codestream, 9/7 wavelet, RGB->YCC MCT.

    The quality axis is OpenJPEG's fixed-quality mode: ``jpeg2k_encode(level=L)`` sets
    ``tcp_distoratio`` so the encoder stops at about L dB PSNR. It is not a 0-100 scale.
    """

    name = "jpeg2000"
    label = "JPEG 2000"
    quality_unit = "target PSNR dB (OpenJPEG fixed quality)"
    threaded = True
    qualities = (25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 40, 42, 44, 46)

    @classmethod
    def is_available(cls) -> Availability:
        try:
            import imagecodecs
        except ImportError as exc:
            return Availability(False, f"imagecodecs not installed ({exc})")
        if not imagecodecs.JPEG2K.available:
            return Availability(False, "imagecodecs built without OpenJPEG")
        return Availability(True)

    @property
    def description(self) -> str:
        import imagecodecs

        return (
            f"JPEG 2000 (J2K codestream, irreversible 9/7, MCT), fixed-quality dB target, "
            f"imagecodecs {imagecodecs.__version__} ({imagecodecs.jpeg2k_version()})"
        )

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        import imagecodecs

        _check_image(image)
        return bytes(
            imagecodecs.jpeg2k_encode(
                image, level=float(quality), codecformat="J2K", numthreads=self.threads
            )
        )

    def decode(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return np.asarray(imagecodecs.jpeg2k_decode(data, numthreads=self.threads))


class JPEGXL(BenchCodec):
    """JPEG XL through pillow-jxl-plugin (libjxl), effort 7 (libjxl's default), naked codestream."""

    name = "jxl"
    label = "JPEG XL"
    threaded = True
    qualities = (1, 5, 10, 20, 30, 40, 50, 60, 65, 70, 75, 80, 85, 88, 90, 93, 95)

    @classmethod
    def is_available(cls) -> Availability:
        try:
            import pillow_jxl  # noqa: F401
        except ImportError as exc:
            return Availability(False, f"pillow-jxl-plugin not installed ({exc})")
        return Availability(True)

    @property
    def description(self) -> str:
        from importlib.metadata import version

        return (
            f"JPEG XL, effort 7, pillow-jxl-plugin {version('pillow-jxl-plugin')} "
            "(libjxl 0.12 vendored by jpegxl-rs 0.15)"
        )

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        from pillow_jxl import Encoder

        _check_image(image)
        encoder = Encoder(
            mode="RGB",
            lossless=False,
            quality=float(quality),
            decoding_speed=0,
            effort=7,
            use_container=False,
            use_original_profile=False,
            num_threads=-1 if self.threads is None else self.threads,
        )
        h, w = image.shape[:2]
        return bytes(encoder(np.ascontiguousarray(image).tobytes(), w, h, jpeg_encode=False))

    def decode(self, data: bytes) -> np.ndarray:
        from pillow_jxl import Decoder

        decoder = Decoder(num_threads=-1 if self.threads is None else self.threads)
        _, info, pixels = decoder(data)[:3]
        if info.mode != "RGB":
            raise ValueError(f"JPEG XL stream decoded to mode {info.mode!r}, expected RGB")
        return np.frombuffer(pixels, np.uint8).reshape(info.height, info.width, 3).copy()


class HEVC444(BenchCodec):
    """HEVC intra, 4:4:4, in HEIF, through pillow-heif (libheif + x265; libde265 decoding).

    The stand-in for BPG (same HEVC intra coding; BPG itself is not packaged). libheif's x265
    defaults: preset slow, tune ssim, CRF = (100 - quality) / 2, BT.601 full range.
    """

    name = "hevc444"
    label = "HEVC intra 4:4:4 (HEIF)"
    threaded = True
    qualities = (10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70)

    @classmethod
    def is_available(cls) -> Availability:
        try:
            import pillow_heif
        except ImportError as exc:
            return Availability(False, f"pillow-heif not installed ({exc})")
        if "x265" not in pillow_heif.libheif_info().get("encoders", {}):
            return Availability(False, "libheif in pillow-heif has no x265 encoder")
        return Availability(True)

    @property
    def description(self) -> str:
        import pillow_heif

        info = pillow_heif.libheif_info()
        return (
            f"HEVC intra 4:4:4 in HEIF, {info['encoders']['x265']} preset slow tune ssim, "
            f"{info['decoders'].get('libde265', 'libde265')}, libheif {info['libheif']}, "
            f"pillow-heif {pillow_heif.__version__}"
        )

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        import pillow_heif

        _check_image(image)
        h, w = image.shape[:2]
        heif = pillow_heif.from_bytes("RGB", (w, h), np.ascontiguousarray(image).tobytes())
        params = (
            {}
            if self.threads is None
            else {"x265:pools": str(self.threads), "x265:frame-threads": "1"}
        )
        buf = io.BytesIO()
        heif.save(buf, quality=int(quality), chroma=444, enc_params=params)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        with _module_setting(pillow_heif.options, "DECODE_THREADS", self.threads):
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            return np.asarray(heif[0].to_pillow().convert("RGB"))


class L3IC(BenchCodec):
    """l3ic through its public API; the quality axis is the preset (16c, 32c, 64c).

    The package is imported lazily. Every preset's ``l3ic.Codec`` comes from ``l3ic.api``'s
    per-process cache, the one ``l3ic.decompress`` uses too, so each preset's network is loaded
    once. A preset whose weights are missing (``l3ic.L3ICError``) is left out of ``sweep()``; the
    codec is unavailable when none is usable.
    """

    name = "l3ic"
    label = "l3ic"
    qualities = tuple(PRESETS)
    quality_unit = "preset"
    is_learned = True

    @staticmethod
    def _import() -> ModuleType:
        import l3ic

        for attr in ("Codec", "compress", "decompress", "L3ICError"):
            if not hasattr(l3ic, attr):
                raise ImportError(f"l3ic has no {attr!r} yet")
        return l3ic

    @classmethod
    def is_available(cls) -> Availability:
        try:
            cls._import()
        except Exception as exc:  # a half-written package may fail in any way at import
            return Availability(False, f"l3ic import failed: {type(exc).__name__}: {exc}")
        problems = []
        for preset in cls.qualities:
            try:
                cls.l3ic_codec(preset)
            except Exception as exc:  # missing weights raise L3ICError; anything else too
                problems.append(f"{preset}: {type(exc).__name__}: {exc}")
            else:
                return Availability(True)
        return Availability(False, "no usable preset (" + "; ".join(problems) + ")")

    @staticmethod
    def l3ic_codec(preset: Quality) -> Any:
        """The shared ``l3ic.Codec`` of a preset (raises ``l3ic.L3ICError`` without weights)."""
        from l3ic.api import get_codec

        return get_codec(str(preset))

    def codec_at(self, quality: Quality) -> Any:
        """The ``l3ic.Codec`` that codes the sweep point ``quality`` (here a preset)."""
        return self.l3ic_codec(quality)

    def sweep(self) -> tuple[Quality, ...]:
        lib = self._import()
        usable = []
        for preset in self.qualities:
            try:
                self.l3ic_codec(preset)
            except lib.L3ICError:
                continue
            usable.append(preset)
        return tuple(usable)

    @property
    def description(self) -> str:
        lib = self._import()
        presets = " ".join(f"{p}:{self._identity(self.l3ic_codec(p))}" for p in self.sweep())
        return (
            f"l3ic {getattr(lib, '__version__', '?')} ({self._runtime()}), weights+priors {presets}"
        )

    def _runtime(self) -> str:
        """The runtime the network runs on, with its version."""
        runtime = self.codec_at(self.sweep()[0]).runtime
        if runtime == "onnx":
            import onnxruntime

            return f"ONNX Runtime {onnxruntime.__version__}"
        if runtime == "openvino":
            from l3ic.runtime import import_openvino

            precision = self.codec_at(self.sweep()[0]).net.precision
            return f"OpenVINO {import_openvino().get_version().split('-')[0]}, {precision}"
        import keras

        return f"Keras {keras.__version__}, backend {keras.backend.backend()}"

    @staticmethod
    def _identity(codec: Any) -> str:
        """8 hex digits identifying a preset's weights and entropy-coding priors.

        Part of the description, hence of the cache identity: retrained weights or new priors
        invalidate cached l3ic results. Changes to the l3ic code itself need ``--refresh``.
        """
        h = hashlib.sha256(bytes(getattr(codec, "fingerprint", b"")))
        for attr in ("priors", "channel_order"):
            h.update(np.ascontiguousarray(getattr(codec, attr, np.zeros(0))).tobytes())
        return h.hexdigest()[:8]

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        _check_image(image)
        return bytes(self.l3ic_codec(quality).compress(image))

    def decode(self, data: bytes) -> np.ndarray:
        return np.asarray(self._import().decompress(data))


class L3ICQuality(L3IC):
    """One l3ic preset swept over its ``quality`` (0..100, 50 = the preset as trained:
    docs/quality.md), like the classic codecs; ``L3IC`` sweeps the presets at quality 50."""

    preset: ClassVar[str]
    qualities = (0, 15, 30, 50, 70, 85, 100)
    quality_unit = "quality"

    @classmethod
    def is_available(cls) -> Availability:
        try:
            cls._import()
            cls.l3ic_codec(cls.preset)
        except Exception as exc:  # an import failure or missing weights, as for L3IC
            return Availability(False, f"l3ic {cls.preset}: {type(exc).__name__}: {exc}")
        return Availability(True)

    def codec_at(self, quality: Quality) -> Any:
        """The preset's ``l3ic.Codec``, whatever the quality."""
        return self.l3ic_codec(self.preset)

    def sweep(self) -> tuple[Quality, ...]:
        return self.qualities

    @property
    def description(self) -> str:
        lib = self._import()
        identity = self._identity(self.l3ic_codec(self.preset))
        return (
            f"l3ic {getattr(lib, '__version__', '?')} ({self._runtime()}), "
            f"preset {self.preset}:{identity} over --quality"
        )

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        _check_image(image)
        return bytes(self.l3ic_codec(self.preset).compress(image, quality=float(quality)))


class L3ICChosen(L3IC):
    """l3ic swept over ``--quality`` without a preset: each quality is coded by the preset and
    scale that ``l3ic.rate_control.choose_for_quality`` picks from the presets' scale curves
    (0..100 spans every preset; 50 is 32c as trained: docs/quality.md)."""

    name = "l3ic-chosen"
    label = "l3ic (preset chosen)"
    qualities = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    quality_unit = "quality"

    @classmethod
    def is_available(cls) -> Availability:
        try:
            cls._import()
            for preset in cls._chosen_presets():
                cls.l3ic_codec(preset)
        except Exception as exc:  # an import failure, no scale curves or missing weights
            return Availability(False, f"l3ic without a preset: {type(exc).__name__}: {exc}")
        return Availability(True)

    @classmethod
    def _chosen_presets(cls) -> list[str]:
        """The presets the sweep's qualities are coded with, in name order (the presets' scale
        curves read once)."""
        from l3ic.rate_control import choose_for_quality, shipped_curves

        curves = shipped_curves()
        return sorted({choose_for_quality(float(q), curves)[0] for q in cls.qualities})

    def codec_at(self, quality: Quality) -> Any:
        """The ``l3ic.Codec`` of the preset chosen for ``quality``."""
        from l3ic.rate_control import choose_for_quality

        return self.l3ic_codec(choose_for_quality(float(quality))[0])

    def sweep(self) -> tuple[Quality, ...]:
        return self.qualities

    @property
    def description(self) -> str:
        from l3ic.rate_control import shipped_curves

        curves = hashlib.sha256(repr(sorted(shipped_curves().items())).encode()).hexdigest()[:8]
        ids = " ".join(f"{p}:{self._identity(self.l3ic_codec(p))}" for p in self._chosen_presets())
        lib = self._import()
        return (
            f"l3ic {getattr(lib, '__version__', '?')} ({self._runtime()}), weights+priors {ids}, "
            f"scale curves {curves}, over --quality without a preset"
        )

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        _check_image(image)
        return bytes(self._import().compress(image, quality=float(quality)))


def _quality_codec(preset: str) -> type[L3ICQuality]:
    """The ``L3ICQuality`` codec of ``preset``, named ``l3ic-<preset>``."""
    attrs = {"name": f"l3ic-{preset}", "label": f"l3ic {preset}", "preset": preset}
    return type(f"L3ICQuality{preset}", (L3ICQuality,), attrs)


CODECS: dict[str, type[BenchCodec]] = {
    cls.name: cls
    for cls in (
        JPEG420,
        JPEG444,
        WebP,
        JPEG2000,
        AVIF420,
        AVIF444,
        JPEGXL,
        HEVC444,
        L3IC,
        *(_quality_codec(p) for p in PRESETS),
        L3ICChosen,
    )
}


def bench_codec(name: str, threads: int | None = None) -> BenchCodec:
    """Instantiate a codec by name; raises ``ValueError`` naming the valid ones."""
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
    return CODECS[name](threads=threads)
