"""Every Python block of docs/latents.md runs as written.

The blocks run in order in one namespace, in a folder that holds what they name: ``data`` and
``photo.l3ic`` (a 32c file), ``latents/`` (``l3ic convert``) and ``shards/`` (``--layout
shards``) of landscape, portrait and square images, and a Keras ``model`` that takes latents of
any depth (the test presets are untrained: this checks that the code runs, not what it learns).
"""

import re
from pathlib import Path

import imageio.v3 as iio
import keras
import pytest
from support import smooth_image

import l3ic
from l3ic.datasets.convert import convert
from l3ic.datasets.shard_convert import convert_shards

DOC = Path(__file__).resolve().parents[1] / "docs" / "latents.md"
SIZES = [(24, 40), (40, 24), (32, 32), (24, 40), (40, 24)]


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _any_depth_classifier() -> keras.Model:
    """Pools space, then channels: fits latents of any (h, w, k)."""
    model = keras.Sequential(
        [
            keras.Input((None, None, None)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=-1, keepdims=True)),
            keras.layers.Dense(2),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_the_page_has_its_blocks():
    assert len(_blocks(DOC)) >= 4


def test_every_block_of_latents_md_runs(presets, tmp_path, monkeypatch):
    for i, (h, w) in enumerate(SIZES):
        folder = tmp_path / "src" / ("cat" if i % 2 else "dog")
        folder.mkdir(parents=True, exist_ok=True)
        iio.imwrite(folder / f"{i}.png", smooth_image(h, w, seed=i))
    monkeypatch.chdir(tmp_path)
    convert("src", "latents", preset="16c", progress=False)
    convert_shards("src", "shards", "16c", shard_size=3000, progress=False)
    data = l3ic.compress(smooth_image(40, 48, seed=9), preset="32c")
    Path("photo.l3ic").write_bytes(data)
    namespace = {"l3ic": l3ic, "data": data, "model": _any_depth_classifier()}
    for number, block in enumerate(_blocks(DOC), 1):
        try:
            exec(compile(block, f"{DOC.name}, block {number}", "exec"), namespace)
        except Exception as e:  # name the block that failed
            pytest.fail(f"block {number} of {DOC.name} failed: {type(e).__name__}: {e}")
