"""Keyed pseudonyms (HMAC-SHA256) for patient IDs, images and crop files.

The key never goes into a dataset: it comes from ``--id-key``, else the environment variable
``VCFNET_ID_KEY``, else a random key created once and kept in the user's configuration folder
(``$XDG_CONFIG_HOME/vcfnet/id_key``, by default ``~/.config/vcfnet/id_key``, mode 0600). Without
the key, a pseudonym cannot be traced back to an ID by trying candidate IDs. The same key gives the
same pseudonyms on every run (so crops are reused and sites can be linked if they share a key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from vcfnet.errors import ConfigError

log = logging.getLogger(__name__)

ID_KEY_ENV = "VCFNET_ID_KEY"


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/vcfnet/id_key`` (``~/.config/vcfnet/id_key``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vcfnet" / "id_key"


def resolve_id_key(explicit: str | None = None, key_file: Path | None = None) -> bytes:
    """The pseudonymisation key: ``explicit`` > $VCFNET_ID_KEY > the per-user key file (created)."""
    for value in (explicit, os.environ.get(ID_KEY_ENV)):
        if value:
            if len(value) < 8:
                raise ConfigError(
                    "the pseudonym key (--id-key / VCFNET_ID_KEY) must have at least 8 characters"
                )
            return value.encode("utf-8")
    path = key_file or default_key_file()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        log.warning(
            "created a new pseudonym key in %s; keep it secret, and back it up to get the same "
            "pseudonyms again (or pass --id-key / set %s)",
            path,
            ID_KEY_ENV,
        )
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"pseudonym key file {path} is empty; delete it to create a new key")
    return key.encode("utf-8")


def key_fingerprint(key: bytes) -> str:
    """A short public check value telling whether two datasets used the same key."""
    return hmac.new(key, b"vcfnet key fingerprint", hashlib.sha256).hexdigest()[:12]


def pseudonym(key: bytes, kind: str, *parts: str, length: int = 16) -> str:
    """``<kind>-<hex>``: HMAC-SHA256 of ``kind`` and ``parts`` under ``key``, ``length`` hex digits."""
    message = "\x1f".join((kind, *parts)).encode("utf-8")
    return f"{kind}-{hmac.new(key, message, hashlib.sha256).hexdigest()[:length]}"


@dataclass(frozen=True)
class OutputNames:
    """How inputs are named in outputs: keyed pseudonyms (prepare's scheme, per site), or, only
    when asked (``keep_names``), the input paths themselves, which often hold patient names."""

    key: bytes
    site: str = "local"
    keep_names: bool = False

    def image(self, path: Path | str) -> str:
        """The name of an input file in outputs: ``image-<hex>``, or its path with keep_names."""
        if self.keep_names:
            return str(path)
        return pseudonym(self.key, "image", self.site, str(Path(path).resolve()))

    def patient(self, patient_id: str, path: Path | str) -> str:
        """``patient-<hex>`` of a DICOM PatientID (as prepare makes it for this site), or of the
        image itself when the file has none; never the raw ID or a file name."""
        if patient_id:
            return pseudonym(self.key, "patient", self.site, patient_id)
        return pseudonym(self.key, "patient", self.site, "image:" + str(Path(path).resolve()))
