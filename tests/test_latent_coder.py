"""The latent coder alone: reading latents needs no network and never imports Keras."""

import json
import os
import shutil
import subprocess
import sys
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

import l3ic
from l3ic import L3ICError, api, latent_coder
from l3ic.datasets.convert import convert

# Runs in a fresh interpreter: every latent reader, then the heavy modules it imported.
READERS = """
import json, sys
import l3ic
from l3ic.cli import main
from l3ic.datasets.latent_files import LatentFiles

data = open(sys.argv[1], "rb").read()
latent, meta = l3ic.read_latent(data, channels=[0, 2])
f = l3ic.open(sys.argv[1])
part = f.latent(channels=[1])
assert main(["info", sys.argv[1], "--json"]) == 0
files = LatentFiles(sys.argv[2], top_channels=3)
x, label = files[0]
heavy = sorted(m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules)
print(json.dumps({"shapes": [latent.shape, part.shape, x.shape], "heavy": heavy}))
"""


@pytest.fixture
def converted(presets, tmp_path):
    src = tmp_path / "src"
    (src / "cat").mkdir(parents=True)
    iio.imwrite(src / "cat" / "a.png", smooth_image(24, 40))
    convert(src, tmp_path / "dst", preset="16c", progress=False)
    return tmp_path / "dst"


def test_latent_readers_import_no_keras(presets, converted, tmp_path):
    path = converted / "cat" / "a.l3ic"
    env = {**os.environ, "L3IC_MODELS_DIR": str(presets)}
    out = subprocess.run(
        [sys.executable, "-c", READERS, str(path), str(converted)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shapes"] == [[3, 5, 2], [3, 5, 1], [3, 5, 3]]
    assert result["heavy"] == []


def test_coder_reads_what_the_codec_writes(presets):
    x = smooth_image(30, 45, seed=2)
    data = l3ic.compress(x, preset="16c")
    codec, coder = api.get_codec("16c"), latent_coder.get_coder("16c")
    np.testing.assert_array_equal(coder.read(data)[0], codec.encode_latent(x))
    assert coder.fingerprint == codec.fingerprint and coder.preset == codec.preset == "16c"
    assert coder.pack(coder.read(data)[0], (30, 45)) == data


def test_coder_refuses_bad_latents_and_channel_numbers(presets):
    coder = latent_coder.get_coder("16c")
    for bad in (np.zeros((2, 2, 15), np.int8), np.full((2, 2, 16), 17), np.zeros((2, 2, 16))):
        with pytest.raises(L3ICError, match="latent"):
            coder.pack(bad, (16, 16))
    data = coder.pack(np.zeros((2, 2, 16), np.int8), (16, 16))
    with pytest.raises(L3ICError, match="top_channels=k"):
        coder.read(data, channels=3)
    with pytest.raises(L3ICError, match="0..16"):
        coder.top_channels(17)


def test_codec_refuses_weights_its_sidecar_does_not_describe(presets, tmp_path, monkeypatch):
    shutil.copy(presets / "16c.npz", tmp_path / "16c.npz")
    meta = json.loads((presets / "16c.json").read_text())
    (tmp_path / "16c.json").write_text(json.dumps({**meta, "fingerprint": "00" * 8}))
    monkeypatch.setenv("L3IC_MODELS_DIR", str(tmp_path))
    with pytest.raises(L3ICError, match="not those its sidecar describes"):
        l3ic.Codec("16c")


def test_old_names_still_work_with_a_deprecation_warning(presets, tmp_path):
    x = smooth_image(24, 40)
    data = l3ic.compress(x, preset="16c")
    with pytest.warns(DeprecationWarning, match="preset="):
        assert l3ic.compress(x, model="16c") == data
    with pytest.warns(DeprecationWarning, match="top_channels=k"):
        old = l3ic.decompress(data, channels=4)
    np.testing.assert_array_equal(old, l3ic.decompress(data, top_channels=4))
    path = tmp_path / "a.l3ic"
    path.write_bytes(data)
    f = l3ic.open(path)
    with pytest.warns(DeprecationWarning, match=r"shape, \(H, W\)"):
        assert f.size == (40, 24) and f.shape == (24, 40)
    codec = api.get_codec("16c")
    q = codec.encode_latent(x)
    with pytest.warns(DeprecationWarning, match="shape="):
        np.testing.assert_array_equal(codec.decode_latent(q, size=(24, 40)), l3ic.decompress(data))
    with pytest.warns(DeprecationWarning, match="Codec.preset"):
        assert codec.name == "16c"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        l3ic.decompress(data, channels=[0, 1])
        codec.decode_latent(q, shape=(24, 40))


def test_cli_old_options_still_work_with_a_warning(presets, tmp_path, capsys):
    from l3ic.cli import main

    src = tmp_path / "a.png"
    iio.imwrite(src, smooth_image(24, 40))
    assert main(["compress", "--model", "16c", str(src)]) == 0
    assert "--model is deprecated" in capsys.readouterr().err
    out = tmp_path / "p.png"
    assert main(["decompress", str(tmp_path / "a.l3ic"), "--channels", "3", "-o", str(out)]) == 0
    assert "--channels is deprecated" in capsys.readouterr().err
    expected = l3ic.decompress((tmp_path / "a.l3ic").read_bytes(), top_channels=3)
    np.testing.assert_array_equal(iio.imread(out), expected)
    assert l3ic.open(tmp_path / "a.l3ic").preset == "16c"


def test_version1_index_is_read_with_its_preset(converted):
    from l3ic.datasets.folder_index import INDEX_NAME, read_index

    index = json.loads((converted / INDEX_NAME).read_text())
    assert index["version"] == 2 and index["preset"] == "16c"
    old = {**index, "version": 1, "model": index.pop("preset")}
    del old["preset"]
    (converted / INDEX_NAME).write_text(json.dumps(old))
    assert read_index(converted)["preset"] == "16c"
    assert l3ic.LatentFiles(converted).preset == "16c"
