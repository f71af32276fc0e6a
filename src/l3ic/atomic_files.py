"""Atomic file writes: a file appears at its path whole, or not at all.

Every file l3ic writes (compressed images, decoded images, converted datasets and shards,
weights, sidecars, checkpoints, run configs, cached graphs, JSON reports) goes through this
module: the data is written to a temporary file beside the path (``.NAME.XXXX.tmp``) and
renamed over the path, so a crash, a full disk or a kill leaves the old file or none, never half
of one, and many processes can write the same path at once.
"""

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import L3ICError

__all__ = ["open_atomic", "write_atomic", "write_json_atomic", "write_npz_atomic"]


@contextlib.contextmanager
def open_atomic(path: str | os.PathLike, force: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write that appears at ``path`` whole when the block ends, or not at all.

    It is a temporary file beside ``path`` (``.NAME.XXXX.tmp``, with the permissions the umask
    gives a new file), renamed over ``path`` when the block ends normally and removed when it
    raises.

    Raises:
        L3ICError: ``path`` exists and ``force`` is false, or its folder does not exist.
    """
    path = Path(path)
    if path.exists() and not force:
        raise L3ICError(f"{path} exists (use --force / force=True to overwrite)")
    if not path.parent.is_dir():
        raise L3ICError(f"folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: bytes, force: bool = False) -> None:
    """Writes the bytes ``data`` to ``path`` (``open_atomic``; the same errors)."""
    with open_atomic(path, force) as f:
        f.write(data)


def write_json_atomic(path: str | os.PathLike, obj, indent: int = 1) -> None:
    """Writes ``obj`` as JSON text (with a final newline) to ``path``, replacing any file."""
    write_atomic(path, (json.dumps(obj, indent=indent) + "\n").encode(), force=True)


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` as an uncompressed .npz file to ``path``, replacing any file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue(), force=True)
