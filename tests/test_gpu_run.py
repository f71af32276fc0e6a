"""The one-shot GPU training call, rehearsed on the CPU (``l3ic train gpu-run --dry-run``).

The dry run is the device command of docs/training.md with tiny patches and images: the same
phases, the same files. The tests check what it writes against what the GPU machine can return
(at most 8 files of 16 MiB, 64 MiB together; the issue asks for at most 6), and that the weights
load, decode an image and export.
"""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

from l3ic import entropy, metrics
from l3ic.codec import Codec
from l3ic.model import load_model
from l3ic.presets import FROZEN, PRESETS, TARGET_BPP, fingerprint, models_dir
from l3ic.training import cli, data, export, gpu_run

MIB = 1 << 20
NOT_FROZEN = sorted(name for name in PRESETS if name not in FROZEN)  # gpu-run's default presets
TRAINED = NOT_FROZEN or ["64c"]  # with every preset frozen, the dry run names one
EXPECTED = {f"{name}.npz" for name in TRAINED} | {gpu_run.LOG_NAME, gpu_run.RUN_JSON}


def _gpu_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m l3ic.training gpu-run ARGS`` in a fresh process (JAX backend), from ``cwd``."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    return subprocess.run(
        [sys.executable, "-m", "l3ic.training.loop", "gpu-run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """8 training images of 64x64 and 1 validation image (by the sha1 rule of their names)."""
    folder = tmp_path_factory.mktemp("gpu-data")
    train_count, val_count, i = 0, 0, 0
    while train_count < 8 or val_count < 1:
        name = f"photo{i:03d}.png"
        if data.is_validation(name):
            if val_count < 1:
                iio.imwrite(folder / name, smooth_image(64, 64, seed=i))
                val_count += 1
        elif train_count < 8:
            iio.imwrite(folder / name, smooth_image(64, 64, seed=i))
            train_count += 1
        i += 1
    return folder


@pytest.fixture(scope="module")
def dry_run(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu-out")
    args = ["--dry-run", "--presets", ",".join(TRAINED), "--data", str(data_dir)]
    result = _gpu_run([*args, "--out", str(out)], out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_with_every_preset_frozen_the_gpu_run_asks_for_presets(tmp_path, capsys, monkeypatch):
    for name in PRESETS:
        monkeypatch.setitem(FROZEN, name, "0" * 16)
    assert cli.train_main(["gpu-run", "--dry-run", "--out", str(tmp_path)]) == 1
    assert "every preset is frozen" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_dry_run_writes_what_the_device_can_return(dry_run):
    files = sorted(p for p in dry_run.iterdir())
    assert {p.name for p in files} == EXPECTED
    assert len(files) <= 6
    assert all(p.stat().st_size < 16 * MIB for p in files)
    assert sum(p.stat().st_size for p in files) < 64 * MIB


def test_dry_run_figures_and_log(dry_run):
    figures = json.loads((dry_run / gpu_run.RUN_JSON).read_text())
    assert figures["dry_run"] is True
    assert set(figures["presets"]) == set(TRAINED)
    for name, entry in figures["presets"].items():
        assert entry["steps"] > 0 and entry["patches"] == entry["steps"] * figures["batch"]
        assert entry["whole_step_patches_per_s"] > 0 and entry["model_patches_per_s"] > 0
        assert entry["lineage"]["fingerprint"] == load_sidecar_fingerprint(name)
        # From the shipped weights at their last rate weight, steered to the preset's target.
        shipped = json.loads((models_dir() / f"{name}.json").read_text())
        assert entry["recipe"]["lmbda"] == shipped["lmbda_final"]
        assert entry["recipe"]["target_bpp"] == TARGET_BPP[name]
        assert entry["recipe"]["mixed_precision"] is True
        # Each step at its own quantisation scale, log-uniform in [0.5, 2] as l3ic train draws.
        assert entry["recipe"]["scale_range"] == 2.0
        low, high = entry["scales_drawn"]
        assert 0.5 <= low < 0.9 and 1.1 < high <= 2.0, entry["scales_drawn"]
    with open(dry_run / gpu_run.LOG_NAME) as f:
        rows = list(csv.DictReader(f))
    assert {r["preset"] for r in rows} == set(TRAINED)
    assert all(math.isfinite(float(r["loss"])) and int(r["step"]) > 0 for r in rows)


def load_sidecar_fingerprint(name: str) -> str:
    return json.loads((models_dir() / f"{name}.json").read_text())["fingerprint"]


@pytest.mark.parametrize("name", TRAINED)
def test_dry_run_weights_load_and_decode(dry_run, name):
    net = load_model(PRESETS[name], dry_run / f"{name}.npz")
    sidecar = {"priors": entropy.default_prior(PRESETS[name]).tolist()}
    codec = Codec.from_model(net, name, sidecar)
    image = smooth_image(64, 96, seed=5)
    decoded = codec.decompress(codec.compress(image))
    assert decoded.shape == image.shape
    # Started from the shipped weights and trained a few steps at a small rate: still a codec.
    assert metrics.psnr(image, decoded) > 18.0


def test_gpu_run_exports_and_ship_decides_on_validation(
    dry_run, data_dir, tmp_path, capsys, monkeypatch
):
    name = TRAINED[0]  # a preset the dry run trained
    monkeypatch.delitem(FROZEN, name, raising=False)  # a frozen one ships under a new name only
    candidates = tmp_path / "candidates"
    argv = ["export", str(dry_run), "--preset", name, "--models-dir", str(candidates)]
    assert cli.train_main([*argv, "--data", str(data_dir)]) == 0
    sidecar = json.loads((candidates / f"{name}.json").read_text())
    assert sidecar["recipe"]["target_bpp"] == TARGET_BPP[name]
    assert sidecar["init"]["fingerprint"] == load_sidecar_fingerprint(name)
    assert sidecar["patches_total"] == sidecar["patches"] + sidecar["init"]["patches_total"]
    assert "research use" in sidecar["terms"]
    # The tiny validation image codes at more bits than the preset's real target: lift the target.
    monkeypatch.setitem(TARGET_BPP, name, 100.0)
    # Into an empty models folder the candidate ships; a second time it is not better than itself.
    shipped = tmp_path / "models"
    argv = ["ship", str(candidates), "--preset", name, "--models-dir", str(shipped)]
    assert cli.train_main([*argv, "--data", str(data_dir)]) == 0
    assert (shipped / f"{name}.npz").read_bytes() == (candidates / f"{name}.npz").read_bytes()
    capsys.readouterr()
    assert export.ship(candidates, name, shipped, data_dir) is False
    assert "not shipped" in capsys.readouterr().out
    # Over worse weights (same encoder and priors, so the same bpp; a perturbed decoder) it ships,
    # and the replaced weights go to the history the decoder quotes for their old files.
    with np.load(candidates / f"{name}.npz") as f:
        worse = {k: f[k] for k in f.files}
    rng = np.random.default_rng(0)
    for k in worse:
        if k.startswith("decoder/"):
            worse[k] = (worse[k] + rng.normal(0, 0.05, worse[k].shape)).astype(np.float16)
    np.savez(shipped / f"{name}.npz", **worse)
    worse_fp = fingerprint(worse).hex()
    assert export.ship(candidates, name, shipped, data_dir) is True
    history = json.loads((shipped / f"{name}.json").read_text())["earlier"]
    assert [e["fingerprint"] for e in history] == [worse_fp]


def test_export_refuses_another_training_set(dry_run, tmp_path, capsys):
    name = TRAINED[0]
    other = tmp_path / "other"
    other.mkdir()
    for i in range(3):
        iio.imwrite(other / f"x{i}.png", smooth_image(64, 64, seed=100 + i))
    argv = ["export", str(dry_run), "--preset", name, "--models-dir", str(tmp_path)]
    assert cli.train_main([*argv, "--data", str(other)]) == 1
    assert "is not the training set" in capsys.readouterr().err


def test_an_unknown_preset_is_bad_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.train_main(["gpu-run", "--presets", "16c,99c", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "unknown preset '99c'" in capsys.readouterr().err


def test_a_failing_preset_stops_the_call_at_once(data_dir, tmp_path):
    """A NaN rate weight makes the first check step's loss NaN: exit 1 before any training."""
    args = ["--dry-run", "--presets", "16c", "--lmbda", "nan"]
    result = _gpu_run([*args, "--data", str(data_dir), "--out", str(tmp_path)], tmp_path)
    assert result.returncode == 1
    assert "16c failed its first steps" in result.stderr
    assert not (tmp_path / "16c.npz").exists()


def test_the_learning_rate_follows_the_budget(tmp_path):
    args = cli.build_gpu_run_parser().parse_args(["--out", str(tmp_path), "--lr", "1e-3"])
    schedule = gpu_run.GpuRun(args).schedule
    assert schedule.at(0.0) == pytest.approx(1e-3 / (0.02 * gpu_run.SCHEDULE_STEPS))  # warm-up
    assert schedule.at(0.01) == pytest.approx(1e-3 / 2, rel=0.02)
    assert schedule.at(0.3) == pytest.approx(1e-3)  # held to half the budget
    assert schedule.at(0.75) == pytest.approx(1e-3 * 0.55)  # half-way down the cosine
    assert schedule.at(1.0) == schedule.at(2.0) == pytest.approx(1e-4)


def test_ship_takes_a_candidate_within_the_rate_target_with_enough_ssim_gain():
    target = TARGET_BPP["32c"]
    shipped = {"bpp": 0.78, "ssim": 0.855}
    assert export._better("32c", {"bpp": target, "ssim": 0.880}, shipped)[0]  # more bits: fine
    assert export._better("32c", {"bpp": target * 1.009, "ssim": 0.880}, shipped)[0]
    assert not export._better("32c", {"bpp": target * 1.02, "ssim": 0.880}, shipped)[0]
    assert not export._better("32c", {"bpp": 0.70, "ssim": 0.856}, shipped)[0]  # gain < 0.002
    assert export._better("32c", {"bpp": 0.70, "ssim": 0.8571}, shipped)[0]
    # A name without a target keeps the older rule: higher SSIM at an equal or lower rate.
    assert export._better("t8", {"bpp": 0.78, "ssim": 0.8551}, shipped)[0]
    assert not export._better("t8", {"bpp": 0.79, "ssim": 0.9}, shipped)[0]


def test_a_diverging_preset_is_rolled_back_and_never_saved_broken(data_dir, tmp_path):
    """At lr 10 every interval diverges: each is rolled back (lr halved) and the weights written
    are the last good ones, here the shipped weights the run started from."""
    args = ["--dry-run", "--presets", "16c", "--lr", "10"]
    result = _gpu_run([*args, "--data", str(data_dir), "--out", str(tmp_path)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rolled back" in result.stdout
    entry = json.loads((tmp_path / gpu_run.RUN_JSON).read_text())["presets"]["16c"]
    assert entry["rollbacks"] >= 1 and entry["lr_scale"] == 0.5 ** entry["rollbacks"]
    # Compared by value: the lr-0 check steps may turn a shipped -0.0 into +0.0 (w - 0 * g),
    # which changes the fingerprint (over float16 bytes) but not the weights.
    with np.load(tmp_path / "16c.npz") as f, np.load(models_dir() / "16c.npz") as shipped:
        assert sorted(f.files) == sorted(shipped.files)
        for key in f.files:
            np.testing.assert_array_equal(f[key], shipped[key].astype(np.float32), err_msg=key)
