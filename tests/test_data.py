"""Loaders over a converted folder: PyDataset (TensorFlow backend), tf.data, torch DataLoader."""

import imageio.v3 as iio
import keras
import numpy as np
import pytest
from support import smooth_image

import l3ic
from l3ic import L3ICError
from l3ic.datasets.convert import convert
from l3ic.datasets.keras_data import LatentDataset, LatentFiles, as_tf_dataset, iterate


@pytest.fixture
def root(presets, tmp_path):
    """5 labelled images: 3 of 24x40 px (cat, cat, dog) and 2 of 40x24 px (dog, bird)."""
    src = tmp_path / "src"
    for rel, (h, w), seed in [
        ("cat/0.png", (24, 40), 0),
        ("cat/1.png", (24, 40), 1),
        ("dog/2.png", (24, 40), 2),
        ("dog/3.png", (40, 24), 3),
        ("bird/4.png", (40, 24), 4),
    ]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(src / rel, smooth_image(h, w, seed))
    convert(src, tmp_path / "dst", preset="16c", progress=False)
    return tmp_path / "dst"


def test_pydataset_latent_batches_and_labels(root):
    assert keras.backend.backend() == "tensorflow"
    ds = LatentDataset(root, batch_size=2, shuffle=True, seed=1)
    assert isinstance(ds, keras.utils.PyDataset) and ds.files.classes == ["bird", "cat", "dog"]
    batches = [ds[i] for i in range(len(ds))]
    assert len(ds) == 3 and sorted(len(y) for _, y in batches) == [1, 2, 2]
    seen = {}
    for x, y in batches:
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape[1:] in ((3, 5, 16), (5, 3, 16)) and x.shape[0] == len(y)
        for latent, label in zip(x, y, strict=True):
            seen[latent.tobytes()] = label
    for item in ds.files.items:
        latent, _ = l3ic.read_latent((root / item["path"]).read_bytes())
        assert seen[latent.astype(np.float32).tobytes()] == item["label_index"]
    assert sorted(seen.values()) == [0, 1, 1, 2, 2]


def test_channel_subsets_and_importance_order(root):
    codec = l3ic.api.get_codec("16c")
    full = LatentFiles(root)
    part = LatentFiles(root, channels=[5, 1])
    np.testing.assert_array_equal(part[0][0], full[0][0][..., [5, 1]])
    top = LatentFiles(root, top_channels=3)
    assert top.channels == codec.channel_order[:3].tolist() == [15, 14, 13]
    np.testing.assert_array_equal(top[2][0], full[2][0][..., [15, 14, 13]])
    for bad in ([16], [], [-1]):
        with pytest.raises(L3ICError, match="channels"):
            LatentFiles(root, channels=bad)
    for bad in (0, 17):
        with pytest.raises(L3ICError, match="top_channels"):
            LatentFiles(root, top_channels=bad)


def test_decoded_batches(root):
    ds = LatentDataset(root, batch_size=8, decode=True, shuffle=False)
    assert len(ds) == 2 and ds.depth == 3
    x, y = ds[1]  # items are sorted by path: bird/4 (40x24) comes first
    assert x.shape == (3, 24, 40, 3) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert ds[0][0].shape == (2, 40, 24, 3) and y.tolist() == [1, 1, 2]
    item = ds.files.items[1]
    expected = l3ic.decompress((root / item["path"]).read_bytes())
    np.testing.assert_allclose(x[0] * 255, expected, atol=1e-3)
    preview = LatentFiles(root, top_channels=4, decode=True)
    data = (root / preview.items[0]["path"]).read_bytes()
    np.testing.assert_allclose(
        preview[0][0] * 255, l3ic.decompress(data, top_channels=4), atol=1e-3
    )
    with pytest.raises(L3ICError, match="share a size"):
        preview.batch([0, 3])


def test_fit_tf_dataset_iterate_and_torch(root):
    ds = LatentDataset(root, batch_size=4, top_channels=8, indices=[0, 1, 2, 3])
    assert len(ds.files) == 4 and ds.depth == 8
    model = keras.Sequential(
        [keras.Input((None, None, 8)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds, epochs=1, verbose=0)
    shapes = sorted(tuple(x.shape) for x, _ in as_tf_dataset(ds))
    assert shapes == [(1, 5, 3, 8), (3, 3, 5, 8)]
    assert sum(len(y) for _, y in iterate(ds, epochs=2)) == 8

    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(LatentFiles(root, indices=[1, 2, 3]), batch_size=3)
    (x, y), *_ = list(loader)
    assert tuple(x.shape) == (3, 3, 5, 16) and y.tolist() == [1, 1, 2]
    batches = list(torch.utils.data.DataLoader(ds, batch_size=None))
    assert sorted(len(y) for _, y in batches) == [1, 3]
