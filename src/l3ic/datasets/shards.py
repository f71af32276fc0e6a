"""Sharded latent datasets: WebDataset-style tar shards of .l3ic records, with an index.

A folder written by ``l3ic convert --layout shards`` (``shard_convert``) holds::

    shards.json            the dataset: preset, classes, and which images go to which shard
    shard-000000.tar       one shard: for each image, the members KEY.l3ic (the .l3ic file),
                           KEY.cls (the class index, as text; absent for unlabelled images) and
                           KEY.json (source path, label, width, height), in this order
    shard-000000.json      the shard's index (below)
    ...

The tars are plain POSIX (ustar) archives in the layout of the ``webdataset`` library: its
``WebDataset(urls)`` and ``tarfile_to_samples`` read them as they are. ``KEY`` is the image's
position in the plan, nine digits (``000000042``); the source path is in ``KEY.json``, since
paths may hold dots, which WebDataset reads as the start of an extension.

A shard's index (``SHARD_INDEX_FORMAT``) lets a reader fetch one image, or only some of its
latent channels, without scanning the tar::

    {"format": "l3ic-shard-index", "version": 1, "shard": "shard-000000.tar",
     "tar_bytes": 268431360, "preset": "32c", "fingerprint": "0123...",
     "stream_order": [5, 0, 17, ...],
     "samples": [{"key": "000000000", "source": "cat/001.png", "label": 0, "width": 256,
                  "height": 256, "offset": 512, "bytes": 5130, "streams": [301, 301, 490, ...]},
                 ...],
     "failed": [["cat/007.png", "cannot identify image file"]], "warnings": []}

``offset`` and ``bytes`` locate the KEY.l3ic member's data in the tar. ``streams`` holds C + 1
byte positions within that member, in file order: the header is ``[0, streams[0])``, the i-th
stored stream is ``[streams[i], streams[i + 1])`` (empty for a constant channel), and the
file's CRC-32 follows ``streams[C]``. Streams are stored in the preset's importance order
(``stream_order``, format version 3: the i-th stored stream is channel ``stream_order[i]``), so
the header and the k most important channels are the one range ``[0, streams[k])``, read at
once. ``label`` is -1 for an image outside any class folder.

A shard is finished when its tar and its index both exist and agree (the index's ``tar_bytes``
is the tar's size): every shard is written to a temporary file and renamed, the tar first, so a
killed writer leaves either nothing or a tar without an index, which the next run rewrites.
"""

import io
import json
import os
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .. import container
from ..atomic_files import open_atomic, write_atomic
from ..errors import L3ICError, one_line
from ..latent_coder import get_coder
from .compress_files import compress_files

__all__ = [
    "SHARDS_NAME",
    "ShardTask",
    "ShardSet",
    "shard_index_name",
    "write_shard",
    "finished_shard",
    "read_shards",
    "check_shard_list",
]

SHARDS_NAME = "shards.json"
SHARDS_FORMAT, SHARDS_VERSION = "l3ic-shards", 1
SHARD_INDEX_FORMAT, SHARD_INDEX_VERSION = "l3ic-shard-index", 1


def shard_index_name(name: str) -> str:
    """The index file of shard ``name``: ``shard-000000.tar`` -> ``shard-000000.json``."""
    return name.removesuffix(".tar") + ".json"


@dataclass
class ShardTask:
    """What one worker needs to write one shard.

    Attributes:
        name: the shard's file name, e.g. ``shard-000000.tar``.
        items: (key, source path relative to ``src`` with ``/``, label index or -1) per image.
        classes: the dataset's class names (``label`` indexes them).
        src, dst: the image folder and the dataset folder.
        preset, runtime: the preset to compress with and the network's runtime.
        drop_alpha: discard alpha channels instead of failing on RGBA images.
    """

    name: str
    items: list[tuple[str, str, int]]
    classes: list[str]
    src: str
    dst: str
    preset: str
    runtime: str
    drop_alpha: bool = False


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, fileobj=io.BytesIO(data))


def write_shard(task: ShardTask) -> dict:
    """Converts the images of one shard and writes the shard and its index, each atomically.

    Runs in a worker process (any engine): the preset's network is loaded once per process
    (``api.get_codec``), and compresses ``compress_files.BATCH`` images at a time. Images that
    cannot be converted are listed in the index's ``failed``, not raised.

    Returns:
        The shard's index (the dict written to ``shard_index_name(task.name)``).
    """
    from ..api import get_codec  # the network (cached per process): only where images are converted

    dst = Path(task.dst)
    codec = get_codec(task.preset, task.runtime)
    records, failed, caught_all = [], [], []
    paths = [Path(task.src, rel) for _, rel, _ in task.items]
    compressed = compress_files(codec, paths, task.drop_alpha)
    for (key, rel, label), done in zip(task.items, compressed, strict=True):
        caught_all += [[rel, message] for message in done.warnings]
        if done.data is None:
            failed.append([rel, done.failed])
            continue
        data = done.data
        c = container.parse_header(data, codec.coder.channel_order)
        streams = _file_positions(c)
        meta = {
            "source": rel,
            "label": task.classes[label] if label >= 0 else None,
            "width": c.width,
            "height": c.height,
        }
        records.append((key, rel, label, data, streams, meta))
    with (
        open_atomic(dst / task.name, force=True) as f,
        tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for key, _, label, data, _, meta in records:
            _member(tar, f"{key}.l3ic", data)
            if label >= 0:
                _member(tar, f"{key}.cls", str(label).encode())
            _member(tar, f"{key}.json", json.dumps(meta).encode())
    offsets = _l3ic_offsets(dst / task.name)
    tar_bytes = (dst / task.name).stat().st_size
    coder = codec.coder
    index = {
        "format": SHARD_INDEX_FORMAT,
        "version": SHARD_INDEX_VERSION,
        "shard": task.name,
        "tar_bytes": tar_bytes,
        "preset": task.preset,
        "fingerprint": coder.fingerprint.hex(),
        "stream_order": coder.channel_order.tolist(),
        "samples": [
            {
                "key": key,
                "source": rel,
                "label": label,
                "width": meta["width"],
                "height": meta["height"],
                "offset": offsets[key],
                "bytes": len(data),
                "streams": streams,
            }
            for key, rel, label, data, streams, meta in records
        ],
        "failed": failed,
        "warnings": caught_all,
    }
    text = json.dumps(index, separators=(",", ":")) + "\n"
    write_atomic(dst / shard_index_name(task.name), text.encode(), force=True)
    return index


def _file_positions(c: container.Container) -> list[int]:
    """The index's ``streams`` of a parsed record: header end, then each stored stream's end."""
    order = c.channel_order or range(len(c.codes))
    return [c.header_bytes, *(c.offsets[k] + c.stream_lengths[k] for k in order)]


def _l3ic_offsets(path: Path) -> dict[str, int]:
    """{key: byte offset of the data of member KEY.l3ic} of a tar just written."""
    with tarfile.open(path, mode="r:") as tar:
        return {
            m.name.removesuffix(".l3ic"): m.offset_data
            for m in tar.getmembers()
            if m.name.endswith(".l3ic")
        }


def _load_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise L3ICError(f"cannot read {what} {path}: {one_line(e)}") from None


def json_int(value, low: int = 0, high: int = 2**62) -> bool:
    """Whether ``value`` is a JSON integer (not a bool) in low..high."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _field(path: Path, field: str, why: str) -> L3ICError:
    return L3ICError(f"{path}: {field} {why}; the file is damaged, convert again")


def shard_name(i: int) -> str:
    """The name of shard ``i`` of a conversion: the only shard names l3ic writes or reads."""
    return f"shard-{i:06d}.tar"


def safe_relative_path(rel) -> bool:
    """Whether ``rel`` is a relative POSIX path that stays inside its folder (no ``..``, no
    absolute path, no empty or ``.`` part), as ``convert.find_images`` writes them."""
    if not isinstance(rel, str) or not rel or "\0" in rel or (os.sep == "\\" and "\\" in rel):
        return False
    parts = rel.split("/")
    return not PurePosixPath(rel).is_absolute() and all(p not in ("", ".", "..") for p in parts)


def check_shard_list(meta, path: Path, finished: bool) -> dict:
    """Checks a parsed ``shards.json`` as the container is checked, before anything is read or
    written through it: its types, each shard's name (``shard_name(i)``: nothing outside the
    folder), each source (a relative path inside SRC, its class folder a listed class) and the
    keys; with ``finished``, each shard's sample count too (a shard without one is a
    conversion that has not finished).

    Raises:
        L3ICError: not an l3ic shard list, another version, or a field out of place, naming
            the file and the field.
    """
    if not isinstance(meta, dict) or meta.get("format") != SHARDS_FORMAT:
        raise L3ICError(f"{path} is not an l3ic shard list")
    if meta.get("version") != SHARDS_VERSION:
        raise L3ICError(f"{path}: unsupported shard list version {meta.get('version')!r}")
    for field in ("preset", "fingerprint"):
        if not isinstance(meta.get(field), str):
            raise _field(path, field, "is not a string")
    classes, shards = meta.get("classes"), meta.get("shards")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _field(path, "classes", "is not a list of names")
    if len(set(classes)) != len(classes):
        raise _field(path, "classes", "repeats a name")
    if not isinstance(shards, list):
        raise _field(path, "shards", "is not a list")
    known, key = set(classes), 0
    for i, shard in enumerate(shards):
        at = f"shards[{i}]"
        if not isinstance(shard, dict):
            raise _field(path, at, "is not an object")
        if shard.get("name") != shard_name(i):
            raise _field(path, f"{at}.name", f"is {shard.get('name')!r}, not {shard_name(i)!r}")
        if shard.get("first_key") != key or not json_int(key):
            raise _field(path, f"{at}.first_key", f"is {shard.get('first_key')!r}, not {key}")
        sources = shard.get("sources")
        if not isinstance(sources, list):
            raise _field(path, f"{at}.sources", "is not a list")
        for j, rel in enumerate(sources):
            if not safe_relative_path(rel):
                raise _field(path, f"{at}.sources[{j}]", "is not a path inside the source folder")
            if "/" in rel and rel.split("/")[0] not in known:
                raise _field(path, f"{at}.sources[{j}]", "is in a folder not listed in classes")
        key += len(sources)
        if finished and "samples" not in shard:
            raise L3ICError(
                f"{path}: shard {shard['name']} is not finished; run the same `l3ic convert` "
                "again to finish the conversion"
            )
        if finished and not json_int(shard["samples"], 0, len(sources)):
            raise _field(path, f"{at}.samples", f"is not a count in 0..{len(sources)}")
    return meta


def finished_shard(dst: str | os.PathLike, name: str, keys: list[str]) -> dict | None:
    """The index of shard ``name`` if it is finished and holds the images ``keys``, else None.

    Finished: the index reads, names this shard, and its ``tar_bytes`` is the tar's size; every
    key is either a sample or a failed image of the shard.
    """
    dst = Path(dst)
    index_path, tar_path = dst / shard_index_name(name), dst / name
    if not index_path.exists() or not tar_path.exists():
        return None
    try:
        index = _check_shard_index(_load_json(index_path, "shard index"), index_path, name)
    except L3ICError:
        return None
    if index["tar_bytes"] != tar_path.stat().st_size:
        return None
    if len(index["samples"]) + len(index["failed"]) != len(keys):
        return None
    planned = set(keys)
    if any(s["key"] not in planned for s in index["samples"]):
        return None
    return index


def _check_shard_index(
    index, path: Path, name: str, channels: int | None = None, classes: int | None = None
) -> dict:
    """Checks a parsed shard index of shard ``name`` as the container is checked, before any
    read: types, ranges, and each sample's bytes inside the tar size it declares (which
    ``ShardSet`` checks against the tar itself); with ``channels``, C + 1 stream positions a
    sample; with ``classes``, labels below it.

    Raises:
        L3ICError: naming the file and the field.
    """
    if not isinstance(index, dict) or index.get("format") != SHARD_INDEX_FORMAT:
        raise L3ICError(f"{path} is not an l3ic shard index")
    if index.get("version") != SHARD_INDEX_VERSION:
        raise L3ICError(f"{path}: unsupported shard index version {index.get('version')!r}")
    if index.get("shard") != name:
        raise _field(path, "shard", f"is {index.get('shard')!r}, not {name!r}")
    tar_bytes, samples = index.get("tar_bytes"), index.get("samples")
    if not json_int(tar_bytes):
        raise _field(path, "tar_bytes", "is not a size")
    if not isinstance(samples, list):
        raise _field(path, "samples", "is not a list")
    if not isinstance(index.get("failed"), list):
        raise _field(path, "failed", "is not a list")
    for i, sample in enumerate(samples):
        at = f"samples[{i}]"
        if not isinstance(sample, dict):
            raise _field(path, at, "is not an object")
        for field in ("key", "source"):
            if not isinstance(sample.get(field), str):
                raise _field(path, f"{at}.{field}", "is not a string")
        if not json_int(sample.get("label"), -1, 2**62 if classes is None else classes - 1):
            raise _field(path, f"{at}.label", "is not a class index")
        for field in ("width", "height"):
            if not json_int(sample.get(field), 1, container.MAX_SIDE):
                raise _field(path, f"{at}.{field}", "is not an image size")
        offset, size, streams = sample.get("offset"), sample.get("bytes"), sample.get("streams")
        if not json_int(offset) or not json_int(size, 8) or offset + size > tar_bytes:
            raise _field(path, f"{at}.offset/bytes", f"lie outside the tar's {tar_bytes} bytes")
        if (
            not isinstance(streams, list)
            or not streams
            or (channels is not None and len(streams) != channels + 1)
            or not all(json_int(p, 1, size - 4) for p in streams)
            or any(a > b for a, b in zip(streams, streams[1:], strict=False))
            or streams[-1] != size - 4
        ):
            raise _field(path, f"{at}.streams", "are not the record's stream positions")
    return index


def read_shards(root: str | os.PathLike) -> dict:
    """Reads and checks ``root/shards.json`` of a finished conversion.

    Raises:
        L3ICError: missing or not an l3ic shards file, or a conversion that has not finished
            (a shard without its summary: run the same ``l3ic convert`` again to finish it).
    """
    path = Path(root) / SHARDS_NAME
    return check_shard_list(_load_json(path, "shard list"), path, finished=True)


class _OpenFiles:
    """The shard files one ``ShardSet`` opened in one process, {shard: descriptor}; closed by
    ``close`` or when dropped. A copy a forked child inherits closes the child's copies of the
    descriptors only."""

    def __init__(self):
        self.fds: dict[int, int] = {}
        self.pid = os.getpid()

    def close(self, _close=os.close) -> None:  # os.close bound early: __del__ at shutdown
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            try:
                _close(fd)
            except OSError:
                pass

    def __del__(self):
        self.close()


class ShardSet:
    """Random access to the samples of a sharded dataset, reading only the bytes needed.

    Each shard's index is loaded on first use; each shard file is opened once per process
    (and reopened after a fork) and read with ``os.pread``, so one ``ShardSet`` can be shared by
    threads and copied into worker processes. The files close with ``close()``, at the end of a
    ``with`` block, or when the ``ShardSet`` is dropped.

    Args:
        root: the folder written by ``l3ic convert --layout shards``.

    Attributes:
        root: the folder.
        preset, classes: from ``shards.json``.
        names: shard file names, in order.
        counts: (S,) int64 samples of each shard.
        coder: the preset's ``LatentCoder``.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        meta = read_shards(self.root)
        self.preset, self.classes = meta["preset"], meta["classes"]
        self.names = [s["name"] for s in meta["shards"]]
        self.counts = np.array([s["samples"] for s in meta["shards"]], dtype=np.int64)
        self.coder = get_coder(self.preset)
        # the file position of each channel's stream (format version 3: the stream order)
        self._positions = np.argsort(self.coder.channel_order).tolist()
        if meta.get("fingerprint") != self.coder.fingerprint.hex():
            raise L3ICError(
                f"{self.root} was converted with weights {meta.get('fingerprint')} of preset "
                f"{self.preset}, not with the weights of this l3ic "
                f"({self.coder.fingerprint.hex()}); convert it again"
            )
        self._indexes: dict[int, list[dict]] = {}
        self._tar_bytes: dict[int, int] = {}
        self._files = _OpenFiles()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.counts.sum())

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_files=None, _lock=None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._files, self._lock = _OpenFiles(), threading.Lock()

    def __enter__(self) -> "ShardSet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def samples(self, shard: int) -> list[dict]:
        """The index entries of shard ``shard`` (loaded and checked on first use).

        Raises:
            L3ICError: the index is missing or unreadable, or disagrees with shards.json or
                with its tar (size), naming the shard.
        """
        if shard not in self._indexes:
            name = self.names[shard]
            path = self.root / shard_index_name(name)
            index = _load_json(path, "shard index")
            index = _check_shard_index(
                index, path, name, self.coder.num_channels, len(self.classes)
            )
            if len(index["samples"]) != self.counts[shard]:
                raise L3ICError(
                    f"{path} does not match {SHARDS_NAME} ({len(index['samples'])} samples; "
                    f"{SHARDS_NAME} says {self.counts[shard]}): convert again"
                )
            self._open(shard, index["tar_bytes"])
            self._tar_bytes[shard] = index["tar_bytes"]
            self._indexes[shard] = index["samples"]
        return self._indexes[shard]

    def _open(self, shard: int, tar_bytes: int) -> int:
        with self._lock:
            if self._files.pid != os.getpid():  # a forked child: its own descriptors
                self._files.close()
                self._files = _OpenFiles()
            files = self._files.fds
            if shard not in files:
                path = self.root / self.names[shard]
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError as e:
                    raise L3ICError(f"cannot open shard {path}: {one_line(e)}") from None
                size = os.fstat(fd).st_size
                if size != tar_bytes:
                    os.close(fd)
                    raise L3ICError(
                        f"shard {path} has {size} bytes, its index says {tar_bytes}: the shard "
                        "is truncated or was replaced; convert again"
                    )
                files[shard] = fd
            return files[shard]

    def _pread(self, shard: int, sample: dict, start: int, stop: int) -> bytes:
        fd = self._open(shard, self._tar_bytes[shard])
        data = os.pread(fd, stop - start, sample["offset"] + start)
        if len(data) != stop - start:
            raise L3ICError(
                f"shard {self.root / self.names[shard]}: sample {sample['key']} is cut short"
            )
        return data

    def read_bytes(self, shard: int, j: int) -> bytes:
        """The whole .l3ic file of sample ``j`` of shard ``shard``."""
        sample = self.samples(shard)[j]
        return self._pread(shard, sample, 0, sample["bytes"])

    def read(
        self, shard: int, j: int, channels: list[int] | None = None, partial: bool = False
    ) -> np.ndarray:
        """Decodes the latent of sample ``j`` of shard ``shard``, reading only what it needs.

        With ``channels`` None the whole record is read and checked (both CRC-32s); otherwise
        only its header and the streams of ``channels`` (``container.parse_header``).

        Args:
            shard, j: the sample.
            channels: channel indices to decode, in order (default all).
            partial: return the whole (h, w, C) latent with the channels not read at their
                likeliest value (``LatentCoder.read_partial``), for decoding to pixels.

        Returns:
            (h, w, len(channels)) int8, or (h, w, C) int8 with ``partial``.

        Raises:
            L3ICError: a damaged record or one the index does not describe, naming the shard
                and the sample.
        """
        sample = self.samples(shard)[j]
        try:
            if channels is not None:
                return self._read_channels(shard, sample, channels, partial)
            data = self._pread(shard, sample, 0, sample["bytes"])
            if partial:
                return self.coder.read_partial(data, range(self.coder.num_channels))[0]
            return self.coder.read(data)[0]
        except L3ICError as e:
            raise L3ICError(
                f"shard {self.root / self.names[shard]}, sample {sample['key']} "
                f"({sample['source']}): {e}"
            ) from None

    def _read_channels(
        self, shard: int, sample: dict, channels: list[int], partial: bool
    ) -> np.ndarray:
        """``read`` of some channels: the record's header and the streams of ``channels``, read
        in as few ranges as the stream order allows (the header with the first run, if it
        starts there). One range from the start is decoded by the compiled reader."""
        streams, order = sample["streams"], self.coder.channel_order
        if not all(0 <= int(k) < len(order) for k in channels):
            raise L3ICError(f"channels must lie in 0..{len(order) - 1}, got {list(channels)}")
        runs = _coalesce(sorted({self._positions[int(k)] for k in channels}))
        first = runs[0][0] == 0
        head = self._pread(shard, sample, 0, streams[runs[0][1]] if first else streams[0])
        if first and len(runs) == 1 and not partial:
            fast = self.coder.read_compiled(head, channels, whole=False)
            if fast is not None and fast[2] == streams and streams[-1] + 4 == sample["bytes"]:
                return fast[0]
        c = container.parse_header(head, order)
        if _file_positions(c) != streams or c.file_bytes != sample["bytes"]:
            raise L3ICError("its header does not match the shard index")
        for start, stop in runs:
            data = head if first and start == 0 else None
            if data is None:
                data = self._pread(shard, sample, streams[start], streams[stop])
            base = 0 if data is head else streams[start]
            for i in range(start, stop):
                c.codes[order[i]].stream = data[streams[i] - base : streams[i + 1] - base]
        if partial:
            return self.coder.read_partial(c, channels)[0]
        return self.coder.read(c, channels)[0]

    def close(self) -> None:
        """Closes the shard files this process opened (a later read opens them again)."""
        with self._lock:
            self._files.close()


def _coalesce(positions: list[int]) -> list[tuple[int, int]]:
    """Runs [start, stop) of adjacent stream positions among sorted ``positions``: one read
    each."""
    runs: list[tuple[int, int]] = []
    for k in positions:
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0], k + 1)
        else:
            runs.append((k, k + 1))
    return runs
