"""Trains a small classifier on l3ic latents and on decoded pixels of one labelled image folder.

usage: python examples/train_classifier.py SRC [--latents DIR] [-m 32c] [--epochs 5]
           [--batch-size 16] [--channels K] [--workers N] [--json OUT]

SRC is a labelled folder in ImageFolder layout (``SRC/<class>/<image>``). It is converted once
with ``l3ic convert`` to DIR (default: ``<SRC>-l3ic-<model>`` beside SRC; a second run reuses
it). In each class, every ``--val-every``-th image (in path order) is held out for validation.

Both classifiers end in global average pooling, so images of any size can be mixed (batches
hold one size, see ``l3ic.data``). The pixel classifier reads the images decoded from the same
.l3ic files, decoded anew in every epoch by the loader, and starts with three stride-2
convolutions, so it works at the latent's resolution (1/8) like the latent classifier.
Reported per input: validation accuracy after the last epoch, and seconds per epoch (loading,
decoding and training; the first epoch, which includes tracing, is left out if there are more).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from l3ic.convert import INDEX_NAME, convert, read_index
from l3ic.data import LatentDataset


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


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch in ``seconds``."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


def split(index: dict, val_every: int) -> tuple[list[int], list[int]]:
    """(train, validation) positions in the index: every ``val_every``-th image of each class."""
    train, val, seen = [], [], {}
    for i, item in enumerate(index["items"]):
        if item["label_index"] < 0:
            continue
        n = seen[item["label"]] = seen.get(item["label"], 0) + 1
        (val if n % val_every == 0 else train).append(i)
    return train, val


def run(root: Path, decode: bool, args, train: list[int], val: list[int], classes: int) -> dict:
    """Trains one classifier; returns its accuracy and seconds per epoch."""
    keras.utils.set_random_seed(args.seed)
    channels = None if decode else args.channels
    common = dict(batch_size=args.batch_size, top_channels=channels, decode=decode)
    train_ds = LatentDataset(root, indices=train, seed=args.seed, **common)
    val_ds = LatentDataset(root, indices=val, shuffle=False, **common)
    model = pixel_model(classes) if decode else latent_model(train_ds.depth, classes)
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
        "input": "pixels" if decode else "latents",
        "shape": list(train_ds[0][0].shape[1:]),
        "val_accuracy": float(accuracy),
        "seconds_per_epoch": float(np.mean(steady)),
        "epochs": args.epochs,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="labelled folder, SRC/<class>/<image>")
    p.add_argument("--latents", type=Path, help="converted folder (default <SRC>-l3ic-<model>)")
    p.add_argument("-m", "--preset", default="32c")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--channels", type=int, help="use only the K most important latent channels")
    p.add_argument("--val-every", type=int, default=5, help="hold out every N-th image per class")
    p.add_argument("--workers", type=int, default=1, help="processes for the conversion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    root = args.latents or args.src.with_name(f"{args.src.name}-l3ic-{args.preset}")
    report = convert(args.src, root, args.preset, args.workers, progress=False)
    print(report.summary(), file=sys.stderr)
    index = read_index(root)
    train, val = split(index, args.val_every)
    if not train or not val:
        sys.exit(f"need labelled images for training and validation in {root / INDEX_NAME}")
    classes = len(index["classes"])
    results = {
        "src": str(args.src),
        "preset": args.preset,
        "classes": classes,
        "train_images": len(train),
        "val_images": len(val),
        "runs": [run(root, decode, args, train, val, classes) for decode in (False, True)],
    }
    for r in results["runs"]:
        print(
            f"{r['input']:8s} {str(tuple(r['shape'])):16s} val accuracy {r['val_accuracy']:.3f}  "
            f"{r['seconds_per_epoch']:.2f} s/epoch"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
