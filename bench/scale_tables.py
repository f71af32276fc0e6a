"""Do the priors and context tables need to depend on the quantisation scale?

    python -m bench.scale_tables ../shared/data/train-gpu --preset 32c [--train-images 200]

A preset's priors and context tables were learned from latents at scale 1; a file at another
scale (``--quality``) is coded with them all the same, each channel picking its cheapest mode.
This measures what that costs: for each scale, priors and tables are learned again from the
latents of training images at that scale (the first ``--train-images`` of the training split,
as ``l3ic train export`` learns them), and the validation split's files are packed with the
shipped entropy model and with the scale's own. The encoder runs once per image; only
rounding, learning and coding repeat. Prints the bytes of both and the saving.
"""

import argparse
import json
from pathlib import Path

from tqdm import tqdm

import l3ic
from l3ic import context_model
from l3ic.codebook import quantize
from l3ic.image import list_images, read_image
from l3ic.latent_coder import LatentCoder
from l3ic.training.data import split_files
from l3ic.training.entropy_model import priors_of

SCALES = (0.5, 0.707, 1.0, 1.414, 2.0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the training data folder (its split is used)")
    p.add_argument("--preset", default="32c")
    p.add_argument("--train-images", type=int, default=200)
    p.add_argument("--json", type=Path, help="write the numbers here")
    args = p.parse_args(argv)
    train, val = split_files(list_images(args.folder))
    codec = l3ic.Codec(args.preset)

    def latents(files):
        return [
            (codec.encode_z(read_image(f)), read_image(f).shape[:2])
            for f in tqdm(files, leave=False, desc="encoding")
        ]

    z_train = [z for z, _ in latents(train[: args.train_images])]
    z_val = latents(val)
    rows = []
    for scale in SCALES:
        s = round(scale * 1024) / 1024
        q_train = [quantize(z, s) for z in z_train]
        priors = priors_of(q_train, codec.num_channels)
        tables = context_model.learn_tables(q_train, priors)
        own = LatentCoder(
            codec.preset, codec.fingerprint, priors, codec.channel_order, None, tables
        )
        shipped = sum(len(codec.coder.pack(quantize(z, s), shape, scale=s)) for z, shape in z_val)
        refit = sum(len(own.pack(quantize(z, s), shape, scale=s)) for z, shape in z_val)
        pixels = sum(shape[0] * shape[1] for _, shape in z_val)
        rows.append(
            {
                "scale": s,
                "bpp_shipped_tables": 8 * shipped / pixels,
                "bpp_own_tables": 8 * refit / pixels,
                "saving": 1 - refit / shipped,
            }
        )
        r = rows[-1]
        print(
            f"scale {s:.3f}: {r['bpp_shipped_tables']:.4f} bpp with the shipped model, "
            f"{r['bpp_own_tables']:.4f} with its own ({100 * r['saving']:.2f} % saved)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"preset": args.preset, "train_images": len(z_train), "val_images": len(z_val)}
        args.json.write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
