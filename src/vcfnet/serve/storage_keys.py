"""Storage keys: relative POSIX paths the platform makes (``images/<uuid>.png``), checked by every
storage backend before use."""

from __future__ import annotations

import re

_KEY_RE = re.compile(r"^[a-z]+(/[A-Za-z0-9_-]+)*\.[a-z0-9]{2,5}$")


class StorageKeyError(ValueError):
    """A storage key that the platform did not make (absolute, '..', odd characters)."""


def check_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise StorageKeyError(f"invalid storage key {key!r}")
    return key
