"""Case files in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), for several serve
machines sharing one database.

Selected with ``vcfnet serve --storage s3://BUCKET/PREFIX``; the endpoint and credentials come from
boto3's usual environment (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for a non-AWS server,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``) or its config files.

Atomicity: a PUT of one object is atomic (readers see the old object, none, or the whole new one;
never part of it), and S3 is strongly read-after-write consistent, so the platform's rule holds as
on disk: the file is written before its row commits; a crash in between leaves an orphan object
that ``sweep_orphans`` deletes at the next start (objects older than an hour that no row names).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlparse

from vcfnet.errors import ConfigError
from vcfnet.serve.storage_keys import check_key

log = logging.getLogger(__name__)


class StorageConfigError(ConfigError):
    """A storage URL that is not ``s3://bucket[/prefix]``."""


class S3Storage:
    """Objects ``PREFIX/<key>`` in ``bucket``; ``client`` is a boto3 S3 client."""

    def __init__(self, client, bucket: str, prefix: str = "", scratch_dir: Path | None = None):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.scratch_dir = Path(scratch_dir or "vcfnet-data/tmp").resolve()

    @classmethod
    def from_url(cls, url: str, scratch_dir: Path | None = None) -> S3Storage:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageConfigError(
                f"storage {url!r} is not s3://BUCKET[/PREFIX]; give e.g. s3://vcfnet/cases"
            )
        import boto3  # only when S3 storage is configured

        return cls(boto3.client("s3"), parsed.netloc, parsed.path, scratch_dir)

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"s3://{self.bucket}/{self._name(key)}") from exc
        return response["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def sweep_orphans(self, folder: str, known: set[str], min_age_s: float = 3600) -> int:
        """Delete objects under ``folder/`` that no row names and older than ``min_age_s``."""
        start = f"{self.prefix}/" if self.prefix else ""
        cutoff = time.time() - min_age_s
        removed = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{start}{folder}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(start) :]
                if key not in known and item["LastModified"].timestamp() < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        if removed:
            log.warning("removed %d orphan object(s) under s3://%s/%s", removed, self.bucket, start)
        return removed
