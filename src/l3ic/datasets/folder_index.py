"""The index of a converted folder of .l3ic files, and its reader.

``DST/index.json`` (``INDEX_NAME``) lists every converted image, so a loader needs no directory
listing::

    {"format": "l3ic-index", "version": 2, "preset": "32c", "fingerprint": "0123...",
     "quality": 50, "classes": ["cat", "dog"],
     "items": [{"path": "cat/001.l3ic", "source": "cat/001.png", "label": "cat",
                "label_index": 0, "width": 768, "height": 512, "bytes": 41234}, ...]}

Paths are relative to DST (``/``-separated); ``label`` is the first folder of the path (null,
with ``label_index`` -1, for images directly in SRC); ``classes`` are the sorted labels, and
``label_index`` indexes them; ``bytes`` is the .l3ic file size; ``quality`` is the
``--quality`` of the conversion (absent before l3ic 0.14.0: 50). Version 1 indexes, which name the
preset ``model``, are still read (``read_index`` returns them with ``preset``).
"""

import json
import os
from pathlib import Path

from .. import container
from ..errors import L3ICError
from .shards import json_int, safe_relative_path

__all__ = ["INDEX_NAME", "INDEX_FORMAT", "INDEX_VERSION", "read_index"]

INDEX_NAME = "index.json"
INDEX_FORMAT, INDEX_VERSION = "l3ic-index", 2
READ_INDEX_VERSIONS = (1, 2)  # version 1 names the preset "model"


def read_index(root: str | os.PathLike) -> dict:
    """Reads and checks ``root/index.json`` (the format above).

    Raises:
        L3ICError: missing, not JSON, or not an l3ic index of a known version.
    """
    path = Path(root) / INDEX_NAME
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise L3ICError(f"cannot read index {path}: {e} (make one with `l3ic convert`)") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise L3ICError(f"{path} is not an l3ic index")
    if index.get("version") not in READ_INDEX_VERSIONS:
        raise L3ICError(f"{path}: unsupported index version {index.get('version')}")
    if index["version"] == 1:
        index["preset"] = index.pop("model", None)
    items = index.setdefault("items", [])
    if not isinstance(items, list) or (items and not isinstance(index.get("preset"), str)):
        raise L3ICError(f"{path}: the index lists no items or names no preset")
    classes = index.setdefault("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise L3ICError(f"{path}: classes is not a list of names; the file is damaged")
    wanted = {  # field: (its check, what it must be)
        "path": (safe_relative_path, f"a path inside {path.parent}"),
        "label_index": (lambda v: json_int(v, -1, len(classes) - 1), "a class index"),
        "width": (lambda v: json_int(v, 1, container.MAX_SIDE), "a size in pixels"),
        "height": (lambda v: json_int(v, 1, container.MAX_SIDE), "a size in pixels"),
    }
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise L3ICError(f"{path}: items[{i}] is not an object; the file is damaged")
        for name, (ok, what) in wanted.items():
            if not ok(item.get(name)):
                raise L3ICError(
                    f"{path}: items[{i}].{name} is {repr(item.get(name))[:40]}, not {what}; "
                    "the file is damaged, convert again"
                )
    return index
