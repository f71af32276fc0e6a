"""``LatentShards`` for PyTorch: a ``torch.utils.data.IterableDataset`` (imports torch).

    from torch.utils.data import DataLoader
    from l3ic.datasets.torch_data import TorchLatentShards

    data = TorchLatentShards("shards/", top_channels=8, shuffle=True)
    loader = DataLoader(data, batch_size=64, num_workers=4)
    for epoch in range(epochs):
        data.set_epoch(epoch)
        for x, y in loader:  # x: float32 (64, h, w, 8), y: int64 (64,)
            ...

Each DataLoader worker reads its own part of this rank's samples (``latent_shards``),
entropy-decoding them in that worker; under ``torch.distributed`` every rank reads the same
number of samples. Items are numpy arrays, which the default collate turns into tensors.
"""

import torch

from .latent_shards import LatentShards

__all__ = ["TorchLatentShards"]


class TorchLatentShards(torch.utils.data.IterableDataset):
    """``LatentShards(*args, **kwargs)`` as a torch ``IterableDataset``.

    Attributes:
        shards: the ``LatentShards`` iterated (``set_epoch``, ``classes``, ``skipped``).
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.shards = LatentShards(*args, **kwargs)

    def __iter__(self):
        return iter(self.shards)

    def __len__(self) -> int:
        return len(self.shards)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch (shard order and shuffling); call before iterating each epoch."""
        self.shards.set_epoch(epoch)
