"""Training data: images in memory, a fixed validation split, and reproducible patch batches.

Every batch is a pure function of (seed, step), so a resumed run sees exactly the patches that an
uninterrupted run would have seen. Images are visited epoch by epoch in a seeded random order
(each image once per epoch); each visit takes one random ``patch`` x ``patch`` crop with a random
horizontal and vertical flip (p = 0.5 each).
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from .. import image
from ..errors import L3ICError
from ..image import read_image, to_rgb8

__all__ = [
    "DATA_ENV",
    "default_data_dir",
    "VALIDATION_MODULUS",
    "list_images",
    "is_validation",
    "split_files",
    "load_images",
    "data_identity",
    "PatchSampler",
]

VALIDATION_MODULUS = 20
DATA_ENV = "L3IC_TRAIN_DATA"


def default_data_dir() -> Path:
    """$L3IC_TRAIN_DATA, else ../shared/data/train-gpu: beside the repository, whose root the
    training commands run from (like ``presets.checkout_models``; an installed l3ic does not
    know where the checkout is)."""
    return Path(os.environ.get(DATA_ENV, Path("..", "shared", "data", "train-gpu")))


def list_images(data_dir: str | Path) -> list[Path]:
    """The image files of a training data folder (``l3ic.image.list_images``), sorted by name.

    Raises:
        L3ICError: the folder is missing or holds no images.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise L3ICError(f"training data folder not found: {folder}")
    files = image.list_images(folder)
    if not files:
        raise L3ICError(f"no images in {folder}")
    return files


def is_validation(name: str) -> bool:
    """The validation rule: ``int(sha1(file name)) % 20 == 0`` (about 5 % of the files)."""
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()
    return int(digest, 16) % VALIDATION_MODULUS == 0


def split_files(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """Splits files into (train, validation) by ``is_validation`` of their names."""
    train = [p for p in files if not is_validation(p.name)]
    val = [p for p in files if is_validation(p.name)]
    if not train:
        raise L3ICError("every image fell into the validation split; add more images")
    return train, val


def load_images(files: list[Path], min_size: int = 0) -> list[np.ndarray]:
    """Reads images as (H, W, 3) uint8 arrays; raises L3ICError if one is below ``min_size``."""
    images = []
    for path in files:
        x = to_rgb8(read_image(path), drop_alpha=True)[0]
        if min(x.shape[:2]) < min_size:
            raise L3ICError(f"{path} is {x.shape[1]}x{x.shape[0]}, smaller than {min_size} px")
        images.append(x)
    return images


def data_identity(data_dir: str | Path, files: list[Path]) -> dict:
    """Folder name, file count and SHA-256 of the sorted file names joined by newlines."""
    names = sorted(p.name for p in files)
    digest = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    return {"folder": Path(data_dir).resolve().name, "files": len(names), "names_sha256": digest}


class PatchSampler:
    """Random patches of in-memory images, reproducible from (seed, step).

    Args:
        images: list of (H, W, 3) uint8 arrays, each at least ``patch`` on both sides.
        batch: patches per batch.
        patch: side of the square patches in pixels.
        seed: seed of the image order, crop positions and flips.
        flips: apply random horizontal and vertical flips.
    """

    def __init__(
        self, images: list[np.ndarray], batch: int, patch: int, seed: int, flips: bool = True
    ):
        if not images:
            raise L3ICError("no training images")
        small = [x.shape for x in images if min(x.shape[:2]) < patch]
        if small:
            raise L3ICError(f"{len(small)} images are smaller than the {patch} px patch")
        self.images, self.batch, self.patch, self.seed, self.flips = (
            images,
            batch,
            patch,
            seed,
            flips,
        )
        self._cached: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    def _order(self, epoch: int) -> np.ndarray:
        """The seeded visiting order of epoch ``epoch`` (the last one is cached)."""
        if self._cached[0] != epoch:
            order = np.random.default_rng((self.seed, 1, epoch)).permutation(len(self.images))
            self._cached = (epoch, order)
        return self._cached[1]

    def indices(self, step: int) -> np.ndarray:
        """Image indices of batch ``step``: (batch,) int64, epoch by epoch in seeded order."""
        n = len(self.images)
        pos = np.arange(step * self.batch, (step + 1) * self.batch)
        return np.array([self._order(int(p // n))[p % n] for p in pos], dtype=np.int64)

    def __call__(self, step: int) -> np.ndarray:
        """Batch number ``step``: (batch, patch, patch, 3) float32 in [0, 1]."""
        rng = np.random.default_rng((self.seed, 2, step))
        p = self.patch
        out = np.empty((self.batch, p, p, 3), dtype=np.uint8)
        for k, i in enumerate(self.indices(step)):
            x = self.images[i]
            top = rng.integers(0, x.shape[0] - p + 1)
            left = rng.integers(0, x.shape[1] - p + 1)
            crop = x[top : top + p, left : left + p]
            flip_h, flip_v = rng.random(2) < 0.5
            if self.flips and flip_h:
                crop = crop[:, ::-1]
            if self.flips and flip_v:
                crop = crop[::-1]
            out[k] = crop
        return out.astype(np.float32) / 255.0
