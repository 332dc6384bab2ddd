"""Run-time settings an admin changes (``platform_settings`` rows: a key and a JSON value),
read by every serve process from the shared database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from vcfnet.serve.models import PlatformSetting


def get_setting(db: Session, key: str) -> dict[str, Any] | None:
    row = db.get(PlatformSetting, key, populate_existing=True)
    return dict(row.value) if row else None


def put_setting(db: Session, key: str, value: dict[str, Any]) -> None:
    """Insert or replace ``key`` (the caller commits)."""
    row = db.get(PlatformSetting, key)
    if row is None:
        db.add(PlatformSetting(key=key, value=value))
    else:
        row.value = value
