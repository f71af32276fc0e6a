"""Trains a small classifier on l3ic latents and on pixels of one labelled image folder, from
tar shards, for several seeds.

usage: python examples/train_classifier.py SRC [--work DIR] [-m 32c] [--epochs 10]
           [--seeds 0 1 2] [--batch-size 32] [--channels K] [--pixels jpeg|decoded]
           [--engine local|dask] [--workers N] [--json OUT]

SRC is a labelled folder in ImageFolder layout (``SRC/<class>/<image>``). In each class, every
``--val-every``-th image (in path order) is held out for validation: the two splits are linked
under ``DIR/split/{train,val}`` and each is converted once with ``l3ic convert --layout shards``
to ``DIR/l3ic-PRESET/{train,val}`` (a second run reuses them). The pixel input is the same
images as JPEG quality 90 in WebDataset shards (``--pixels jpeg``, what a training job reads
without l3ic, decoded with Pillow every epoch), or the images decoded from the latents
(``--pixels decoded``, decoded by the network every epoch: slow on a CPU).

Latents are read with ``l3ic.datasets.keras_data.ShardBatches``. Both classifiers end in global
average pooling; the pixel one starts with three stride-2 convolutions, so it works at the latent's
resolution (1/8) like the latent one. Reported per input and seed: validation accuracy after
the last epoch and seconds per epoch (the first epoch, which includes tracing, left out); and
per input the mean and the spread (standard deviation, min, max) over the seeds.
"""

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from l3ic.datasets.convert import find_images
from l3ic.datasets.keras_data import ShardBatches
from l3ic.datasets.shard_convert import convert_shards


def latent_model(depth: int, classes: int) -> keras.Model:
    """A classifier of (h, w, depth) latents (values -15..16)."""
    return keras.Sequential(
        [
            keras.Input((None, None, depth)),
            keras.layers.Rescaling(1 / 4),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes),
        ]
    )


def pixel_model(classes: int) -> keras.Model:
    """A classifier of (H, W, 3) images in [0, 1], downsampling by 8 first."""
    return keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras.layers.Conv2D(32, 5, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(classes),
        ]
    )


class JpegShards(keras.utils.PyDataset):
    """Batches of pixels from JPEG WebDataset shards (KEY.jpg, KEY.cls), decoded with Pillow
    every epoch; images of one batch must share a size."""

    def __init__(self, folder: Path, batch_size: int, shuffle: bool, seed: int = 0):
        super().__init__()
        self.samples = []
        for path in sorted(folder.glob("shard-*.tar")):
            with tarfile.open(path) as tar:
                members = {m.name: m for m in tar.getmembers()}
                for name in sorted(members):
                    if name.endswith(".jpg"):
                        label = tar.extractfile(members[name[:-4] + ".cls"]).read()
                        self.samples.append((tar.extractfile(members[name]).read(), int(label)))
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.samples))
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.samples) // self.batch_size)

    def __getitem__(self, i: int):
        ids = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        x = [np.asarray(Image.open(io.BytesIO(self.samples[j][0])).convert("RGB")) for j in ids]
        y = np.array([self.samples[j][1] for j in ids], dtype=np.int32)
        return np.stack(x).astype(np.float32) / 255.0, y

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.rng.shuffle(self.order)


def write_jpeg_shards(src: Path, dst: Path, classes: list[str]) -> None:
    """``src``'s images as JPEG quality 90 in one WebDataset shard (KEY.jpg, KEY.cls)."""
    if (dst / "shard-000000.tar").exists():
        return
    dst.mkdir(parents=True, exist_ok=True)
    tmp = dst / ".shard-000000.tar.tmp"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, rel in enumerate(find_images(src)):
            buf = io.BytesIO()
            Image.open(src / rel).convert("RGB").save(buf, "JPEG", quality=90)
            label = str(classes.index(rel.parts[0])).encode()
            for ext, data in (("jpg", buf.getvalue()), ("cls", label)):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    tmp.rename(dst / "shard-000000.tar")


def split(src: Path, work: Path, val_every: int) -> list[str]:
    """Links every ``val_every``-th image of each class to work/val, the others to work/train.

    Returns:
        The class names.
    """
    classes = sorted({rel.parts[0] for rel in find_images(src) if len(rel.parts) > 1})
    seen: dict[str, int] = {}
    for rel in find_images(src):
        if len(rel.parts) < 2:
            continue
        n = seen[rel.parts[0]] = seen.get(rel.parts[0], 0) + 1
        link = work / ("val" if n % val_every == 0 else "train") / rel
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to((src / rel).resolve())
    return classes


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch in ``seconds``."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def run(kind: str, data: dict, args, seed: int, classes: int) -> dict:
    """Trains one classifier on ``kind`` (latents or pixels); returns accuracy and s/epoch."""
    keras.utils.set_random_seed(seed)
    train_ds, val_ds = data[kind](True, seed), data[kind](False, seed)
    x0 = train_ds[0][0]
    model = latent_model(x0.shape[-1], classes) if kind == "latents" else pixel_model(classes)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = EpochTimer()
    model.fit(train_ds, epochs=args.epochs, callbacks=[timer], verbose=0)
    _, accuracy = model.evaluate(val_ds, verbose=0)
    steady = timer.seconds[1:] or timer.seconds
    return {
        "input": kind,
        "seed": seed,
        "shape": list(x0.shape[1:]),
        "val_accuracy": float(accuracy),
        "seconds_per_epoch": float(np.mean(steady)),
        "epochs": args.epochs,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="labelled folder, SRC/<class>/<image>")
    p.add_argument("--work", type=Path, help="splits and shards (default <SRC>-l3ic-shards)")
    p.add_argument("-m", "--preset", default="32c")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--channels", type=int, help="use only the K most important latent channels")
    p.add_argument("--pixels", choices=("jpeg", "decoded"), default="jpeg")
    p.add_argument("--val-every", type=int, default=5, help="hold out every N-th image per class")
    p.add_argument("--engine", choices=("local", "dask"), default="local")
    p.add_argument("--workers", type=int, default=1, help="processes for the conversion")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    work = args.work or args.src.with_name(f"{args.src.name}-l3ic-shards")
    classes = split(args.src, work / "split", args.val_every)
    shards = work / f"l3ic-{args.preset}"
    for part in ("train", "val"):
        report = convert_shards(
            work / "split" / part, shards / part, args.preset, engine=args.engine,
            workers=args.workers, progress=False,
        )  # fmt: skip
        print(f"{part}: {report.summary()}", file=sys.stderr)
        if args.pixels == "jpeg":
            write_jpeg_shards(work / "split" / part, work / "jpeg" / part, classes)
    if sorted(ShardBatches(shards / "train").shards.classes) != classes:
        sys.exit(f"need labelled images of every class in both splits of {work / 'split'}")

    def latents(train: bool, seed: int):
        return ShardBatches(
            shards / ("train" if train else "val"), args.batch_size,
            top_channels=args.channels, shuffle=train, seed=seed,
        )  # fmt: skip

    def pixels(train: bool, seed: int):
        part = "train" if train else "val"
        if args.pixels == "decoded":
            return ShardBatches(
                shards / part, args.batch_size, decode=True, shuffle=train, seed=seed
            )
        return JpegShards(work / "jpeg" / part, args.batch_size, train, seed)

    data = {"latents": latents, "pixels": pixels}
    runs = [run(kind, data, args, seed, len(classes)) for seed in args.seeds for kind in data]
    summary = {}
    for kind in data:
        acc = np.array([r["val_accuracy"] for r in runs if r["input"] == kind])
        secs = np.array([r["seconds_per_epoch"] for r in runs if r["input"] == kind])
        summary[kind] = {
            "val_accuracy_mean": float(acc.mean()),
            "val_accuracy_std": float(acc.std()),
            "val_accuracy_min": float(acc.min()),
            "val_accuracy_max": float(acc.max()),
            "seconds_per_epoch_mean": float(secs.mean()),
        }
        print(
            f"{kind:8s} val accuracy {acc.mean():.3f} +- {acc.std():.3f} "
            f"(min {acc.min():.3f}, max {acc.max():.3f}, {len(acc)} seeds)  "
            f"{secs.mean():.2f} s/epoch"
        )
    results = {
        "src": str(args.src),
        "preset": args.preset,
        "pixels": args.pixels,
        "classes": classes,
        "train_images": len(ShardBatches(shards / "train").shards.shards),
        "val_images": len(ShardBatches(shards / "val").shards.shards),
        "runs": runs,
        "summary": summary,
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
