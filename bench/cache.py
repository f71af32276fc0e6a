"""Append-only result cache of the RD benchmark: one JSON-lines file per codec.

Each line is one JSON object ``{"key": "<quality>|<image sha256[:16]>", "description": ...,
**record}``. The last line of a key wins; a line whose ``description`` differs from the
codec's current one (another library version or setting) counts as missing, and so does a
truncated line left by an interrupted run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["ResultCache", "file_digest"]


def file_digest(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class ResultCache:
    """Results of one codec, keyed by (quality, image digest)."""

    def __init__(self, path: Path, description: str) -> None:
        """Args:
        path: the codec's ``.jsonl`` file (created on the first ``put``).
        description: the codec's current description; other entries are ignored.
        """
        self.path = path
        self.description = description
        self._entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("description") == description:
                    self._entries[entry["key"]] = entry

    @staticmethod
    def key(quality: object, digest: str) -> str:
        """Cache key of one (quality, image) pair."""
        return f"{quality}|{digest}"

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached record of ``key``, or None."""
        return self._entries.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store a record and append it to the file at once."""
        entry = {"key": key, "description": self.description, **record}
        self._entries[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
