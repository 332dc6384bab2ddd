"""Where case files live: a storage interface with a local-disk default.

Keys are relative POSIX paths made by the platform (``images/<uuid>.png``), never from user input.
Writes are atomic (temp file + rename), so a reader sees a whole file or none. An S3-compatible
store can implement the same four methods for several machines.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Protocol

from vcfnet.io.atomic import atomic_path

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[a-z]+(/[A-Za-z0-9_-]+)*\.[a-z0-9]{2,5}$")


class StorageKeyError(ValueError):
    """A storage key that the platform did not make (absolute, '..', odd characters)."""


class Storage(Protocol):
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def read_bytes(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...


class LocalStorage:
    """Files under ``root`` (the data folder)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise StorageKeyError(f"invalid storage key {key!r}")
        return self.root / key

    def write_bytes(self, key: str, data: bytes) -> None:
        with atomic_path(self.path(key)) as tmp:
            tmp.write_bytes(data)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def sweep_orphans(self, folder: str, known: set[str], min_age_s: float = 3600) -> int:
        """Delete files of ``folder`` that no row names and older than ``min_age_s`` (left by a
        process killed between writing a file and committing its row)."""
        base = self.root / folder
        if not base.is_dir():
            return 0
        removed = 0
        cutoff = time.time() - min_age_s
        for path in base.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key not in known and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.warning("removed %d orphan file(s) under %s", removed, base)
        return removed
