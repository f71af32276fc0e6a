"""Streaming a sharded latent dataset (``shards``): samples in order, split across ranks and
data-loader workers, shuffled through a buffer, reading only the channels asked for.

``LatentShards`` is an iterable of ``(x, label)``: ``x`` is the latent as float32 (h, w, k)
holding the integers -15..16 (only the channels asked for, in that order), or with
``decode=True`` the image decoded from them as float32 (H, W, 3) in [0, 1]; ``label`` is the
class index (int; -1 for an image outside any class folder). It imports no Keras and no torch;
``torch_data`` wraps it for ``torch.utils.data.DataLoader``, ``keras_data`` for Keras and
tf.data, and ``wds_decoder`` decodes .l3ic members inside ``webdataset`` pipelines.

Splitting, every epoch: the shards are put in order (a new random order per epoch with
``shuffle``, the same on every rank), their samples form one sequence of N, and rank r of R
takes the r-th of R equal contiguous blocks of N // R samples. The N mod R samples left over
(the last ones of that epoch's order: with shuffling, different ones each epoch) are not read
in that epoch, so every rank reads the same number of samples and, with any batch size, the
same number of batches: distributed training cannot hang waiting for a rank with fewer. Inside
a rank, data-loader worker w of W takes the w-th of W contiguous parts of the block (sizes
differ by at most one). So each sample is read at most once per epoch. Reading is sequential
within a shard; ``shuffle`` also mixes samples through a buffer of ``shuffle_buffer``.

Batches: images of several sizes cannot be stacked into one array, so ``batch_size`` makes
``LatentShards`` yield batches of one shape (``size_batches``: a bucket per shape, a batch as
soon as a bucket is full, the partial ones at the end of the pass), and ``size_batches`` is a
stage for ``webdataset`` pipelines too. With mixed sizes the number of batches of a worker
depends on its samples' sizes: under distributed training run a fixed number of steps per epoch.
"""

import os
import sys
import warnings
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import L3ICError, one_line
from ..latent_coder import channels_arg, get_coder
from .pixels import decode_to_pixels
from .shards import ShardSet

__all__ = ["LatentShards", "size_batches", "wds_decoder", "split_range"]

# With decode=True, samples go through the network this many at a time (equal shapes batched):
# on an AMX Xeon with OpenVINO in bf16 that multiplies images/s (docs/runtimes.md).
DECODE_BATCH = 16

ON_ERROR = ("raise", "skip")


def split_range(n: int, parts: int, part: int) -> tuple[int, int]:
    """The ``part``-th of ``parts`` contiguous pieces of range(n), sizes differing by at most one.

    Returns:
        (start, stop).
    """
    return part * n // parts, (part + 1) * n // parts


def _dist_rank() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when it is in use, else (0, 1)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _loader_worker() -> tuple[int, int]:
    """(worker id, workers) of the torch DataLoader worker this runs in, else (0, 1)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            return info.id, info.num_workers
    return 0, 1


class LatentShards:
    """The samples of a sharded dataset, streamed (see the module docstring for the splitting).

    Args:
        root: the folder written by ``l3ic convert --layout shards``.
        channels: latent channel indices to read, in order (default all).
        top_channels: read the ``top_channels`` most important channels (1..C) instead.
        decode: yield images decoded by the network (``DECODE_BATCH`` samples per call) from
            the channels read, the others at their likeliest value.
        shuffle: new shard order every epoch and a shuffle buffer; ``set_epoch`` before each.
        shuffle_buffer: samples held for shuffling.
        seed: seed of the shuffling (the same on every rank).
        rank, world_size: this process's rank among the ranks of distributed training; default
            torch.distributed's if it is initialised, else 0 of 1.
        on_error: "raise": a damaged or missing shard or record raises ``L3ICError`` naming the
            shard and the sample; "skip": it is left out, counted in ``skipped`` and reported
            by a warning at the end of the pass.
        runtime: the network's runtime with ``decode=True`` (default ``$L3IC_RUNTIME``, else
            "auto").
        batch_size: yield batches of at most this many samples of one shape
            (``size_batches``): float32 (B, h, w, k) or (B, H, W, 3) and int32 (B,) labels;
            default single samples.

    Attributes:
        shards: the ``ShardSet`` read from (classes, names, counts, preset).
        channels: the channel indices read, in order.
        subset: ``channels``, or None when all are read (then whole records are read and both
            CRC-32s checked).
        skipped: (shard, key or None, reason) of what was skipped in this process.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: Sequence[int] | None = None,
        *,
        top_channels: int | None = None,
        decode: bool = False,
        shuffle: bool = False,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        on_error: str = "raise",
        runtime: str | None = None,
        batch_size: int | None = None,
    ):
        if batch_size is not None and batch_size < 1:
            raise L3ICError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        if on_error not in ON_ERROR:
            raise L3ICError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        if shuffle_buffer < 1:
            raise L3ICError(f"shuffle_buffer must be at least 1, got {shuffle_buffer}")
        self.shards = ShardSet(root)
        coder = get_coder(self.shards.preset)
        channels, top_channels = channels_arg(channels, top_channels)
        self.channels = coder.reader_channels(channels, top_channels)
        every = channels is None and top_channels is None
        self.subset = None if every else self.channels
        if (rank is None) != (world_size is None):
            raise L3ICError("give both rank and world_size, or neither")
        if world_size is not None and not 0 <= rank < world_size:
            raise L3ICError(f"rank must lie in 0..{world_size - 1}, got {rank}")
        self.decode, self.shuffle, self.shuffle_buffer = decode, shuffle, shuffle_buffer
        self.seed, self.epoch, self.on_error, self.runtime = seed, 0, on_error, runtime
        self._rank = None if rank is None else (rank, world_size)
        self.skipped: list[tuple[str, str | None, str]] = []

    def close(self) -> None:
        """Closes the shard files this process opened (iterating again reopens them); also at
        the end of a ``with`` block, and when the loader is dropped."""
        self.shards.close()

    def __enter__(self) -> "LatentShards":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def classes(self) -> list[str]:
        """Class names; labels index them."""
        return self.shards.classes

    @property
    def depth(self) -> int:
        """Channels of ``x``: the latent channels read, or 3 when decoding."""
        return 3 if self.decode else len(self.channels)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which picks the shard order and the shuffling (call before each)."""
        self.epoch = int(epoch)

    def rank(self) -> tuple[int, int]:
        """(rank, world size) this process reads as."""
        return self._rank or _dist_rank()

    def __len__(self) -> int:
        """Samples this rank reads per epoch (all data-loader workers together; with
        ``batch_size``, samples too, not batches)."""
        return len(self.shards) // self.rank()[1]

    def plan(self, worker: int = 0, workers: int = 1) -> list[tuple[int, int, int]]:
        """What one data-loader worker of this rank reads this epoch, before the buffer.

        Returns:
            (shard index, first sample, stop) runs, in reading order.
        """
        rank, world = self.rank()
        order = np.arange(len(self.shards.names))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        per_rank = len(self.shards) // world
        a, b = split_range(per_rank, workers, worker)
        start, stop = rank * per_rank + a, rank * per_rank + b
        runs, pos = [], 0
        for s in order:
            n = int(self.shards.counts[s])
            lo, hi = max(start, pos), min(stop, pos + n)
            if lo < hi:
                runs.append((int(s), lo - pos, hi - pos))
            pos += n
        return runs

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        worker, workers = _loader_worker()
        samples = self._read(self.plan(worker, workers))
        if self.shuffle:
            rank = self.rank()[0]
            rng = np.random.default_rng([self.seed, self.epoch, rank, worker, 1])
            samples = _buffer_shuffle(samples, self.shuffle_buffer, rng)
        if self.batch_size is not None:
            samples = size_batches(self.batch_size)(samples)
        yield from samples
        if self.skipped:
            warnings.warn(
                f"skipped {len(self.skipped)} damaged or missing samples or shards, e.g. "
                f"{self.skipped[0][0]} {self.skipped[0][1] or ''}: {self.skipped[0][2]}",
                stacklevel=2,
            )

    def _read(self, runs: list[tuple[int, int, int]]) -> Iterator[tuple[np.ndarray, int]]:
        if not self.decode:
            for q, label, _ in self._latents(runs):
                yield q.astype(np.float32), label
            return
        held = []
        for item in self._latents(runs):
            held.append(item)
            if len(held) == DECODE_BATCH:
                yield from self._decoded(held)
                held = []
        yield from self._decoded(held)

    def _decoded(self, held: list[tuple]) -> Iterator[tuple[np.ndarray, int]]:
        """(image float32 in [0, 1], label) of the held (latent, label, shape) samples, in
        order, decoded in one call (``pixels.decode_to_pixels``)."""
        if not held:
            return
        images = decode_to_pixels(
            self.shards.preset, self.runtime, [q for q, _, _ in held], [s for _, _, s in held]
        )
        yield from zip(images, [label for _, label, _ in held], strict=True)

    def _latents(self, runs: list[tuple[int, int, int]]) -> Iterator[tuple]:
        """(latent, label, (H, W)) of the samples of ``runs``, in order; damaged ones skipped
        (or raised, as ``on_error`` says)."""
        channels = self.subset
        for s, lo, hi in runs:
            try:
                entries = self.shards.samples(s)
            except L3ICError as e:
                if self.on_error == "raise":
                    raise
                self.skipped.append((self.shards.names[s], None, one_line(e)))
                continue
            for j in range(lo, hi):
                try:
                    q = self.shards.read(s, j, channels, partial=self.decode)
                except L3ICError as e:
                    if self.on_error == "raise":
                        raise
                    self.skipped.append((self.shards.names[s], entries[j]["key"], one_line(e)))
                    continue
                yield q, entries[j]["label"], (entries[j]["height"], entries[j]["width"])


def size_batches(batch_size: int, max_held: int | None = None):
    """A stage that batches samples of mixed sizes: ``stage(samples)`` yields batches of one shape.

    Samples are tuples ``(x, label, ...)`` (``LatentShards`` items, or a ``webdataset``
    pipeline's after ``to_tuple``); they go to a bucket per shape of ``x``, a bucket is
    yielded as soon as it holds ``batch_size`` samples, and the rest at the end. So batches
    never mix shapes, and every sample is yielded once::

        wds.DataPipeline(TorchLatentShards(root), wds.shuffle(1000), l3ic.size_batches(64))
        wds.WebDataset(urls).decode(l3ic.wds_decoder()).to_tuple("l3ic", "cls")
            .compose(l3ic.size_batches(64))

    Args:
        batch_size: samples per batch (at most).
        max_held: samples held in all buckets at most (default 16 x ``batch_size``); past
            that, the fullest bucket is yielded early, so many sizes cannot fill the memory.

    Returns:
        stage(samples) -> iterator of tuples of arrays, each field stacked with numpy
        (x: (B, ...) as the samples' dtype; labels: (B,) int32 when they are ints).
    """
    if batch_size < 1:
        raise L3ICError(f"batch_size must be at least 1, got {batch_size}")
    limit = max(batch_size, max_held if max_held is not None else 16 * batch_size)

    def stage(samples):
        buckets: dict[tuple, list] = {}
        held = 0
        for sample in samples:
            key = np.shape(sample[0])
            bucket = buckets.setdefault(key, [])
            bucket.append(sample)
            held += 1
            if len(bucket) < batch_size and held <= limit:
                continue
            if len(bucket) < batch_size:  # too many held: the fullest bucket goes early
                key = max(buckets, key=lambda k: len(buckets[k]))
            held -= len(buckets[key])
            yield _stack(buckets.pop(key))
        for key in list(buckets):
            yield _stack(buckets.pop(key))

    return stage


def _stack(samples: list[tuple]) -> tuple[np.ndarray, ...]:
    """One batch of same-shape samples: each field stacked (int fields as int32)."""
    fields = []
    for values in zip(*samples, strict=True):
        if all(isinstance(v, (int, np.integer)) for v in values):
            fields.append(np.array(values, dtype=np.int32))
        else:
            fields.append(np.stack([np.asarray(v) for v in values]))
    return tuple(fields)


def _buffer_shuffle(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Yields ``items`` in a random order, holding at most ``size`` of them at a time."""
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = int(rng.integers(size))
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


def wds_decoder(
    channels: Sequence[int] | None = None,
    *,
    top_channels: int | None = None,
    preset: str | None = None,
):
    """A decoding handler for the ``webdataset`` library: ``.decode(l3ic.wds_decoder())``.

    Decodes the ``.l3ic`` members of samples to latents with the preset named in each file
    (no network); other members are left to the pipeline's other handlers.

    Args:
        channels: channel indices to decode, in order (default all).
        top_channels: decode the ``top_channels`` most important channels instead (needs
            ``preset``, whose importance order it uses).
        preset: the preset the files must come from (default: any).

    Returns:
        handler(key, data) -> float32 (h, w, k) latent for ``.l3ic`` members, else None.
    """
    channels, top_channels = channels_arg(channels, top_channels)
    if top_channels is not None:
        if preset is None:
            raise L3ICError("top_channels needs the preset whose channel order it uses")
        channels = get_coder(preset).top_channels(top_channels)

    def handler(key: str, data: bytes):
        if key.rsplit(".", 1)[-1].lower() != "l3ic":
            return None
        from .. import container

        written_by = container.preset_name(data)
        if preset is not None and written_by != preset:
            raise L3ICError(f"sample written by preset {written_by}, not {preset}")
        return get_coder(written_by).read(data, channels)[0].astype(np.float32)

    return handler
