"""The cache of built graphs: where it is, how its files are named, written and found again, and
the removal of what no installed preset uses any more (``l3ic cache``).

The ONNX Runtime and OpenVINO runtimes (``runtime``) build a preset's graphs from its weights at
first use and keep them here, one file per graph and weights, named ``P-FP-gV.PART.onnx`` (preset
P, weights fingerprint FP, ``GRAPH_VERSION`` V, PART "encoder" or "decoder"), with OpenVINO's
compiled models beside them as ``P-FP-gV.PART.openvino-TAG.blob`` (TAG: OpenVINO's version, the
precision, the threads). New weights or a new graph version therefore get new files, and the old
ones would stay for ever. So:

- a file's last use is its access time, set whenever a runtime opens it (``mark_used``), whatever
  the file system's ``noatime`` or ``relatime`` would keep;
- whenever a file is written (a graph built: new weights, a new l3ic), files unused for
  ``UNUSED_DAYS`` days are removed (``write``), so an upgraded install does not keep its old
  graphs, and two installs sharing the folder do not remove each other's graphs in use;
- ``l3ic cache`` shows the folder and what in it the installed presets use; ``--prune`` removes
  the rest, ``--clear`` everything (``prune``).

Only files named as above (and the temporary files of their writes, ``.NAME.XXXX.tmp``, left by
a killed process) are ever removed: ``$L3IC_CACHE_DIR`` may name a folder that holds others.
A file removed while another process is about to open it costs that process a rebuild, never an
error (the runtimes rebuild a graph they cannot read).
"""

import dataclasses
import os
import re
import time
from pathlib import Path

from .atomic_files import write_atomic
from .errors import L3ICError

__all__ = [
    "GRAPH_VERSION",
    "UNUSED_DAYS",
    "graph_cache_dir",
    "graph_path",
    "write",
    "mark_used",
    "CachedFile",
    "cached_files",
    "in_use_keys",
    "prune",
]

# Part of the cache key of built graphs: bump it whenever onnx_graph's graphs change, so that no
# graph cached by an older l3ic is reused.
GRAPH_VERSION = 2  # 2: the encoder gives z (float32), the decoder takes q / s (float32)
UNUSED_DAYS = 30  # files unused this long go when the next file is written

_NAME = re.compile(
    r"(?P<preset>[A-Za-z0-9_]+)-(?P<fingerprint>[0-9a-f]{16})-g(?P<version>[0-9]+)"
    r"\.(?P<part>encoder|decoder)\.(?P<kind>onnx|openvino-[0-9a-f]{12}\.blob)"
)
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[^.]+\.tmp")  # atomic_files' ".NAME.XXXX.tmp"
_TEMPORARY_AGE = 24 * 3600  # seconds after which a temporary file is a leftover


def graph_cache_dir() -> Path:
    """Where built graphs are kept: ``$L3IC_CACHE_DIR``, else ``$XDG_CACHE_HOME/l3ic``, else
    ``~/.cache/l3ic``."""
    if os.environ.get("L3IC_CACHE_DIR"):
        return Path(os.environ["L3IC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "l3ic"


def graph_path(key: str, part: str, suffix: str = ".onnx") -> Path:
    """The cached file of graph ``part`` ("encoder" or "decoder") of the weights ``key``
    ("PRESET-FINGERPRINT"); ``suffix``: ".onnx", or OpenVINO's ".openvino-TAG.blob"."""
    return graph_cache_dir() / f"{key}-g{GRAPH_VERSION}.{part}{suffix}"


def write(path: Path, data: bytes) -> bool:
    """Writes ``data`` to the cache file ``path`` whole (through a temporary file), making the
    folder, then removes the folder's files unused for ``UNUSED_DAYS`` days. A cache that cannot
    be written is skipped. Returns whether the file was written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, force=True)
    except (OSError, L3ICError):
        return False
    prune(path.parent, unused_for=UNUSED_DAYS * 86400)
    return True


def mark_used(path: Path) -> None:
    """Records now as the last use of the cache file ``path`` (its access time; the modification
    time stays that of the write). A file that cannot be touched is left as it is."""
    try:
        os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
    except OSError:
        pass


@dataclasses.dataclass(frozen=True)
class CachedFile:
    """One file of the cache.

    Attributes:
        path: where it is.
        key: "PRESET-FINGERPRINT", the weights it was built from.
        graph_version: the ``GRAPH_VERSION`` it was built with.
        runtime: "onnx" (an ONNX graph) or "openvino" (a model OpenVINO compiled from one).
        size: bytes.
        last_used: its last use, seconds since the epoch (``mark_used``).
    """

    path: Path
    key: str
    graph_version: int
    runtime: str
    size: int
    last_used: float

    def in_use(self, keys: set[str]) -> bool:
        """Whether it is a graph of weights ``keys`` (``in_use_keys()``) of this GRAPH_VERSION."""
        return self.key in keys and self.graph_version == GRAPH_VERSION


def cached_files(folder: Path | None = None) -> list[CachedFile]:
    """The cache's files (of ``folder``, default ``graph_cache_dir()``) by name; files named
    otherwise are not l3ic's and are not listed. An absent folder holds none."""
    folder = Path(folder) if folder is not None else graph_cache_dir()
    files = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = _NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed meanwhile
            continue
        kind = match["kind"]
        files.append(
            CachedFile(
                path=Path(entry.path),
                key=f"{match['preset']}-{match['fingerprint']}",
                graph_version=int(match["version"]),
                runtime="onnx" if kind == "onnx" else "openvino",
                size=st.st_size,
                last_used=max(st.st_atime, st.st_mtime),
            )
        )
    return sorted(files, key=lambda f: f.path.name)


def in_use_keys() -> set[str]:
    """The keys ("PRESET-FINGERPRINT") of the installed presets' weights (read from their
    sidecars, in ``presets.models_dir()``), whose graphs of this ``GRAPH_VERSION`` are in use."""
    from .presets import PRESETS, load_sidecar

    keys = set()
    for name in PRESETS:
        try:
            keys.add(f"{name}-{load_sidecar(name)['fingerprint']}")
        except (L3ICError, OSError, KeyError, ValueError):  # a preset not installed
            continue
    return keys


def prune(
    folder: Path | None = None,
    *,
    keep: set[str] | None = None,
    unused_for: float | None = None,
) -> tuple[int, int]:
    """Removes cache files; returns (files removed, bytes freed).

    Args:
        folder: the cache folder (default ``graph_cache_dir()``).
        keep: keys whose files of this ``GRAPH_VERSION`` stay (``in_use_keys()``); None: no
            file stays for its key.
        unused_for: seconds; only files unused longer than this go. None: any file not kept.

    With neither, everything l3ic cached goes (``l3ic cache --clear``). Temporary files of
    cache writes go too once a day old (a process killed while writing leaves one). Files that
    are not l3ic's stay whatever is asked.
    """
    folder = Path(folder) if folder is not None else graph_cache_dir()
    now = time.time()
    removed = freed = 0
    for f in cached_files(folder):
        if keep is not None and f.in_use(keep):
            continue
        if unused_for is not None and now - f.last_used < unused_for:
            continue
        if _remove(f.path):
            removed, freed = removed + 1, freed + f.size
    for path in folder.glob(".*.tmp") if folder.is_dir() else ():
        match = _TEMPORARY.fullmatch(path.name)
        if match is None or _NAME.fullmatch(match["name"]) is None:
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if now - st.st_mtime > _TEMPORARY_AGE and _remove(path):
            removed, freed = removed + 1, freed + st.st_size
    return removed, freed


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:  # another process removed it first
        return False
    except OSError:  # a read-only cache: nothing to free
        return False
    return True
