"""Loaders for folders made by ``l3ic convert``: latents or decoded images, with labels.

- ``LatentFiles`` (``l3ic.latent_files``, re-exported here): one item at a time, ``(x, label)``;
  the ``torch.utils.data.Dataset`` protocol. It imports no Keras; this module does.
- ``LatentDataset``: a ``keras.utils.PyDataset`` of batches for ``model.fit`` on any backend.
- ``as_tf_dataset``: a ``tf.data.Dataset`` of the same batches; ``iterate``: a plain iterator.

``x`` is the latent as float32 (h, w, k) holding the integers -15..16 (only the ``channels``
asked for, in that order), or with ``decode=True`` the decoded image as float32 (H, W, 3) in
[0, 1], decoded from ``channels`` only (the others at their likeliest value, as
``LatentCoder.read_partial``) or from all of them. Labels are the index's ``label_index`` (int32;
-1 for images that were not in a class folder).

Batches hold arrays of one shape, so ``LatentDataset`` groups the images by size (latent shape,
or image size when decoding) and draws every batch from one group: a set of 768x512 and 512x768
images gives batches of either, and the last batch of each group may be smaller. Models fed
mixed sizes need inputs of shape (None, None, k), e.g. ending in global pooling.
"""

import os
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from .errors import L3ICError
from .latent_files import LatentFiles

__all__ = ["LatentFiles", "LatentDataset", "as_tf_dataset", "iterate"]


class LatentDataset(keras.utils.PyDataset):
    """Batches of latents (or decoded images) and labels from a converted folder.

    Args:
        root: folder written by ``l3ic convert``.
        batch_size: images per batch (at most; see the module docstring on sizes).
        channels, top_channels: as for ``LatentFiles``.
        decode: yield images decoded by the network, a batch at a time (ONNX Runtime: its CPU
            provider, or CUDA with onnxruntime-gpu; ``runtime="keras"``: the Keras backend's
            device).
        shuffle: shuffle images and batch order, anew every epoch.
        seed: seed of the shuffling.
        indices: as for ``LatentFiles``.
        runtime: as for ``LatentFiles``: "onnx" or "keras" (default ``$L3IC_RUNTIME`` or "onnx").
        **kwargs: ``keras.utils.PyDataset`` options (workers, use_multiprocessing,
            max_queue_size).

    Attributes:
        files: the ``LatentFiles`` read from (classes, labels, channels, items).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 32,
        channels: Sequence[int] | None = None,
        decode: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        *,
        top_channels: int | None = None,
        runtime: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise L3ICError(f"batch_size must be at least 1, got {batch_size}")
        self.files = LatentFiles(
            root, channels, decode, indices, top_channels=top_channels, runtime=runtime
        )
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
