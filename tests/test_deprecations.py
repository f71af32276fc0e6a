"""Every old spelling that l3ic 0.19 renamed still works until 0.20, and warns.

The module paths of l3ic.datasets and l3ic.training (docs/layout.md, "Rooms"), the count of
channels (``num_channels``) and ``l3ic train --channels``.
"""

import importlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from support import untrained_codec

import l3ic
from l3ic import get_coder
from l3ic.lazy import L3ICFile
from l3ic.training import cli as training_cli
from l3ic.training.recipe import Recipe

MOVED = {
    "compress_files": "datasets.compress_files",
    "convert": "datasets.convert",
    "shards": "datasets.shards",
    "shard_convert": "datasets.shard_convert",
    "latent_files": "datasets.latent_files",
    "latent_shards": "datasets.latent_shards",
    "torch_data": "datasets.torch_data",
    "data": "datasets.keras_data",
    "train_data": "training.data",
    "train_rules": "training.rules",
    "train_recipe": "training.recipe",
    "train": "training.loop",
    "entropy_model": "training.entropy_model",
    "export": "training.export",
    "gpu_run": "training.gpu_run",
    "cli_train": "training.cli",
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_warns_and_is_the_new_module(old):
    new = importlib.import_module(f"l3ic.{MOVED[old]}")
    sys.modules.pop(f"l3ic.{old}", None)
    with pytest.warns(DeprecationWarning, match=rf"l3ic\.{old} is deprecated .*l3ic\.{MOVED[old]}"):
        module = importlib.import_module(f"l3ic.{old}")
    assert module is new


def test_the_old_paths_are_the_ones_layout_names():
    from test_layout import layers

    old_paths = {m for m, layer in layers().items() if layer == max(layers().values())}
    assert old_paths - {"_moved"} == set(MOVED)


def test_python_m_l3ic_train_runs_l3ic_train():
    done = subprocess.run(
        [sys.executable, "-m", "l3ic.train", "export", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: l3ic train export" in done.stdout
    assert "python -m l3ic.train is deprecated: use python -m l3ic.training" in done.stderr


def test_channels_as_a_count_is_num_channels():
    codec = untrained_codec(8)
    coder = get_coder("16c")
    assert (codec.num_channels, coder.num_channels) == (8, 16)
    with pytest.warns(DeprecationWarning, match="Codec.channels is deprecated"):
        assert codec.channels == 8
    with pytest.warns(DeprecationWarning, match="LatentCoder.channels is deprecated"):
        assert coder.channels == 16


def test_l3ic_train_channels_is_num_channels(capsys, tmp_path):
    parser = training_cli.build_train_parser()
    args = parser.parse_args(["--preset", "16c", "--channels", "8", "--out", str(tmp_path)])
    assert training_cli.recipe_of(args).num_channels == 8
    assert "--channels is deprecated: use --num-channels" in capsys.readouterr().err
    args = parser.parse_args(["--preset", "16c", "--out", str(tmp_path)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert training_cli.recipe_of(args).num_channels == 16
    assert capsys.readouterr().err == ""


def test_a_run_config_of_0_18_reads_its_channels():
    assert Recipe.from_dict({"channels": 8, "steps": 5}).num_channels == 8
    assert Recipe.from_dict({"num_channels": 16}).num_channels == 16


def test_codec_unpack_and_partial_latent_are_read_latent():
    codec = untrained_codec(8)
    data = codec.compress(np.full((16, 24, 3), 128, np.uint8))
    with pytest.warns(DeprecationWarning, match="Codec.unpack_latent is deprecated"):
        old = codec.unpack_latent(data, [1, 2])[0]
    assert np.array_equal(old, codec.read_latent(data, [1, 2])[0])
    with pytest.warns(DeprecationWarning, match="Codec.partial_latent is deprecated"):
        old = codec.partial_latent(data, [1])[0]
    assert np.array_equal(old, codec.read_partial_latent(data, [1])[0])


def test_l3ic_train_export_name_is_preset(capsys, tmp_path):
    assert training_cli.train_main(["export", str(tmp_path), "--name", "16c"]) == 1
    err = capsys.readouterr().err
    assert "--name is deprecated: use --preset" in err and "is not a training run" in err


def test_a_warning_points_at_the_line_outside_l3ic():
    """However deep in l3ic an old spelling is noticed (here L3ICFile.image -> decompress ->
    channels_arg), or through the import machinery, the warning names the caller's line."""
    data = l3ic.compress(np.full((16, 24, 3), 128, np.uint8), preset="16c")
    with pytest.warns(DeprecationWarning, match="channels=k") as caught:
        L3ICFile(data).image(3)
    assert [w.filename for w in caught] == [__file__]
    sys.modules.pop("l3ic.shards", None)
    with pytest.warns(DeprecationWarning, match="l3ic.shards is deprecated") as caught:
        importlib.import_module("l3ic.shards")
    assert [w.filename for w in caught] == [__file__]
