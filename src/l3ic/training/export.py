"""Shipping a preset: a run's weights frozen into ``models/NAME.npz`` + ``NAME.json``, and the
comparison that decides whether they replace the shipped ones (``l3ic train export``/``ship``).

``export_run`` takes a training run (``loop``: its latest checkpoint) or a ``gpu-run``
folder, learns the entropy model (``entropy_model``: priors and context tables over every
training image, the channel order on the validation split) and writes the float16 weights,
their sidecar (recipe, data identity, lineage, fingerprint, validation figures, priors, channel
order; the fields are listed in docs/training.md, "Export and sidecar") and their context
tables (``PRESET.contexts.npz``). ``ship`` codes the validation split with the shipped and the
candidate preset and copies the candidate into ``models/`` only if it is better.
``learn_contexts`` learns the context tables of weights already shipped; ``write_curve``
measures their scale curve (the sidecar's ``scale_curve``, which export measures for new
weights).
"""

import io
import json
import re
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

from ..atomic_files import write_atomic, write_json_atomic
from ..codec import Codec
from ..errors import L3ICError
from ..evaluate import scale_curve
from ..model import L3ICModel, load_model, scale_latent
from ..presets import (
    FROZEN,
    PRESETS,
    SHIP_MIN_SSIM_GAIN,
    SHIP_RATE_TOLERANCE,
    TARGET_BPP,
    assign_arrays,
    checkout_models,
    fingerprint,
    lineage,
    model_arrays,
    read_arrays,
    read_context_tables,
    save_weights,
)
from . import gpu_run
from .data import default_data_dir, list_images, load_images, split_files
from .entropy_model import channel_order, learn_entropy_model, scale_for_rate, validate
from .loop import CONFIG_NAME, Run
from .recipe import Recipe, num_channels_in

__all__ = [
    "TERMS",
    "export_run",
    "ship",
    "learn_contexts",
    "save_context_tables",
    "measure_curve",
    "write_curve",
]

TERMS = (
    "Trained on photos of research benchmark sets (BSDS500, one ImageNet image per class, "
    "Sun-Hays 80, Urban100; sources in shared/data/README.md) whose sources state no licence: "
    "they are available for research use, and so are these weights. The l3ic code is MIT."
)


def _load_run(run_dir: Path, preset: str, data: Path | None) -> tuple[dict, L3ICModel, int, float]:
    """(export config, float32 model, steps, training seconds) of a run or gpu-run folder.

    Raises:
        L3ICError: ``run_dir`` is neither (e.g. missing), or its checkpoint does not fit.
    """
    if (run_dir / gpu_run.RUN_JSON).is_file():
        return gpu_run.load_for_export(run_dir, preset, data or default_data_dir())
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise L3ICError(f"{run_dir} is not a training run: {config_path} not found")
    cfg = json.loads(config_path.read_text())
    run = Run(run_dir, {**cfg, "mixed_precision": False}, fresh=True)
    run.restore()
    run.net.optimizer.finalize_variable_values(run.net.trainable_variables)  # the --ema average
    if data is not None:
        cfg["data"] = str(data)
    cfg["recipe"] = Recipe.from_dict(cfg).to_dict()
    cfg["patches"] = run.step * cfg["batch"]
    if "lineage" not in cfg:  # runs begun before lineage was recorded at the start
        cfg["lineage"] = lineage(cfg.get("init"))
    return cfg, run.net, run.step, run.seconds


def export_run(
    run_dir: Path,
    preset: str,
    out_dir: Path | None = None,
    data: Path | None = None,
    fit_rate: float | None = None,
) -> Path:
    """Writes ``out_dir/PRESET.npz`` (float16 weights) and ``PRESET.json`` from a run.

    ``run_dir`` is a training run (its latest checkpoint) or the folder of ``l3ic train gpu-run``
    (its weights of ``preset``). The sidecar holds the recipe, training data identity, steps,
    patches (this run's and in all, through the weights it started from), hardware and status,
    the per-channel priors (all training images), the channel order (validation images), the
    fingerprint, validation figures and the PSNR change caused by float16 storage.

    With ``fit_rate`` the weights are first moved along their own rate curve to that validation
    bpp: ``entropy_model.scale_for_rate`` finds the quantisation scale s at which the validation
    split codes at the target, and ``model.scale_latent`` folds s into the weights, so that the
    preset codes at scale 1 what the run's weights code at s (the sidecar's ``rate_fit``).

    Args:
        run_dir: the run folder.
        preset: the preset's name, e.g. "32c" (also the name of the files written).
        out_dir: where to write (default: ``models/`` of the checkout this runs in).
        data: the training images, if not where the run found them.
        fit_rate: a validation bpp to fit the weights to (None: export them as trained).

    Returns:
        The path of the .npz file.
    """
    run_dir = Path(run_dir)
    cfg, net, steps, seconds = _load_run(run_dir, preset, data)
    if net.told_scale:
        raise L3ICError(
            f"{run_dir} was trained with --told-scale: no runtime decodes with a decoder told "
            "the scale yet, so it cannot be exported (bench.scale_runs measures it)"
        )
    out_dir = Path(out_dir) if out_dir is not None else checkout_models()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list_images(cfg["data"])
    train_files, val_files = split_files(files)
    t0 = time.perf_counter()
    train_images = load_images(train_files)
    val_images = load_images(val_files)
    if not val_images:
        raise L3ICError("no validation images: the channel order cannot be measured")
    num_channels = Recipe.from_dict(cfg).num_channels
    rate_fit = None
    if fit_rate is not None:
        scale, bpp, bpp_as_trained = scale_for_rate(
            Codec.from_model(net, preset, {}), train_images, val_images, fit_rate
        )
        assign_arrays(net, scale_latent(model_arrays(net), scale), "rate-fitted")
        rate_fit = {
            "target_bpp": fit_rate,
            "scale": scale,
            "bpp_as_trained": round(bpp_as_trained, 4),
            "bpp_fitted": round(bpp, 4),
        }
        print(
            f"rate fitted in {time.perf_counter() - t0:.0f} s: scale {scale:g} codes the "
            f"validation split at {bpp:.4f} bpp (as trained {bpp_as_trained:.4f}, target "
            f"{fit_rate})",
            flush=True,
        )
    priors, tables = learn_entropy_model(Codec.from_model(net, preset, {}), train_images)
    print(
        f"priors and context tables from {len(train_files)} images in "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    val32 = validate(net, val_images, [], priors)
    order, losses = channel_order(net, val_images, priors)
    print(f"channel order in {time.perf_counter() - t0:.0f} s", flush=True)

    npz = out_dir / f"{preset}.npz"
    fp = save_weights(net, npz)
    save_context_tables(npz.with_suffix(".contexts.npz"), tables, fp)
    half = load_model(num_channels, npz)
    val16 = validate(half, val_images, [], priors)
    order_sidecar = {"priors": priors.tolist(), "channel_order": order}
    curve = measure_curve(half, preset, order_sidecar, tables, val_images)
    print(f"scale curve in {time.perf_counter() - t0:.0f} s", flush=True)
    sidecar = {
        "preset": preset,
        "num_channels": num_channels,
        "status": "trained" if cfg["gpu"] else "cpu-short-schedule",
        "hardware": cfg["hardware"] + ("" if cfg["gpu"] else ", short schedule"),
        "cpu": cfg.get("cpu"),
        "mixed_precision_choice": cfg.get("mixed_precision_choice"),
        "recipe": cfg["recipe"],
        "lmbda_final": float(ops.convert_to_numpy(net.rate_weight)),
        "rate_fit": rate_fit,
        "backend": cfg["backend"],
        "training_data": cfg["training_data"],
        "validation_data": {**cfg["validation_data"], "rule": "sha1(file name) % 20 == 0"},
        "terms": TERMS,
        "steps": steps,
        "patches": cfg["patches"],
        "patches_total": cfg["patches"] + ((cfg["lineage"] or {}).get("patches_total") or 0),
        "init": cfg["lineage"],
        "train_seconds": round(seconds),
        "fingerprint": fp.hex(),
        "validation": {k: round(v, 4) for k, v in val16.items()},
        "float16_psnr_delta_db": round(val16["psnr"] - val32["psnr"], 5),
        "channel_order": order,
        "channel_psnr_loss_db": [round(v, 4) for v in losses],
        "priors": priors.tolist(),
        "scale_curve": curve,
    }
    sidecar_path = npz.with_suffix(".json")
    write_json_atomic(sidecar_path, sidecar)
    print(
        f"wrote {npz} ({npz.stat().st_size / 2**20:.2f} MiB) and {sidecar_path.name}: val PSNR "
        f"{val16['psnr']:.3f} dB, SSIM {val16['ssim']:.4f}, {val16['bpp']:.4f} bpp; "
        f"float16 changes PSNR by {val16['psnr'] - val32['psnr']:+.5f} dB",
        flush=True,
    )
    return npz


def _num_channels(sidecar: dict, preset: str) -> int:
    """The latent channels of a sidecar's weights (``num_channels_in``), else the preset's."""
    return num_channels_in(sidecar) or PRESETS[preset]


def _shipped_in(path: Path) -> tuple[str | None, str | None]:
    """(short hash, l3ic version) of the last git commit that changed ``path``.

    The version is read from ``src/l3ic/__init__.py`` (``l3ic/__init__.py`` before the ``src/``
    layout) at that commit; (None, None) outside a checkout.
    """

    def git(*args: str) -> str:
        try:
            result = subprocess.run(
                ["git", *args], cwd=path.parent, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("log", "-1", "--format=%h", "--", path.name) or None
    if commit is None:
        return None, None
    source = git("show", f"{commit}:src/l3ic/__init__.py") or git(
        "show", f"{commit}:l3ic/__init__.py"
    )
    match = re.search(r'^__version__ = "([^"]+)"', source, re.MULTILINE)
    return commit, match.group(1) if match else None


def _better(preset: str, cand: dict, old: dict | None) -> tuple[bool, str]:
    """(whether validation figures ``cand`` beat ``old`` by ``ship``'s rule, the rule in words)."""
    if preset in TARGET_BPP:
        ceiling, gain = TARGET_BPP[preset] * SHIP_RATE_TOLERANCE, SHIP_MIN_SSIM_GAIN
        rule = f"bpp <= {ceiling:.4f} and SSIM at least {gain} above the shipped preset's"
    else:
        ceiling, gain = (old["bpp"] if old else float("inf")), 0.0
        rule = "higher SSIM at equal or lower bpp"
    if cand["bpp"] > ceiling:
        return False, rule
    return old is None or (cand["ssim"] > old["ssim"] and cand["ssim"] - old["ssim"] >= gain), rule


def ship(
    candidate_dir: Path, preset: str, models: Path | None = None, data: Path | None = None
) -> bool:
    """Replaces the shipped ``preset`` by an exported candidate only if it is better.

    Both are coded for real on the validation split (each with its own priors). For a preset
    with a rate target (``presets.TARGET_BPP``) the candidate is better when its mean bpp is at
    most ``SHIP_RATE_TOLERANCE`` x the target and its mean SSIM beats the shipped one's by at
    least ``SHIP_MIN_SSIM_GAIN``; for any other name, when its SSIM is higher at an equal or
    lower bpp. Kodak is not looked at. The shipped sidecar of a replaced preset is kept in the
    new one under ``replaced``. A frozen preset (``presets.FROZEN``) is never replaced.

    Args:
        candidate_dir: a folder with ``PRESET.npz`` and ``PRESET.json`` from ``export``.
        preset: the preset, e.g. "32c".
        models: the models folder (default: ``models/`` of the checkout this runs in).
        data: the training images (default: ``default_data_dir()``).

    Returns:
        Whether the candidate was shipped.
    """
    if preset in FROZEN:
        raise L3ICError(
            f"preset {preset!r} met its published point and is frozen (weights {FROZEN[preset]}):"
            " ship better weights under a new preset name (README, 'Preset versions')"
        )
    candidate = Path(candidate_dir) / f"{preset}.npz"
    if not candidate.is_file():
        raise L3ICError(f"no candidate {candidate}")
    models = Path(models) if models is not None else checkout_models()
    _, val_files = split_files(list_images(data or default_data_dir()))
    val_images = load_images(val_files)
    if not val_images:
        raise L3ICError("no validation images to compare on")
    figures, sidecars, fingerprints = {}, {}, {}
    for label, folder in (("shipped", models), ("candidate", Path(candidate_dir))):
        npz = folder / f"{preset}.npz"
        if not npz.is_file():  # nothing shipped yet
            continue
        sidecars[label] = json.loads(npz.with_suffix(".json").read_text())
        keras.config.set_dtype_policy("float32")
        net = load_model(_num_channels(sidecars[label], preset), npz)
        fingerprints[label] = fingerprint(read_arrays(npz)).hex()
        figures[label] = validate(net, val_images, [], np.array(sidecars[label]["priors"]))
        f = figures[label]
        print(
            f"{preset} {label:9s}: val bpp {f['bpp']:.4f}, PSNR {f['psnr']:.3f} dB, "
            f"SSIM {f['ssim']:.4f} ({len(val_images)} images)",
            flush=True,
        )
    cand, old = figures["candidate"], figures.get("shipped")
    better, rule = _better(preset, cand, old)
    if not better:
        print(f"{preset}: not shipped (needs {rule})", flush=True)
        return False
    sidecar = {**sidecars["candidate"], "validation": {k: round(v, 4) for k, v in cand.items()}}
    if old is not None:
        prev = sidecars["shipped"]
        commit, version = _shipped_in(models / f"{preset}.npz")
        sidecar["replaced"] = {
            "fingerprint": fingerprints["shipped"],
            "status": prev.get("status"),
            "validation_now": {k: round(v, 4) for k, v in old.items()},
            # Kodak figures that sidecars held before evaluate stopped writing them.
            **{k: prev[k] for k in ("kodak", "kodak_crop512") if k in prev},
        }
        sidecar["earlier"] = [
            *prev.get("earlier", []),
            {
                "fingerprint": fingerprints["shipped"],
                "l3ic_version": version,
                "commit": commit,
                "status": prev.get("status"),
            },
        ]
    models.mkdir(parents=True, exist_ok=True)
    weights = candidate.read_bytes()
    tables = candidate.with_suffix(".contexts.npz")
    write_atomic(models / f"{preset}.npz", weights, force=True)
    write_json_atomic(models / f"{preset}.json", sidecar)
    if tables.is_file():  # candidates exported before l3ic 0.11.0 have none
        write_atomic(models / tables.name, tables.read_bytes(), force=True)
    else:
        (models / tables.name).unlink(missing_ok=True)
    print(f"{preset}: shipped to {models}", flush=True)
    return True


def measure_curve(net, preset: str, sidecar: dict, tables, images) -> dict:
    """The sidecar's ``scale_curve`` of weights: ``{"fingerprint", "data", "images", "points":
    evaluate.scale_curve}``, the files users get (ONNX Runtime, context tables) of the
    validation ``images`` at ``evaluate.CURVE_SCALES``.

    Args:
        net: the ``L3ICModel`` (the float16 weights as shipped).
        preset: its name.
        sidecar: its priors and channel order (a sidecar dict).
        tables: its context tables, or None.
        images: the validation split, (H, W, 3) uint8 arrays.
    """
    codec = Codec.from_model(net, preset, sidecar, runtime="onnx", context_tables=tables)
    return {
        "fingerprint": codec.fingerprint.hex(),
        "data": "validation split",
        "images": len(images),
        "points": scale_curve(codec, images),
    }


def _shipped(preset: str, models: Path | None) -> tuple[Path, dict, L3ICModel]:
    """(weights path, sidecar, float32 model) of the shipped ``preset`` in ``models`` (default:
    ``models/`` of the checkout this runs in).

    Raises:
        L3ICError: no weights there.
    """
    models = Path(models) if models is not None else checkout_models()
    npz = models / f"{preset}.npz"
    if not npz.is_file():
        raise L3ICError(f"no weights {npz}")
    sidecar = json.loads(npz.with_suffix(".json").read_text())
    keras.config.set_dtype_policy("float32")
    return npz, sidecar, load_model(_num_channels(sidecar, preset), npz)


def write_curve(preset: str, models: Path | None = None, data: Path | None = None) -> Path:
    """Measures the scale curve of the shipped weights of ``preset`` on the validation split and
    writes it into their sidecar (``scale_curve``); export does this for new weights.

    Args:
        preset: e.g. "32c".
        models: the models folder (default: ``models/`` of the checkout this runs in).
        data: the training images (default: ``default_data_dir()``).

    Returns:
        The sidecar's path.
    """
    npz, sidecar, net = _shipped(preset, models)
    path = npz.with_suffix(".json")
    tables = read_context_tables(npz.with_suffix(".contexts.npz"), fingerprint(read_arrays(npz)))
    _, val_files = split_files(list_images(data or default_data_dir()))
    t0 = time.perf_counter()
    sidecar["scale_curve"] = measure_curve(net, preset, sidecar, tables, load_images(val_files))
    write_json_atomic(path, sidecar)
    points = sidecar["scale_curve"]["points"]
    print(
        f"{preset}: scale curve of {len(val_files)} validation images in "
        f"{time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"s {p['scale']:g} {p['bpp']:.3f} bpp SSIM {p['ssim']:.4f}" for p in points),
        flush=True,
    )
    return path


def save_context_tables(path: Path, tables: np.ndarray, fp: bytes) -> None:
    """Writes context tables with the fingerprint of the weights they belong to
    (``presets.load_context_tables`` reads them), atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, tables=np.asarray(tables, dtype="<u2"), fingerprint=fp.hex())
    write_atomic(path, buffer.getvalue(), force=True)


def learn_contexts(preset: str, models: Path | None = None, data: Path | None = None) -> Path:
    """Learns the context tables of the shipped weights of ``preset`` from every training
    image and writes them beside the weights (``PRESET.contexts.npz``).

    Args:
        preset: e.g. "32c".
        models: the models folder (default: ``models/`` of the checkout this runs in).
        data: the training images (default: ``default_data_dir()``).

    Returns:
        The path written.
    """
    npz, sidecar, net = _shipped(preset, models)
    codec = Codec.from_model(net, preset, sidecar, runtime="onnx")
    train_files, _ = split_files(list_images(data or default_data_dir()))
    t0 = time.perf_counter()
    _, tables = learn_entropy_model(codec, load_images(train_files))
    path = npz.with_suffix(".contexts.npz")
    save_context_tables(path, tables, fingerprint(read_arrays(npz)))
    print(
        f"{preset}: context tables from {len(train_files)} images in "
        f"{time.perf_counter() - t0:.0f} s: {path} ({path.stat().st_size / 1024:.0f} KiB)",
        flush=True,
    )
    return path
