"""examples/train_classifier.py runs end to end on a tiny labelled folder."""

import importlib.util
import json
from pathlib import Path

import imageio.v3 as iio
from support import smooth_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_classifier_one_epoch(presets, tmp_path, capsys):
    src = tmp_path / "labelled"
    for c, name in enumerate(("circles", "gradients")):
        (src / name).mkdir(parents=True)
        for i in range(4):
            iio.imwrite(src / name / f"{i}.png", smooth_image(16, 24, seed=10 * c + i))
    out = tmp_path / "results.json"
    argv = [str(src), "--work", str(tmp_path / "work"), "-m", "16c", "--epochs", "1"]
    results = load("train_classifier").main(
        [*argv, "--batch-size", "4", "--val-every", "4", "--seeds", "0", "1", "--json", str(out)]
    )
    assert json.loads(out.read_text()) == results
    assert results["classes"] == ["circles", "gradients"]
    assert (results["train_images"], results["val_images"]) == (6, 2)
    assert [(r["input"], r["seed"]) for r in results["runs"]] == [
        ("latents", 0),
        ("pixels", 0),
        ("latents", 1),
        ("pixels", 1),
    ]
    shapes = {r["input"]: r["shape"] for r in results["runs"]}
    assert shapes == {"latents": [2, 3, 16], "pixels": [16, 24, 3]}
    for r in results["runs"]:
        assert 0 <= r["val_accuracy"] <= 1 and r["seconds_per_epoch"] > 0
    s = results["summary"]["latents"]
    assert s["val_accuracy_min"] <= s["val_accuracy_mean"] <= s["val_accuracy_max"]
    assert "val accuracy" in capsys.readouterr().out
    assert (tmp_path / "work" / "l3ic-16c" / "train" / "shards.json").exists()


def test_progressive_curve(presets, tmp_path):
    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.png", smooth_image(16, 24, seed=i))
    argv = [str(tmp_path), "-m", "16c", "64c", "--ks", "0", "4", "--out", str(tmp_path / "out")]
    (result,) = load("progressive_curve").main(argv)  # 64c has no weights: skipped
    assert [row["k"] for row in result["curve"]] == [0, 4, 16]
    assert result["curve"][-1]["bpp_read"] < result["bpp"]
    assert (tmp_path / "out" / "progressive_curve.png").stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "progressive_curve.json").read_text())
    assert saved["presets"] == [result]
