"""Where case files live: a storage interface with a local-disk default and an S3 backend.

Keys are relative POSIX paths made by the platform (``images/<uuid>.png``), never from user input.
Writes are atomic: on disk a temp file + rename, on S3 a single PUT (an object appears whole or
not at all), so a reader sees a whole file or none. ``open_storage`` picks the backend from
``Settings.storage_url`` (``s3://bucket/prefix``: ``serve.storage_s3``). Scratch files of uploads
being decoded always stay on local disk (``scratch_dir``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

from vcfnet.io.atomic import atomic_path
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage_keys import StorageKeyError, check_key

__all__ = ["LocalStorage", "Storage", "StorageKeyError", "open_storage", "sweep_local"]

log = logging.getLogger(__name__)


class Storage(Protocol):
    scratch_dir: Path  # local folder for files being decoded

    def write_bytes(self, key: str, data: bytes) -> None: ...
    def read_bytes(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def sweep_orphans(self, folder: str, known: set[str], min_age_s: float = 3600) -> int: ...


class LocalStorage:
    """Files under ``root`` (the data folder)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.scratch_dir = self.root / "tmp"

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

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
        return sweep_local(self.root / folder, known, self.root, min_age_s)


def sweep_local(base: Path, known: set[str], root: Path, min_age_s: float = 3600) -> int:
    """Delete files under ``base`` whose key (relative to ``root``) is not ``known`` and whose
    age exceeds ``min_age_s``; temp files of interrupted atomic writes are among them."""
    if not base.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - min_age_s
    for path in base.rglob("*"):
        key = path.relative_to(root).as_posix()
        if path.is_file() and key not in known and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.warning("removed %d orphan file(s) under %s", removed, base)
    return removed


def open_storage(settings: Settings) -> Storage:
    """The storage of ``settings``: the data folder, or S3 for an ``s3://`` storage URL."""
    url = settings.storage_url
    if not url:
        return LocalStorage(settings.data_dir)
    from vcfnet.serve.storage_s3 import S3Storage  # boto3 only when S3 is used (fast start-up)

    return S3Storage.from_url(url, scratch_dir=Path(settings.data_dir).resolve() / "tmp")
