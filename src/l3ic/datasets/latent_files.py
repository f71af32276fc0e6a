"""``LatentFiles``: the images of a folder made by ``l3ic convert``, one at a time, with labels.

A map-style dataset (``__len__`` and ``__getitem__``, the ``torch.utils.data.Dataset`` protocol,
so ``torch.utils.data.DataLoader`` wraps it; torch itself is never imported here). Reading
latents needs only the preset's latent coder: no network and no Keras import, so a data-loader
worker starts in a fraction of a second. With ``decode=True`` the network is loaded (once per
process, on the runtime ``runtime`` picks, "auto" by default) to decode images, a batch at a
time.

``x`` is the latent as float32 (h, w, k) holding the integers -15..16 (only the channels asked
for, in that order), or with ``decode=True`` the decoded image as float32 (H, W, 3) in [0, 1],
decoded from the channels asked for only (the others at their likeliest value, as
``LatentCoder.read_partial``) or from all of them. Labels are the index's ``label_index``
(int32; -1 for images that were not in a class folder).
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..codebook import dequantize, latent_size
from ..deprecation import renamed_property
from ..errors import L3ICError
from ..latent_coder import channels_arg, get_coder
from .folder_index import read_index
from .pixels import decode_to_pixels

__all__ = ["LatentFiles"]


class LatentFiles:
    """The images of a converted folder, one at a time (a map-style dataset).

    Args:
        root: folder written by ``l3ic convert`` (with ``index.json``).
        channels: latent channel indices to read, in order (default all). A number here is the
            deprecated spelling of ``top_channels``.
        decode: yield decoded images instead of latents.
        indices: positions in the index's item list to use (e.g. a train/validation split);
            default all.
        top_channels: read the ``top_channels`` most important channels (1..C) instead.
        runtime: the network's runtime with ``decode=True``: "auto", "onnx", "openvino" or
            "keras" (default ``$L3IC_RUNTIME``, else "auto").

    Attributes:
        root: the folder.
        items: the index entries used (dicts: path, label, label_index, width, height, bytes).
        classes: class names; ``label_index`` indexes them.
        preset: the preset that wrote the files.
        channels: the latent channel indices read, in order.
        labels: (N,) int32 label indices.
        runtime: the runtime asked for (None: the default).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: Sequence[int] | None = None,
        decode: bool = False,
        indices: Sequence[int] | None = None,
        *,
        top_channels: int | None = None,
        runtime: str | None = None,
    ):
        self.root = Path(root)
        self.runtime = runtime
        index = read_index(self.root)
        items = index["items"]
        self.items = items if indices is None else [items[int(i)] for i in indices]
        if not self.items:
            raise L3ICError(f"no images to load from {self.root}")
        self.classes, self.preset, self.decode = index["classes"], index["preset"], decode
        self.labels = np.array([item["label_index"] for item in self.items], dtype=np.int32)
        coder = get_coder(self.preset)
        self.channels = coder.reader_channels(*channels_arg(channels, top_channels))

    model = renamed_property("LatentFiles", "model", "preset")

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
        return (height, width) if self.decode else latent_size(height, width)

    def batch(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Loads items ``ids`` as one batch; they must share a ``shape_key``.

        Returns:
            (float32 (B, h, w, k) latents q / s, s the file's scale (1 unless it was written
            at another quality), or (B, H, W, 3) images; (B,) int32 labels).
        """
        if len({self.shape_key(i) for i in ids}) > 1:
            raise L3ICError("images of one batch must share a size (LatentDataset groups them)")
        coder = get_coder(self.preset)
        data = [(self.root / self.items[i]["path"]).read_bytes() for i in ids]
        if not self.decode:
            read = [coder.read(d, self.channels) for d in data]
            x = np.stack([dequantize(q, meta["scale"]) for q, meta in read])
            return x, self.labels[list(ids)]
        read = [coder.read_partial(d, self.channels) for d in data]
        shape = (self.items[ids[0]]["height"], self.items[ids[0]]["width"])
        images = decode_to_pixels(
            self.preset,
            self.runtime,
            [q for q, _ in read],
            [shape] * len(read),
            [meta["scale"] for _, meta in read],
        )
        return np.stack(images), self.labels[list(ids)]
