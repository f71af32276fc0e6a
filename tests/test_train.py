"""Training smoke tests (tiny images made here) and quality floors of the shipped presets."""

import csv
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import l3ic
from l3ic import cpu, metrics
from l3ic.codec import Codec
from l3ic.evaluate import CURVE_SCALES
from l3ic.presets import models_dir
from l3ic.training import cli, data, loop, recipe, rules

TRAIN_IMAGES = 6
ARGS = ["--num-channels", "8", "--batch", "4", "--patch", "32", "--lr", "1e-3", "--steps", "60"]
ARGS += ["--mixed-precision", "off"]


def _smooth_image(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A (size, size, 3) uint8 image of smooth random colour gradients and a bright square."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    planes = [rng.uniform(0.2, 0.8) + rng.uniform(-0.3, 0.3) * (xx + yy * c) for c in (1, -1, 0.5)]
    x = np.stack(planes, axis=-1)
    top, left = rng.integers(0, size // 2, 2)
    x[top : top + size // 3, left : left + size // 3] = rng.uniform(0.7, 1.0)
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """6 training images and 1 validation image (by the sha1 rule of their names)."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    train_names, val_names, i = [], [], 0
    while len(train_names) < TRAIN_IMAGES or not val_names:
        name = f"img{i:03d}.png"
        (val_names if data.is_validation(name) else train_names).append(name)
        i += 1
    for name in train_names[:TRAIN_IMAGES] + val_names[:1]:
        iio.imwrite(folder / name, _smooth_image(rng))
    return folder


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory) -> Path:
    """An uninterrupted 60-step run, validated every 20 steps."""
    out = tmp_path_factory.mktemp("full")
    argv = [*ARGS, "--data", str(data_dir), "--out", str(out), "--val-every", "20"]
    assert cli.train_main(argv) == 0
    return out


def _log(run: Path) -> list[dict]:
    with open(run / loop.LOG_NAME) as f:
        return list(csv.DictReader(f))


def test_patch_batches_depend_only_on_seed_and_step(data_dir):
    images = data.load_images(data.list_images(data_dir))
    a = data.PatchSampler(images, 4, 32, seed=3)
    b = data.PatchSampler(images, 4, 32, seed=3)
    assert np.array_equal(a(5), b(5))
    assert not np.array_equal(a(5), a(6))
    # Every image is visited once per epoch.
    seen = np.concatenate([a.indices(s) for s in range(len(images) // 2)])
    assert sorted(seen[: len(images)]) == list(range(len(images)))


def test_schedule_warms_up_holds_then_decays():
    lr = rules.HoldCosine(1e-3, total=100, decay_start=0.5, final=0.1, warmup=0.1)
    at = [float(lr(step)) for step in (0, 4, 9, 30, 49, 75, 100)]
    assert at[0] == pytest.approx(1e-4) and at[1] == pytest.approx(5e-4)  # (step + 1) / 10
    assert at[2] == at[3] == at[4] == pytest.approx(1e-3)
    assert at[5] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half-way down the cosine
    assert at[6] == pytest.approx(1e-4)
    assert float(rules.HoldCosine(1e-3, total=100)(0)) == pytest.approx(1e-3)  # no warm-up
    # The same schedule read at a fraction of its length (the GPU run's time budget).
    assert lr.at(0.75) == pytest.approx(float(lr(75)))
    assert lr.at(2.0) == pytest.approx(1e-4) and lr.at(-1.0) == pytest.approx(1e-4)


def test_steering_moves_lmbda_toward_the_target_every_step():
    s = rules.RateSteering(target=0.8, lmbda0=1e-3, gain=0.01, est_per_real=0.9)
    assert s.target_est == pytest.approx(0.72)
    up = float(s.step(1e-3, 0.9))  # more bits than the target: weigh the rate more
    down = float(s.step(1e-3, 0.6))
    assert up > 1e-3 > down
    assert float(s.step(1e-3, 0.72)) == pytest.approx(1e-3)
    assert up == pytest.approx(1e-3 * np.exp(0.01 * (0.9 - 0.72) / 0.72), rel=1e-6)
    assert float(s.step(1e-3, 1e6)) == pytest.approx(1e-3 * rules.STEER_RANGE)  # clipped
    s.calibrate(0.75, 0.8)  # the batches' estimate over the real validation rate, re-measured
    assert s.est_per_real == pytest.approx(0.9375) and s.target_est == pytest.approx(0.75)


def test_a_steered_run_lowers_lmbda_below_a_rate_it_cannot_reach(data_dir, tmp_path):
    """Aimed at 20 bpp, far above what 8 channels code, lmbda falls every step from its start."""
    argv = [*ARGS, "--data", str(data_dir), "--out", str(tmp_path), "--val-every", "30"]
    argv += ["--target-bpp", "20", "--lmbda", "1e-3", "--steer-gain", "0.01"]
    assert cli.train_main(argv) == 0
    lmbdas = [float(r["lmbda"]) for r in _log(tmp_path)]
    assert lmbdas[0] < 1e-3 and lmbdas[1] < lmbdas[0]
    # The calibration of the estimate went into the checkpoint, for an exact resume.
    assert 0.0 < float(loop.read_checkpoint(tmp_path)["est_per_real"]) != 1.0


def test_mixed_precision_auto_follows_the_hardware(monkeypatch):
    choose = recipe.choose_mixed_precision
    assert choose("auto", gpu=True)[0] is True
    assert choose("on", gpu=False) == (True, "on (asked)")
    assert choose("off", gpu=True) == (False, "off (asked)")
    monkeypatch.setattr(recipe, "cpu_has_fast_bf16", lambda: ["amx_bf16"])
    on, why = choose("auto", gpu=False)
    assert on is True and "amx_bf16" in why
    monkeypatch.setattr(recipe, "cpu_has_fast_bf16", lambda: [])
    on, why = choose("auto", gpu=False)
    assert on is False and why.startswith("auto: off")


def test_the_run_records_the_bf16_choice_and_the_cpu(full_run):
    cfg = json.loads((full_run / loop.CONFIG_NAME).read_text())
    assert cfg["mixed_precision"] is False  # --mixed-precision off in ARGS
    assert cfg["mixed_precision_choice"] == "off (asked)"
    assert cfg["cpu"] == cpu.cpu_model()


def test_a_warmup_outside_0_1_exits_1(tmp_path, capsys):
    argv = ["--preset", "16c", "--steps", "2", "--warmup", "1.5", "--out", str(tmp_path / "r")]
    assert cli.train_main(argv) == 1
    assert "--warmup" in _error_line(capsys)


def test_loss_goes_down_and_log_is_complete(full_run):
    rows = _log(full_run)
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    assert float(rows[-1]["loss"]) < 0.8 * float(rows[0]["loss"])
    assert float(rows[-1]["val_psnr"]) > float(rows[0]["val_psnr"])
    assert float(rows[-1]["val_bpp"]) > 0


def test_resume_equals_uninterrupted_run(data_dir, tmp_path):
    """Stop at step 30 of 60 and resume: weights, optimizer state, the steered rate weight and
    the steering's calibration are bit for bit equal (with the default SSIM term on, and random
    quantisation scales, and the moving average of the weights)."""
    # Validated every 10 steps, so the run stopped at step 30 recalibrates its steering where the
    # uninterrupted run does.
    base = [*ARGS, "--data", str(data_dir), "--val-every", "10", "--target-bpp", "1.0"]
    base += ["--scale-range", "1.25", "--ema", "0.9"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli.train_main([*base, "--out", str(full)]) == 0
    argv = [*base, "--out", str(part), "--ckpt-every", "10", "--stop-at", "30"]
    assert cli.train_main(argv) == 0
    assert int(loop.read_checkpoint(part)["step"]) == 30
    assert cli.train_main(["--out", str(part), "--resume"]) == 0
    f, g = loop.read_checkpoint(full), loop.read_checkpoint(part)
    assert int(g["step"]) == 60
    assert sorted(f) == sorted(g)
    for key in set(f) - {"seconds"}:
        np.testing.assert_array_equal(g[key], f[key], err_msg=key)
    shards = sorted(p.name for p in part.glob("ckpt-*.npz"))
    assert shards and all(name.startswith("ckpt-00000060-") for name in shards)  # old ones gone


def test_with_ema_the_average_is_validated_and_exported_while_the_latest_weights_train(
    data_dir, tmp_path, capsys
):
    from l3ic.presets import model_arrays, read_arrays

    out = tmp_path / "run"
    argv = [*ARGS, "--steps", "20", "--ema", "0.9", "--data", str(data_dir), "--out", str(out)]
    assert cli.train_main(argv) == 0
    run = loop.Run(out, json.loads((out / loop.CONFIG_NAME).read_text()), fresh=True)
    run.restore()
    latest = model_arrays(run.net)
    with loop.averaged_weights(run.net):
        average = model_arrays(run.net)
    assert any(not np.array_equal(average[k], latest[k]) for k in latest)
    for k, a in model_arrays(run.net).items():  # the latest weights are back after the block
        np.testing.assert_array_equal(a, latest[k], err_msg=k)
    argv = ["export", str(out), "--name", "t8", "--models-dir", str(tmp_path / "m")]
    assert cli.train_main(argv) == 0
    exported = read_arrays(tmp_path / "m" / "t8.npz")
    for k, a in exported.items():
        np.testing.assert_array_equal(a, average[k].astype(np.float16), err_msg=k)
    assert json.loads((tmp_path / "m" / "t8.json").read_text())["recipe"]["ema"] == 0.9
    capsys.readouterr()
    assert cli.train_main([*ARGS, "--ema", "1", "--out", str(tmp_path / "bad")]) == 1
    assert "--ema must be a momentum in [0, 1)" in capsys.readouterr().err


def test_the_steering_computes_in_float32_whatever_its_inputs():
    """A resumed run reads the calibration back as a float where the uninterrupted run holds a
    numpy float64: both must steer the rate weight to the same float32."""
    a = rules.RateSteering(1.0, 1e-3, 8e-3, est_per_real=np.float64(0.2126392459869))
    b = rules.RateSteering(1.0, 1e-3, 8e-3, est_per_real=0.2126392459869)
    for bpp in np.linspace(0.05, 0.4, 50):
        wa = np.asarray(a.step(np.float32(1.55e-3), float(bpp)))
        wb = np.asarray(b.step(np.float32(1.55e-3), float(bpp)))
        assert wa.dtype == wb.dtype == np.float32 and wa == wb


def _error_line(capsys) -> str:
    """The one stderr line of a command that failed on bad input."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("l3ic: error: "), err
    return err


def test_resume_refuses_a_missing_run(tmp_path, capsys):
    assert cli.train_main(["--out", str(tmp_path / "none"), "--resume"]) == 1
    assert "not found" in _error_line(capsys)


# ----- one exit-code policy: 1 for bad input (one line on stderr), 2 for bad usage ----------


def test_train_on_a_missing_data_folder_exits_1(tmp_path, capsys):
    argv = ["--preset", "16c", "--steps", "2", "--data", str(tmp_path / "none")]
    assert cli.train_main([*argv, "--out", str(tmp_path / "run")]) == 1
    assert "training data folder not found" in _error_line(capsys)


def test_export_of_a_missing_run_exits_1(tmp_path, capsys):
    argv = ["export", str(tmp_path / "none"), "--preset", "16c", "--models-dir", str(tmp_path)]
    assert cli.train_main(argv) == 1
    assert "is not a training run" in _error_line(capsys)


def test_ship_of_a_missing_candidate_exits_1(tmp_path, capsys, monkeypatch):
    from l3ic.presets import FROZEN

    monkeypatch.delitem(FROZEN, "64c", raising=False)  # frozen, ship would refuse it first
    argv = ["ship", str(tmp_path / "none"), "--preset", "64c", "--models-dir", str(tmp_path)]
    assert cli.train_main(argv) == 1
    assert "no candidate" in _error_line(capsys)


def test_a_frozen_preset_is_not_shipped_over(tmp_path, capsys):
    from l3ic.presets import FROZEN, fingerprint, read_arrays

    for preset, weights in FROZEN.items():  # the frozen weights are the ones installed
        assert fingerprint(read_arrays(models_dir() / f"{preset}.npz")).hex() == weights
        argv = ["ship", str(tmp_path), "--preset", preset, "--models-dir", str(tmp_path)]
        assert cli.train_main(argv) == 1
        assert "is frozen" in _error_line(capsys)


def test_evaluate_of_a_missing_folder_exits_1(tmp_path, capsys):
    assert cli.evaluate_main([str(tmp_path / "none"), "--preset", "16c"]) == 1
    assert "image folder not found" in _error_line(capsys)


@pytest.mark.parametrize(
    "argv",
    [
        ["--preset", "99c", "--out", "x"],
        ["export", "run"],  # --preset is required
        ["ship", "dir", "--bogus"],
        ["contexts", "--preset", "99c"],
    ],
)
def test_bad_usage_exits_2(argv):
    with pytest.raises(SystemExit) as stop:
        cli.train_main(argv)
    assert stop.value.code == 2


def test_export_writes_weights_and_a_usable_sidecar(full_run, tmp_path, data_dir):
    # --name is the old spelling of --preset, still accepted.
    argv = ["export", str(full_run), "--name", "t8", "--models-dir", str(tmp_path)]
    assert cli.train_main(argv) == 0
    sidecar = json.loads((tmp_path / "t8.json").read_text())
    assert sidecar["status"] == "cpu-short-schedule"
    assert sidecar["steps"] == 60
    assert sidecar["cpu"] == cpu.cpu_model()
    assert sidecar["mixed_precision_choice"] == "off (asked)"
    assert sidecar["training_data"]["files"] == TRAIN_IMAGES
    assert sorted(sidecar["channel_order"]) == list(range(8))
    assert all(sum(p) == 4096 and min(p) >= 1 for p in sidecar["priors"])
    assert abs(sidecar["float16_psnr_delta_db"]) < 0.05
    # The exported weights code an image through the codec's own path.
    run = loop.Run(full_run, json.loads((full_run / loop.CONFIG_NAME).read_text()))
    l3ic.presets.load_weights(run.net, tmp_path / "t8.npz")
    codec = Codec.from_model(run.net, "t8", sidecar)
    image = iio.imread(next(data_dir.glob("*.png")))
    assert codec.decompress(codec.compress(image)).shape == image.shape
    # The context tables of version 4, tied to these weights.
    with np.load(tmp_path / "t8.contexts.npz") as f:
        tables, fingerprint = f["tables"], str(f["fingerprint"])
    assert fingerprint == sidecar["fingerprint"]
    assert tables.shape == (8, 100, 32) and (tables.sum(axis=2) == 4096).all()
    # The scale curve (rate_control chooses presets by it), measured on these weights.
    curve = sidecar["scale_curve"]
    assert curve["fingerprint"] == sidecar["fingerprint"] and curve["images"] >= 1
    bpps = [p["bpp"] for p in curve["points"]]
    assert [p["scale"] for p in curve["points"]] == [round(s, 4) for s in CURVE_SCALES]
    assert bpps == sorted(bpps) and bpps[0] < bpps[-1]
    # `l3ic train curve` measures the same curve again for weights shipped without one.
    for suffix in (".npz", ".contexts.npz"):
        shutil.copy(tmp_path / f"t8{suffix}", tmp_path / f"16c{suffix}")
    (tmp_path / "16c.json").write_text(json.dumps({**sidecar, "scale_curve": None}))
    argv = ["curve", "--preset", "16c", "--models-dir", str(tmp_path), "--data", str(data_dir)]
    assert cli.train_main(argv) == 0
    again = json.loads((tmp_path / "16c.json").read_text())["scale_curve"]
    assert again["fingerprint"] == curve["fingerprint"]
    for a, b in zip(again["points"], curve["points"], strict=True):  # the header names "16c"
        assert (a["psnr"], a["ssim"]) == (b["psnr"], b["ssim"])  # not "t8": one byte more
        assert 0 < a["bpp"] - b["bpp"] < 0.01
    # `l3ic train contexts` learns the tables again for weights shipped without them.
    (tmp_path / "16c.contexts.npz").unlink()
    argv = ["contexts", "--preset", "16c", "--models-dir", str(tmp_path), "--data", str(data_dir)]
    assert cli.train_main(argv) == 0
    with np.load(tmp_path / "16c.contexts.npz") as f:
        assert f["tables"].shape == tables.shape and str(f["fingerprint"]) == fingerprint


def test_scale_for_rate_finds_the_scale_of_a_validation_rate(full_run, data_dir):
    """The scale ``scale_for_rate`` returns codes the validation split at most at the target, and
    weights with it folded in (``scale_latent``) code there at scale 1, as ``validate`` measures."""
    from l3ic.model import load_model, scale_latent
    from l3ic.presets import model_arrays
    from l3ic.training.entropy_model import scale_for_rate, validate

    train_files, val_files = data.split_files(data.list_images(data_dir))
    train, val = data.load_images(train_files), data.load_images(val_files)
    run = loop.Run(full_run, json.loads((full_run / loop.CONFIG_NAME).read_text()), fresh=True)
    run.restore()
    net = run.net
    codec = Codec.from_model(net, "t8", {})
    as_trained = validate(net, val, train)["bpp"]
    for ratio in (0.7, 1.4):
        scale, bpp, bpp_at_1 = scale_for_rate(codec, train, val, ratio * as_trained)
        assert bpp_at_1 == pytest.approx(as_trained)
        assert bpp <= ratio * as_trained and (scale < 1) == (ratio < 1)
        scaled = load_model(8, scale_latent(model_arrays(net), scale), patch=32)
        assert validate(scaled, val, train)["bpp"] == pytest.approx(bpp, rel=0.02)
    with pytest.raises(l3ic.L3ICError, match="no scale"):
        scale_for_rate(codec, train, val, 100.0)


def test_export_fits_the_rate_when_asked(full_run, tmp_path, data_dir, capsys):
    target = 0.8 * float(_log(full_run)[-1]["val_bpp"])
    argv = ["export", str(full_run), "--preset", "64c", "--models-dir", str(tmp_path)]
    argv += ["--data", str(data_dir), "--fit-rate", f"{target:.4f}"]
    assert cli.train_main(argv) == 0
    sidecar = json.loads((tmp_path / "64c.json").read_text())
    fit = sidecar["rate_fit"]
    assert fit["target_bpp"] == pytest.approx(target, abs=1e-4) and fit["scale"] < 1
    assert fit["bpp_fitted"] <= target < fit["bpp_as_trained"]
    assert sidecar["validation"]["bpp"] == pytest.approx(fit["bpp_fitted"], rel=0.02)
    # Without a value: the preset's own target, which only 16c, 32c and 64c have.
    for value, error in (
        (["-1"], "positive number"),
        (["abc"], "positive number"),
        ([], "no rate target"),
    ):
        argv = ["export", str(full_run), "--name", "t8", "--models-dir", str(tmp_path)]
        assert cli.train_main([*argv, "--fit-rate", *value]) == 1
        assert error in capsys.readouterr().err


@pytest.mark.parametrize("command", ["contexts", "curve"])
def test_contexts_and_curve_of_missing_weights_exit_1(tmp_path, capsys, command):
    argv = [command, "--preset", "16c", "--models-dir", str(tmp_path)]
    assert cli.train_main(argv) == 1
    assert "no weights" in _error_line(capsys)


# ----- quality floors of the shipped presets (measured values below) ----------------------

# preset: (PSNR floor in dB, bpp ceiling) on skimage's astronaut at 256x256 (every other pixel).
# Measured with the shipped weights, ONNX Runtime (OpenVINO bf16 within 0.04 dB and 0.001
# bpp): 32c 28.29 dB / 0.938 bpp (l3ic 0.16.0), 16c 26.46 / 0.601 (l3ic 0.19.2) and 64c
# 31.58 / 1.735 (l3ic 0.20.0), all 2026-12-07; the floors sit 0.5-1.5 dB and 10-13 % under.
FLOORS = {"16c": (25.8, 0.66), "32c": (27.8, 1.03), "64c": (30.1, 1.97)}


@pytest.mark.parametrize("preset", sorted(FLOORS))
def test_preset_quality_floor(preset):
    path = models_dir() / f"{preset}.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent: train and export it first (docs/training.md)")
    skdata = pytest.importorskip("skimage.data")
    image = np.ascontiguousarray(skdata.astronaut()[::2, ::2])
    coded = l3ic.compress(image, preset=preset)
    decoded = l3ic.decompress(coded)
    floor, ceiling = FLOORS[preset]
    assert metrics.psnr(image, decoded) > floor
    assert metrics.bpp(len(coded), 256, 256) < ceiling


def test_trunk_of_another_preset_loads_all_but_e3_and_d1(tmp_path):
    """--init-trunk: every layer that fits comes from the other preset; e3 and d1's kernel don't."""
    from l3ic.model import L3ICModel
    from l3ic.presets import load_matching, model_arrays, save_weights

    wide, narrow = L3ICModel(16), L3ICModel(8)
    for net in (wide, narrow):
        net(np.zeros((1, 16, 16, 3), dtype=np.float32))
    save_weights(wide, tmp_path / "wide.npz")
    skipped = load_matching(narrow, tmp_path / "wide.npz")
    assert sorted(skipped) == ["decoder/d1/kernel", "encoder/e3/bias", "encoder/e3/kernel"]
    a, b = model_arrays(wide), model_arrays(narrow)
    for key in set(a) - set(skipped):
        np.testing.assert_array_equal(b[key], a[key].astype(np.float16).astype(np.float32))


def test_a_diverging_run_stops_and_keeps_the_checkpoint_from_before(
    data_dir, tmp_path, monkeypatch, capsys
):
    psnrs = iter([30.0, 31.0, 26.5])  # validations at steps 20, 40, 60: the last 4.5 dB down
    monkeypatch.setattr(
        loop, "validate", lambda *a: {"psnr": next(psnrs), "ssim": 0.9, "bpp": 1.0, "bpp_est": 1.0}
    )
    argv = [*ARGS, "--data", str(data_dir), "--out", str(tmp_path), "--val-every", "20"]
    assert cli.train_main([*argv, "--ckpt-every", "20"]) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "checkpoint of step 40 is kept" in err
    assert int(loop.read_checkpoint(tmp_path)["step"]) == 40
    assert [row["step"] for row in _log(tmp_path)] == ["20", "40", "60"]


def test_one_divergence_rule_judges_intervals():
    guard = rules.DivergenceGuard()
    for loss in (0.01, 0.02):
        guard.add_loss(loss)
    assert guard.end_interval(10) == "ok"  # nothing to compare with yet: the first best
    assert guard.saved_step == 10 and guard.best_loss == pytest.approx(0.015)
    guard.add_loss(0.025)  # 1.67x the best: kept from being saved, not yet diverged
    assert guard.end_interval(20) == "unsaved" and guard.saved_step == 10
    guard.add_loss(0.5 * 3, steps=3)  # a sum of 3 steps: 33x the best
    assert guard.end_interval(30) == "diverged"
    guard.add_loss(float("nan"))
    assert guard.end_interval(40) == "diverged"
    guard.add_loss(0.012)
    assert guard.end_interval(50) == "ok" and guard.best_loss == pytest.approx(0.012)


def test_a_loss_spike_skips_the_checkpoint_and_a_divergence_stops_the_run(
    data_dir, tmp_path, monkeypatch, capsys
):
    verdicts = iter(["ok", "unsaved", "diverged"])  # the intervals ending at steps 20, 40, 60
    monkeypatch.setattr(rules.DivergenceGuard, "end_interval", lambda self, step: next(verdicts))
    argv = [*ARGS, "--data", str(data_dir), "--out", str(tmp_path), "--val-every", "100"]
    assert cli.train_main([*argv, "--ckpt-every", "20"]) == 1
    out, err = capsys.readouterr()
    assert "checkpoint not written" in out
    assert "diverged" in err
    assert int(loop.read_checkpoint(tmp_path)["step"]) == 20


def test_a_preset_sets_the_channels_and_ms_ssim_can_join_the_loss(data_dir, tmp_path):
    """--preset 16c trains 16 channels (unless --num-channels says otherwise); --ssim-kind ms-ssim
    reaches the model and the run's config."""
    argv = ["--preset", "16c", "--batch", "2", "--patch", "32", "--steps", "2"]
    argv += ["--mixed-precision", "off", "--ssim-weight", "0.1", "--ssim-kind", "ms-ssim"]
    assert cli.train_main([*argv, "--data", str(data_dir), "--out", str(tmp_path)]) == 0
    cfg = json.loads((tmp_path / loop.CONFIG_NAME).read_text())
    assert (cfg["num_channels"], cfg["ssim_kind"], cfg["ssim_weight"]) == (16, "ms-ssim", 0.1)
    arrays = loop.read_checkpoint(tmp_path)
    run = loop.Run(tmp_path, cfg, fresh=True)
    assert run.net.num_channels == 16 and run.net.ssim_kind == "ms-ssim"
    assert len(arrays) - 3 == len(run.net.variables) + len(run.net.optimizer.variables)


def test_a_resumed_log_keeps_its_own_columns(tmp_path):
    """A run begun by an older version (no val_ms_ssim column) goes on under its own header."""
    path = tmp_path / "log.csv"
    path.write_text("step,loss\n1,0.5\n")
    log = rules.RunLog(path, ("step", "loss", "val_ms_ssim"))
    log.write({"step": 2, "loss": 0.25, "val_ms_ssim": 0.9})
    assert path.read_text().splitlines() == ["step,loss", "1,0.5", "2,0.25"]


def test_validation_adds_ms_ssim_where_the_images_hold_five_scales():
    from l3ic.model import load_model
    from l3ic.training.entropy_model import validate

    net = load_model(8)
    rng = np.random.default_rng(5)
    big, small = (_smooth_image(rng, size) for size in (176, 48))
    assert set(validate(net, [small], [small])) == {"psnr", "ssim", "bpp", "bpp_est"}
    figures = validate(net, [big], [big])
    assert 0.0 < figures["ms_ssim"] < 1.0


def test_random_scales_are_log_uniform_per_step_and_the_step_uses_them():
    from l3ic.codebook import quantize
    from l3ic.model import load_model
    from l3ic.training.rules import step_scale

    scales = [step_scale(0, step, 2.0) for step in range(2000)]
    assert scales == [step_scale(0, step, 2.0) for step in range(2000)]  # (seed, step) alone
    assert scales != [step_scale(1, step, 2.0) for step in range(2000)]
    logs = np.log2(scales)
    assert -1 <= logs.min() < -0.95 and 0.95 < logs.max() <= 1 and abs(logs.mean()) < 0.05
    assert np.histogram(logs, bins=4, range=(-1, 1))[0].min() > 400  # uniform in log
    assert step_scale(0, 5, 1.0) == 1.0
    net = load_model(8, patch=32, seed=0)
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    z = np.asarray(net.encoder(x))
    net.train_scale.assign(1.5)
    out = net(x, training=False)
    np.testing.assert_allclose(np.asarray(out["z"]), 1.5 * z, rtol=1e-6)
    q = quantize(1.5 * z).astype(np.float32) / np.float32(1.5)
    np.testing.assert_allclose(np.asarray(out["y"]), np.asarray(net.decoder(q)), atol=1e-5)


def test_a_run_told_the_scale_trains_its_films_and_is_not_exported(data_dir, tmp_path, capsys):
    """--told-scale reaches the model and the config; its FiLMs learn (they start at zero) and
    export refuses the run, since no runtime decodes with them."""
    from l3ic.layers import FILM_WEIGHT_SUFFIX as SUFFIX

    run = tmp_path / "run"
    argv = [*ARGS, "--steps", "4", "--scale-range", "2", "--told-scale"]
    argv += ["--data", str(data_dir), "--out", str(run)]
    assert cli.train_main(argv) == 0
    cfg = json.loads((run / loop.CONFIG_NAME).read_text())
    assert cfg["told_scale"] is True
    restored = loop.Run(run, cfg, fresh=True)
    restored.restore()
    films = [v.numpy() for v in restored.net.decoder.weights if v.path.endswith(SUFFIX)]
    assert len(films) == 9 and all(np.any(f) for f in films)
    argv = ["export", str(run), "--preset", "16c", "--models-dir", str(tmp_path / "m")]
    assert cli.train_main(argv) == 1
    assert "--told-scale" in _error_line(capsys)
    assert not (tmp_path / "m" / "16c.npz").exists()


def test_bench_train_precision_times_the_training_step():
    # bench.train_precision builds l3ic's own training step from a Recipe: it broke once when
    # Recipe's fields were renamed, unnoticed because no test ran it.
    from bench.train_precision import time_steps

    assert time_steps("16c", batch=1, patch=32, steps=1, bf16=False) > 0
