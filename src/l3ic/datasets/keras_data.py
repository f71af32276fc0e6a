"""Loaders for folders made by ``l3ic convert``: latents or decoded images, with labels.

- ``LatentFiles`` (``latent_files``, re-exported here): one item at a time, ``(x, label)``;
  the ``torch.utils.data.Dataset`` protocol. It imports no Keras; this module does.
- ``LatentDataset``: a ``keras.utils.PyDataset`` of batches for ``model.fit`` on any backend.
- ``ShardBatches``: the same for tar shards (``--layout shards``), reading each batch's
  samples by the shard indexes; ``LatentShards`` (``latent_shards``, re-exported) streams
  them instead.
- ``as_tf_dataset``: a ``tf.data.Dataset`` of the batches of either, or of ``LatentShards``
  samples batched by size; ``iterate``: a plain iterator.

``x`` is the latent as float32 (h, w, k) holding the integers -15..16 (only the ``channels``
asked for, in that order), or with ``decode=True`` the decoded image as float32 (H, W, 3) in
[0, 1], decoded from ``channels`` only (the others at their likeliest value, as
``LatentCoder.read_partial``) or from all of them. Labels are the index's ``label_index`` (int32;
-1 for images that were not in a class folder).

Batches hold arrays of one shape, so ``LatentDataset`` groups the images by size (latent shape,
or image size when decoding) and draws every batch from one group: a set of 768x512 and 512x768
images gives batches of either, and the last batch of each group may be smaller. Models fed
mixed sizes need inputs of shape (None, None, k), e.g. ending in global pooling. On TensorFlow,
``model.fit`` fixes its input spec from the first two batches (Keras keeps the dimensions they
share), so the batch order puts first two batches that differ in every dimension that varies
(batch size, height, width) where the plan has such a pair (``_spec_pair_first``);
``as_tf_dataset`` gives the full spec (None, None, None, k) in any case.
"""

import os
from collections.abc import Iterator, Sequence

import keras
import numpy as np

from ..codebook import latent_size
from ..errors import L3ICError
from .latent_files import LatentFiles
from .latent_shards import LatentShards, size_batches, split_range
from .pixels import decode_to_pixels

__all__ = [
    "LatentFiles",
    "LatentDataset",
    "LatentShards",
    "ShardBatches",
    "as_tf_dataset",
    "iterate",
]


def _size_batches(groups: dict, batch_size: int, rng: np.random.Generator | None) -> list[list]:
    """Batches of at most ``batch_size`` ids, each from one group (images of one size, keyed by
    (h, w)), in group order, or in a random order drawn from ``rng``; then
    ``_spec_pair_first``."""
    batches = [
        (key, ids[j : j + batch_size])
        for key, ids in groups.items()
        for j in range(0, len(ids), batch_size)
    ]
    if rng is not None:
        batches = [batches[j] for j in rng.permutation(len(batches))]
    return _spec_pair_first(batches)


def _spec_pair_first(batches: list[tuple[tuple[int, int], list]]) -> list[list]:
    """The batches' ids, with two batches moved to the front that differ in every dimension
    (batch size, h, w) that varies among all batches, or in as many as any pair does.

    Keras's TensorFlow adapter of a ``PyDataset`` builds its input spec from batches 0 and 1
    and keeps only the dimensions they share; a later batch of another size would then fail.
    Only unique (batch size, h, w) signatures are compared, at most 256 of them as the first
    of a pair, so planning stays fast for datasets of many sizes.
    """
    if len(batches) < 3:
        return [ids for _, ids in batches]
    sigs = np.array([(len(ids), *key) for key, ids in batches])
    varying = np.array([len(np.unique(sigs[:, d])) > 1 for d in range(3)])
    if not varying.any():
        return [ids for _, ids in batches]
    order = np.sort(np.unique(sigs, axis=0, return_index=True)[1])  # one batch per signature
    best, pair = -1, (0, 1)
    for a in order[:256]:
        differs = ((sigs[order] != sigs[a]) & varying).sum(axis=1)
        b = int(order[int(np.argmax(differs))])
        if differs.max() > best:
            best, pair = int(differs.max()), (int(a), b)
        if best == varying.sum():
            break
    front = [batches[pair[0]], batches[pair[1]]]
    rest = [batch for j, batch in enumerate(batches) if j not in pair]
    return [ids for _, ids in front + rest]


class _SizeBatches(keras.utils.PyDataset):
    """What both datasets share: batches of one size each (``_size_batches``), planned by the
    subclass's ``_plan`` at the start and anew every epoch when shuffling.

    Args:
        batch_size: images per batch (at most).
        shuffle: shuffle, and plan the batches anew every epoch.
        **kwargs: ``keras.utils.PyDataset`` options.
    """

    def __init__(self, batch_size: int, shuffle: bool, **kwargs):
        super().__init__(**kwargs)
        if batch_size < 1:
            raise L3ICError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.shuffle, self.epoch = batch_size, shuffle, 0

    def __len__(self) -> int:
        return len(self._batches)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.shuffle:
            self._batches = self._plan()


class LatentDataset(_SizeBatches):
    """Batches of latents (or decoded images) and labels from a converted folder.

    Args:
        root: folder written by ``l3ic convert``.
        batch_size: images per batch (at most; see the module docstring on sizes).
        channels, top_channels: as for ``LatentFiles``.
        decode: yield images decoded by the network, a batch at a time (on ``runtime``;
            ``runtime="keras"``: the Keras backend's device).
        shuffle: shuffle images and batch order, anew every epoch.
        seed: seed of the shuffling.
        indices: as for ``LatentFiles``.
        runtime: as for ``LatentFiles`` (default ``$L3IC_RUNTIME``, else "auto").
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
        super().__init__(batch_size, shuffle, **kwargs)
        self.files = LatentFiles(
            root, channels, decode, indices, top_channels=top_channels, runtime=runtime
        )
        self._rng = np.random.default_rng(seed)
        self._batches = self._plan()

    def _plan(self) -> list[list[int]]:
        groups: dict[tuple[int, int], list[int]] = {}
        for i in range(len(self.files)):
            groups.setdefault(self.files.shape_key(i), []).append(i)
        if self.shuffle:
            groups = {key: self._rng.permutation(ids).tolist() for key, ids in groups.items()}
        return _size_batches(groups, self.batch_size, self._rng if self.shuffle else None)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``idx``: (float32 (B, h, w, k) or (B, H, W, 3), (B,) int32 labels)."""
        return self.files.batch(self._batches[idx])

    @property
    def depth(self) -> int:
        """Channels of ``x``: k latent channels, or 3 when decoding."""
        return 3 if self.files.decode else len(self.files.channels)


class ShardBatches(_SizeBatches):
    """Batches of latents (or decoded images) and labels from tar shards, for ``model.fit``.

    Batch ``i`` reads its samples by the shard indexes (only the channels asked for), so
    batches can be loaded in any order and by ``PyDataset`` workers. Samples are grouped by
    size as in ``LatentDataset``. Under distributed training give ``rank`` and
    ``world_size``: the samples are split as ``LatentShards`` splits them (equal contiguous
    blocks of N // world_size; the few left over are not read that epoch), so every rank has
    the same number of samples, and of batches when all images share one size.

    Args:
        root: folder written by ``l3ic convert --layout shards``.
        batch_size: images per batch (at most).
        channels, top_channels, decode, runtime: as for ``LatentShards``.
        shuffle: shuffle samples and batch order, anew every epoch.
        seed: seed of the shuffling (the same on every rank).
        rank, world_size: this rank and the number of ranks (default 0 of 1).
        **kwargs: ``keras.utils.PyDataset`` options (workers, use_multiprocessing,
            max_queue_size).

    Attributes:
        shards: the ``LatentShards`` whose settings and ``ShardSet`` are used.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        batch_size: int = 32,
        channels: Sequence[int] | None = None,
        decode: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        *,
        top_channels: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        runtime: str | None = None,
        **kwargs,
    ):
        super().__init__(batch_size, shuffle, **kwargs)
        self.shards = LatentShards(
            root,
            channels,
            top_channels=top_channels,
            decode=decode,
            rank=rank,
            world_size=world_size,
            runtime=runtime,
        )
        sizes = self.shards.shards
        self._where = [(s, j) for s in range(len(sizes.names)) for j in range(sizes.counts[s])]
        self.seed = seed
        self._batches = self._plan()

    def _plan(self) -> list[list[tuple[int, int]]]:
        rank, world = self.shards.rank()
        n = len(self._where)
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        start, stop = split_range(n - n % world, world, rank)
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i in order[start:stop]:
            s, j = self._where[i]
            entry = self.shards.shards.samples(s)[j]
            size = (entry["height"], entry["width"])
            key = size if self.shards.decode else latent_size(*size)
            groups.setdefault(key, []).append((s, j))
        rng = np.random.default_rng([self.seed, self.epoch, 1]) if self.shuffle else None
        return _size_batches(groups, self.batch_size, rng)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``idx``: (float32 (B, h, w, k) or (B, H, W, 3), (B,) int32 labels)."""
        ids = self._batches[idx]
        sh, channels = self.shards.shards, self.shards.subset
        qs = [sh.read(s, j, channels, partial=self.shards.decode) for s, j in ids]
        labels = np.array([sh.samples(s)[j]["label"] for s, j in ids], dtype=np.int32)
        if not self.shards.decode:
            return np.stack(qs).astype(np.float32), labels
        entry = sh.samples(ids[0][0])[ids[0][1]]
        shape = (entry["height"], entry["width"])
        images = decode_to_pixels(sh.preset, self.shards.runtime, qs, [shape] * len(qs))
        return np.stack(images), labels

    @property
    def depth(self) -> int:
        """Channels of ``x``: k latent channels, or 3 when decoding."""
        return self.shards.depth


def iterate(
    dataset: "LatentDataset | ShardBatches", epochs: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields the (x, labels) batches of ``dataset`` for ``epochs`` epochs, reshuffling between."""
    for _ in range(epochs):
        for idx in range(len(dataset)):
            yield dataset[idx]
        dataset.on_epoch_end()


def as_tf_dataset(dataset, batch_size: int | None = None):
    """A prefetching ``tf.data.Dataset`` of ``dataset``'s batches (one epoch per pass).

    Args:
        dataset: a ``LatentDataset`` or ``ShardBatches`` (batches as they are), or a
            ``LatentShards`` (its batches when it has a ``batch_size``, else its samples
            batched by ``batch_size`` here, one shape per batch: ``size_batches``; its
            ``set_epoch`` is the caller's to call between passes).
        batch_size: batch size for a ``LatentShards`` that has none (required there, refused
            otherwise).

    Returns:
        ``tf.data.Dataset`` of (float32 (B, h, w, k) or (B, H, W, 3), int32 (B,)), of spec
        (None, None, None, k): any batch size and image size.
    """
    import tensorflow as tf

    unbatched = isinstance(dataset, LatentShards) and dataset.batch_size is None
    if unbatched != (batch_size is not None):
        raise L3ICError("batch_size is needed for a LatentShards without one, and only for it")
    spec = (
        tf.TensorSpec((None, None, None, dataset.depth), tf.float32),
        tf.TensorSpec((None,), tf.int32),
    )

    def batches():
        if unbatched:
            yield from size_batches(batch_size)(dataset)
        elif isinstance(dataset, LatentShards):
            yield from dataset
        else:
            yield from iterate(dataset)

    return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(tf.data.AUTOTUNE)
