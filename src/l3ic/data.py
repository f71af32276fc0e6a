"""Loaders for folders made by ``l3ic convert``: latents or decoded images, with labels.

- ``LatentFiles``: one item at a time, ``(x, label)``; the ``torch.utils.data.Dataset`` protocol
  (``__len__`` and ``__getitem__``), so ``torch.utils.data.DataLoader`` wraps it (torch itself is
  never imported here).
- ``LatentDataset``: a ``keras.utils.PyDataset`` of batches for ``model.fit`` on any backend.
- ``as_tf_dataset``: a ``tf.data.Dataset`` of the same batches; ``iterate``: a plain iterator.

``x`` is the latent as float32 (h, w, k) holding the integers -15..16 (only the ``channels``
asked for, in that order), or with ``decode=True`` the decoded image as float32 (H, W, 3) in
[0, 1], decoded from ``channels`` only (the others at their likeliest value, as
``Codec.partial_latent``) or from all of them. Labels are the index's ``label_index`` (int32;
-1 for images that were not in a class folder).

Batches hold arrays of one shape, so ``LatentDataset`` groups the images by size (latent shape,
or image size when decoding) and draws every batch from one group: a set of 768x512 and 512x768
images gives batches of either, and the last batch of each group may be smaller. Models fed
mixed sizes need inputs of shape (None, None, k), e.g. ending in global pooling.
"""

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import numpy as np

from .convert import read_index
from .errors import L3ICError

__all__ = ["LatentFiles", "LatentDataset", "as_tf_dataset", "iterate"]


class LatentFiles:
    """The images of a converted folder, one at a time (a map-style dataset).

    Args:
        root: folder written by ``l3ic convert`` (with ``index.json``).
        channels: latent channels to read: None (all), an int k (the first k in the model's
            importance order) or a sequence of channel indices.
        decode: yield decoded images instead of latents.
        indices: positions in the index's item list to use (e.g. a train/validation split);
            default all.

    Attributes:
        root: the folder.
        items: the index entries used (dicts: path, label, label_index, width, height, bytes).
        classes: class names; ``label_index`` indexes them.
        model: the preset that wrote the files.
        channels: the latent channel indices read, in order.
        labels: (N,) int32 label indices.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: int | Sequence[int] | None = None,
        decode: bool = False,
        indices: Sequence[int] | None = None,
    ):
        self.root = Path(root)
        index = read_index(self.root)
        items = index["items"]
        self.items = items if indices is None else [items[int(i)] for i in indices]
        if not self.items:
            raise L3ICError(f"no images to load from {self.root}")
        self.classes, self.model, self.decode = index["classes"], index["model"], decode
        self.labels = np.array([item["label_index"] for item in self.items], dtype=np.int32)
        codec = self._codec()
        if channels is None:
            channels = range(codec.channels)
        elif isinstance(channels, int | np.integer):
            if not 1 <= channels <= codec.channels:
                raise L3ICError(f"channels must lie in 1..{codec.channels}, got {channels}")
            channels = codec.channel_order[:channels]
        self.channels = [int(k) for k in channels]
        if not self.channels or not all(0 <= k < codec.channels for k in self.channels):
            raise L3ICError(f"channels must be a non-empty list of 0..{codec.channels - 1}")

    def _codec(self):
        from .api import get_codec

        return get_codec(self.model)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        """Item ``i``: (float32 (h, w, k) latent or (H, W, 3) image, label index)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        x, y = self.batch([i % len(self)])
        return x[0], int(y[0])

    def shape_key(self, i: int) -> tuple[int, int]:
        """What items of one batch must share: (h, w) of the latent, or (H, W) when decoding."""
        item = self.items[i]
        height, width = item["height"], item["width"]
        return (height, width) if self.decode else (-(-height // 8), -(-width // 8))

    def batch(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Loads items ``ids`` as one batch; they must share a ``shape_key``.

        Returns:
            (float32 (B, h, w, k) latents or (B, H, W, 3) images, (B,) int32 labels).
        """
        if len({self.shape_key(i) for i in ids}) > 1:
            raise L3ICError("images of one batch must share a size (LatentDataset groups them)")
        codec = self._codec()
        data = [(self.root / self.items[i]["path"]).read_bytes() for i in ids]
        if not self.decode:
            x = np.stack([codec.unpack_latent(d, self.channels)[0] for d in data])
            return x.astype(np.float32), self.labels[list(ids)]
        qs = [codec.partial_latent(d, self.channels)[0] for d in data]
        size = (self.items[ids[0]]["height"], self.items[ids[0]]["width"])
        images = codec.decode_latent_batch(qs, [size] * len(qs))
        return np.stack(images).astype(np.float32) / 255.0, self.labels[list(ids)]


class LatentDataset(keras.utils.PyDataset):
    """Batches of latents (or decoded images) and labels from a converted folder.

    Args:
        root: folder written by ``l3ic convert``.
        batch_size: images per batch (at most; see the module docstring on sizes).
        channels: as for ``LatentFiles``.
        decode: yield images decoded by the model (batched, on the backend's device).
        shuffle: shuffle images and batch order, anew every epoch.
        seed: seed of the shuffling.
        indices: as for ``LatentFiles``.
        **kwargs: ``keras.utils.PyDataset`` options (workers, use_multiprocessing,
            max_queue_size).

    Attributes:
        files: the ``LatentFiles`` read from (classes, labels, channels, items).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 32,
        channels: int | Sequence[int] | None = None,
        decode: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise L3ICError(f"batch_size must be at least 1, got {batch_size}")
        self.files = LatentFiles(root, channels, decode, indices)
        self.batch_size, self.shuffle = batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        self._batches = self._plan()

    def _plan(self) -> list[list[int]]:
        groups: dict[tuple[int, int], list[int]] = {}
        for i in range(len(self.files)):
            groups.setdefault(self.files.shape_key(i), []).append(i)
        batches = []
        for ids in groups.values():
            if self.shuffle:
                ids = self._rng.permutation(ids).tolist()
            batches += [ids[j : j + self.batch_size] for j in range(0, len(ids), self.batch_size)]
        if self.shuffle:
            batches = [batches[j] for j in self._rng.permutation(len(batches))]
        return batches

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``idx``: (float32 (B, h, w, k) or (B, H, W, 3), (B,) int32 labels)."""
        return self.files.batch(self._batches[idx])

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._batches = self._plan()

    @property
    def depth(self) -> int:
        """Channels of ``x``: k latent channels, or 3 when decoding."""
        return 3 if self.files.decode else len(self.files.channels)


def iterate(dataset: LatentDataset, epochs: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields the (x, labels) batches of ``dataset`` for ``epochs`` epochs, reshuffling between."""
    for _ in range(epochs):
        for idx in range(len(dataset)):
            yield dataset[idx]
        dataset.on_epoch_end()


def as_tf_dataset(dataset: LatentDataset):
    """The batches of ``dataset`` as a prefetching ``tf.data.Dataset`` (one epoch per pass).

    Returns:
        ``tf.data.Dataset`` of (float32 (B, h, w, k) or (B, H, W, 3), int32 (B,)).
    """
    import tensorflow as tf

    def batches():
        yield from iterate(dataset)

    spec = (
        tf.TensorSpec((None, None, None, dataset.depth), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    )
    return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(tf.data.AUTOTUNE)
