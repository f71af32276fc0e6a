"""Fuzz targets beyond the image decoder: the record readers, the shard readers and convert's
resume metadata (docs/fuzzing.md).

Each target takes arbitrary bytes and returns True where l3ic accepted them (decoded,
planned) and False where it refused them with ``L3ICError``; any exception is a finding.
``tests/fuzz_atheris.py --target=NAME`` runs one under atheris; ``tests/test_fuzz.py`` replays
the kept corpus (``tests/corpus/NAME/``) through each on every CI run, under the normal build.

- ``record``: the bytes as a .l3ic record of the shipped 16c preset, read by the compiled
  reader and by the Python reader (whole, and two channels): both must agree, latent for
  latent, or both refuse.
- ``shard_index``: the bytes as the index of a one-shard dataset (a real tar of two records):
  ``ShardSet.samples`` and every sample's read, whole and by channels.
- ``shard_list``: the bytes as ``shards.json`` of a conversion being resumed: the plan
  (``shard_convert._plan``) and the loaders' ``read_shards``. A plan that passes may name only
  the shards and sources l3ic writes: ``shard-NNNNNN.tar``, paths inside SRC.

    python tests/fuzz_targets.py --write-seeds tests/corpus/    # seed inputs of each target
    python tests/fuzz_targets.py --write-preset preset.bin      # for the C reader's harness

The targets run on the 16c entropy model that the kept corpus was made with, not the shipped
one: records and shard lists name the weights and context tables they were written for, and new
16c weights would refuse every input. ``tests/corpus/preset/`` keeps that model (its sidecar and
context tables; weights fingerprint 797d6ce8d3b5b63d, shipped in l3ic 0.9.0 to 0.14.0), and
``frozen_models`` makes a models folder of it for ``$L3IC_MODELS_DIR`` (``tests/test_fuzz.py``
and ``tests/fuzz_atheris.py`` set it; the targets never run the network).
"""

import argparse
import functools
import io
import json
import os
import shutil
import struct
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from l3ic import container
from l3ic.datasets import shard_convert, shards
from l3ic.errors import L3ICError
from l3ic.latent_coder import get_coder
from l3ic.record_decoder import COMPILED

PRESET = "16c"
FROZEN = Path(__file__).with_name("corpus") / "preset"  # the corpus's 16c entropy model
TARGETS = ("record", "shard_index", "shard_list")


def _latent(seed: int, h: int = 5, w: int = 7) -> np.ndarray:
    """(h, w, 16) int8 whose neighbours are alike (context-coded channels in version 4)."""
    rng = np.random.default_rng(seed)
    q = np.cumsum(rng.laplace(0, rng.uniform(0.2, 1.5, 16), (h, w, 16)), axis=1)
    return np.clip(np.round(q - np.round(q.mean(axis=(0, 1)))), -15, 16).astype(np.int8)


def record(data: bytes) -> bool:
    coder = get_coder(PRESET)
    accepted = False
    for channels in (None, [3, 0]):
        compiled, coder.compiled = coder.compiled, None
        try:
            want = coder.read(data, channels, max_pixels=1 << 16)[0]
        except L3ICError:
            want = None
        finally:
            coder.compiled = compiled
        fast = coder.read_compiled(data, channels, max_pixels=1 << 16)
        if fast is not None and (want is None or not np.array_equal(fast[0], want)):
            raise AssertionError("the compiled reader decoded what the Python reader did not")
        if want is not None and COMPILED and fast is None and data[4] >= 3:
            # versions 3 and 4 of the shipped preset: the compiled reader decodes them all
            raise AssertionError("the compiled reader gave up on a record Python decodes")
        accepted = accepted or want is not None
    return accepted


@functools.cache
def _shard_folder() -> tuple[Path, bytes]:
    """A one-shard dataset of two 16c records (built once per process), and its index."""
    coder = get_coder(PRESET)
    root = Path(tempfile.mkdtemp(prefix="l3ic-fuzz-shards-"))
    records = [coder.pack(_latent(seed), (40, 56)) for seed in (1, 2)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, data in enumerate(records):
            info = tarfile.TarInfo(f"{i:09d}.l3ic")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = buf.getvalue()
    (root / "shard-000000.tar").write_bytes(tar_bytes)
    samples = []
    with tarfile.open(root / "shard-000000.tar") as tar:
        for i, (m, data) in enumerate(zip(tar.getmembers(), records, strict=True)):
            c = container.parse_header(data, coder.channel_order)
            samples.append(
                {"key": f"{i:09d}", "source": f"cat/{i}.png", "label": 0, "width": 56,
                 "height": 40, "offset": m.offset_data, "bytes": len(data),
                 "streams": shards._file_positions(c)}
            )  # fmt: skip
    index = {"format": "l3ic-shard-index", "version": 1, "shard": "shard-000000.tar",
             "tar_bytes": len(tar_bytes), "preset": PRESET,
             "fingerprint": coder.fingerprint.hex(), "stream_order": coder.channel_order.tolist(),
             "samples": samples, "failed": [], "warnings": []}  # fmt: skip
    meta = {"format": "l3ic-shards", "version": 1, "preset": PRESET,
            "fingerprint": coder.fingerprint.hex(), "classes": ["cat"],
            "shards": [{"name": "shard-000000.tar", "first_key": 0,
                        "sources": ["cat/0.png", "cat/1.png"], "samples": 2,
                        "bytes": len(tar_bytes), "failed": 0}]}  # fmt: skip
    (root / "shards.json").write_text(json.dumps(meta))
    return root, json.dumps(index).encode()


def shard_index(data: bytes) -> bool:
    root, _ = _shard_folder()
    (root / "shard-000000.json").write_bytes(data)
    try:
        with shards.ShardSet(root) as ds:
            for j in range(len(ds.samples(0))):
                ds.read(0, j)
                ds.read(0, j, [2, 3, 9])
    except L3ICError:
        return False
    return True


@functools.cache
def _source_folder() -> Path:
    """SRC of a conversion: two unreadable images in cat/ (the plan only lists them)."""
    src = Path(tempfile.mkdtemp(prefix="l3ic-fuzz-src-"))
    (src / "cat").mkdir()
    for name in ("0.png", "1.png"):
        (src / "cat" / name).write_bytes(b"not an image")
    return src


def shard_list(data: bytes) -> bool:
    src, fp = _source_folder(), get_coder(PRESET).fingerprint.hex()
    with tempfile.TemporaryDirectory(prefix="l3ic-fuzz-dst-") as dst:
        (Path(dst) / "shards.json").write_bytes(data)
        try:
            meta = shard_convert._plan(src, Path(dst), PRESET, fp, 1 << 20)
        except L3ICError:
            meta = None
        if meta is not None:
            for i, shard in enumerate(meta["shards"]):
                if shard["name"] != shards.shard_name(i):
                    raise AssertionError(f"the plan names shard {shard['name']!r}")
                if not all(shards.safe_relative_path(rel) for rel in shard["sources"]):
                    raise AssertionError("the plan reads a source outside SRC")
        try:
            shards.read_shards(dst)
        except L3ICError:
            pass
    return meta is not None


def seeds() -> dict[str, dict[str, bytes]]:
    """A few valid inputs of each target."""
    coder = get_coder(PRESET)
    q = _latent(3, 6, 9)
    record_seeds = {
        "v4": coder.pack(q, (48, 72)),
        "v3": coder.writing(3).pack(q, (48, 72)),
        "v4-gray": coder.pack(_latent(4, 3, 2), (17, 9), grayscale=True),
    }
    root, index = _shard_folder()
    meta = json.loads((root / "shards.json").read_text())
    unfinished = json.loads(json.dumps(meta))
    for shard in unfinished["shards"]:
        del shard["samples"], shard["bytes"], shard["failed"]
    return {
        "record": record_seeds,
        "shard_index": {"index": index},
        "shard_list": {"finished": json.dumps(meta).encode(),
                       "unfinished": json.dumps(unfinished).encode()},
    }  # fmt: skip


def write_preset(path: Path) -> None:
    """The 16c preset as record_decoder.c's arguments, for tests/fuzz_record_decoder.c: each
    a little-endian int64 length then the bytes: preset name, fingerprint, channels (int32),
    stream order (int32), prior cumulative tables (uint32), tables id, context blocks, context
    offsets (uint32), context bits (float64)."""
    rd = get_coder(PRESET).compiled
    if rd is None:
        raise SystemExit("the compiled reader is not installed")
    tables_id, blocks, where, bits = rd._contexts
    parts = [rd.preset, rd.fingerprint, struct.pack("<i", rd.num_channels), rd._order.tobytes(),
             rd._cdfs.astype(np.uint32).tobytes(), tables_id, blocks.tobytes(), where.tobytes(),
             bits.tobytes()]  # fmt: skip
    path.write_bytes(b"".join(struct.pack("<q", len(p)) + bytes(p) for p in parts))


def frozen_models(folder: Path) -> Path:
    """``folder`` made a models folder holding the 16c entropy model of ``FROZEN``, for
    ``$L3IC_MODELS_DIR``; returns it. Its ``16c.npz`` is an empty placeholder: l3ic looks for a
    preset's sidecar beside its weights, and the targets read and plan, never running the
    network."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (f"{PRESET}.json", f"{PRESET}.contexts.npz"):
        shutil.copyfile(FROZEN / name, folder / name)
    (folder / f"{PRESET}.npz").write_bytes(b"")
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write-seeds", type=Path, help="write each target's seeds to DIR/TARGET/")
    p.add_argument("--write-preset", type=Path, help="write the C harness's preset file")
    args = p.parse_args(argv)
    if "L3IC_MODELS_DIR" not in os.environ:  # seeds and the C harness's preset: FROZEN's model
        models = frozen_models(Path(tempfile.mkdtemp(prefix="l3ic-fuzz-models-")))
        os.environ["L3IC_MODELS_DIR"] = str(models)
    if args.write_seeds:
        for target, inputs in seeds().items():
            (args.write_seeds / target).mkdir(parents=True, exist_ok=True)
            for name, data in inputs.items():
                (args.write_seeds / target / f"seed-{name}").write_bytes(data)
    if args.write_preset:
        write_preset(args.write_preset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
