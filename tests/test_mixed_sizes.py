"""Every loader on a folder that mixes portrait, landscape and square images.

Batches never mix shapes, every image comes once per epoch, and ``model.fit`` trains on them
with every backend (on TensorFlow, Keras fixes its input spec from the first two batches).
"""

import importlib.util
import os
import subprocess
import sys

import imageio.v3 as iio
import keras
import numpy as np
import pytest
from support import smooth_image

import l3ic
from l3ic.datasets.convert import convert
from l3ic.datasets.keras_data import LatentDataset, ShardBatches, _spec_pair_first, as_tf_dataset
from l3ic.datasets.latent_shards import LatentShards
from l3ic.datasets.shard_convert import convert_shards

# (class, height, width, count): 5 landscape, 4 portrait and 2 square images, in 2 classes.
SIZES = [("cat", 24, 40, 3), ("cat", 40, 24, 2), ("dog", 24, 40, 2), ("dog", 40, 24, 2)]
SIZES += [("dog", 32, 32, 2)]
IMAGES = sum(n for *_, n in SIZES)
LATENT_SHAPES = {(3, 5), (5, 3), (4, 4)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, models_dir):
    """(converted folder, shards folder) of the mixed images, with the test 16c preset."""
    mp = pytest.MonkeyPatch()
    mp.setenv("L3IC_MODELS_DIR", str(models_dir))
    from l3ic import api, latent_coder

    api._shared_codec.cache_clear()
    latent_coder.get_coder.cache_clear()
    root = tmp_path_factory.mktemp("mixed")
    k = 0
    for label, h, w, count in SIZES:
        (root / "src" / label).mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            iio.imwrite(root / "src" / label / f"{k:02d}.png", smooth_image(h, w, seed=k))
            k += 1
    convert(root / "src", root / "files", preset="16c", progress=False)
    convert_shards(root / "src", root / "shards", "16c", shard_size=3000, progress=False)
    yield root / "files", root / "shards"
    mp.undo()
    api._shared_codec.cache_clear()
    latent_coder.get_coder.cache_clear()


def _classifier(depth: int) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((None, None, depth)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _check_batches(batches) -> None:
    """Each batch one latent shape, all images once, all shapes seen."""
    shapes = set()
    for x, y in batches:
        assert x.ndim == 4 and x.shape[0] == len(y) and x.shape[3] == 16
        shapes.add(tuple(x.shape[1:3]))
    assert sum(len(y) for _, y in batches) == IMAGES and shapes == LATENT_SHAPES


@pytest.mark.parametrize("seed", range(6))
def test_fit_on_tensorflow_whatever_the_order(folders, seed):
    files, shards = folders
    ds = LatentDataset(files, batch_size=2, shuffle=True, seed=seed)
    _check_batches([ds[i] for i in range(len(ds))])
    # The first two batches span the batch sizes and both latent sides, so Keras's spec
    # is (None, None, None, 16).
    (x0, _), (x1, _) = ds[0], ds[1]
    assert all(a != b for a, b in zip(x0.shape[:3], x1.shape[:3], strict=True))
    _classifier(16).fit(ds, epochs=2, verbose=0)
    _classifier(16).fit(ShardBatches(shards, batch_size=2, seed=seed), epochs=2, verbose=0)


def test_the_spec_pair_covers_what_varies():
    key = {"a": (3, 5), "b": (5, 3), "c": (4, 4)}
    plan = [(key["a"], [1, 2]), (key["a"], [3, 4]), (key["b"], [5, 6]), (key["b"], [7])]
    assert _spec_pair_first(plan)[:2] == [[1, 2], [7]]  # differ in batch size, h and w
    same = [(key["c"], [1, 2]), (key["c"], [3, 4]), (key["c"], [5, 6])]
    assert _spec_pair_first(same) == [[1, 2], [3, 4], [5, 6]]  # nothing varies: as planned


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fit_on_jax_and_torch(folders, backend, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.fail(f"{backend} is not installed: pip install '.[test]' installs it")
    files, shards = folders
    script = (
        "import sys, keras; from l3ic.datasets.keras_data import LatentDataset, ShardBatches\n"
        "m = keras.Sequential([keras.Input((None, None, 16)),"
        " keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])\n"
        "m.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))\n"
        "h = m.fit(LatentDataset(sys.argv[1], batch_size=2, seed=3), epochs=2, verbose=0)\n"
        "g = m.fit(ShardBatches(sys.argv[2], batch_size=2, seed=3), epochs=1, verbose=0)\n"
        "print(len(h.history['loss']) + len(g.history['loss']))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend}  # the fixture set L3IC_MODELS_DIR
    out = subprocess.run(
        [sys.executable, "-c", script, str(files), str(shards)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "3"


def test_streamed_shards_in_batches_of_one_shape(folders):
    torch = pytest.importorskip("torch")
    import webdataset as wds

    from l3ic.datasets.torch_data import TorchLatentShards

    files, shards = folders
    loader = torch.utils.data.DataLoader(LatentDataset(files, batch_size=2), batch_size=None)
    _check_batches([(x.numpy(), y.numpy()) for x, y in loader])
    _check_batches(list(LatentShards(shards, batch_size=2, shuffle=True, seed=4)))
    data = TorchLatentShards(shards, shuffle=True, batch_size=2)
    data.set_epoch(1)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2)
    _check_batches([(x.numpy(), y.numpy()) for x, y in loader])
    pipe = wds.DataPipeline(TorchLatentShards(shards), wds.shuffle(5), l3ic.size_batches(3))
    _check_batches(list(pipe))
    _check_batches([(x.numpy(), y.numpy()) for x, y in as_tf_dataset(LatentShards(shards), 4)])
    batched = as_tf_dataset(LatentShards(shards, batch_size=4))
    _check_batches([(x.numpy(), y.numpy()) for x, y in batched])


def test_size_batches_bounds_what_it_holds():
    """Many sizes and a small limit: the fullest bucket leaves early; nothing is lost."""
    rng = np.random.default_rng(0)
    samples = [(np.zeros((int(rng.integers(1, 6)), 2)), i) for i in range(200)]
    batches = list(l3ic.size_batches(4, max_held=8)(samples))
    assert sorted(int(i) for _, y in batches for i in y) == list(range(200))
    assert all(len(y) <= 4 and y.dtype == np.int32 for _, y in batches)
    assert all(len({s.shape for s in x}) == 1 for x, _ in batches)
    with pytest.raises(l3ic.L3ICError, match="batch_size"):
        l3ic.size_batches(0)
