"""The active model, switched by an admin without a restart.

An upload (a training run folder as ``.zip``, or a ``.onnx`` file) is unpacked into a new folder of
the local model cache (``DATA/model-cache/<id>``) and loaded with vcfnet's own loader; anything it
refuses is a one-line ``ModelUploadError`` and nothing is replaced. A good model's upload is kept
in storage (``models/<id>.zip|.onnx``, so other machines can fetch it), recorded as the active
model (``platform_settings['active_model']``, with its card), audited, and swapped into this
process. Other processes notice the new id at their next analysis (``sync_active_model``).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import threading
import uuid
import zipfile
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from vcfnet.serve.crud import Actor, audit
from vcfnet.serve.ml import ModelService
from vcfnet.serve.platform_settings import get_setting, put_setting

log = logging.getLogger(__name__)

SETTING = "active_model"
_sync_lock = threading.Lock()
SUFFIXES = (".zip", ".onnx")
MAX_UNZIPPED = 4 * 1024**3


class ModelUploadError(ValueError):
    """An upload that is not a usable vcfnet model; nothing was replaced."""

    status_code = 422


def cache_dir(data_dir: Path | str) -> Path:
    return Path(data_dir).resolve() / "model-cache"


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members, total = [], 0
    for info in archive.infolist():
        parts = PurePosixPath(info.filename).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or "\\" in info.filename:
            raise ModelUploadError(
                f"the zip holds an unsafe path {info.filename!r}; re-zip the run"
            )
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise ModelUploadError("the zip holds a symbolic link; re-zip the run folder")
        total += info.file_size
        if total > MAX_UNZIPPED:
            raise ModelUploadError("the zip unpacks to more than 4 GiB; upload only the run folder")
        members.append(info)
    return members


def unpack(data: bytes, suffix: str, folder: Path) -> Path:
    """Write the upload into the new ``folder`` (a temp name, renamed once whole: processes of
    one machine share the cache); the path to load (RUN_DIR, .pt or .onnx)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        if suffix == ".onnx":
            (tmp / "model.onnx").write_bytes(data)
        else:
            with zipfile.ZipFile(BytesIO(data)) as archive:
                archive.extractall(tmp, members=_safe_members(archive))
        os.rename(tmp, folder)
    except zipfile.BadZipFile as exc:
        raise ModelUploadError("the file is not a readable zip; zip the run folder again") from exc
    except OSError:
        if not folder.is_dir():
            raise
        # another process of this machine unpacked the same model first: use its copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return find_model(folder)


def find_model(folder: Path) -> Path:
    """The path to load in an unpacked upload: a run folder, or its single .onnx/.pt file."""
    for candidate in (folder, *[p for p in folder.iterdir() if p.is_dir()]):
        if (candidate / "checkpoints" / "best.pt").is_file():
            return candidate
    files = [p for p in folder.rglob("*") if p.suffix in (".onnx", ".pt") and p.is_file()]
    if len(files) == 1:
        return files[0]
    raise ModelUploadError(
        "the zip holds no run folder (checkpoints/best.pt) and not exactly one .onnx or .pt file"
    )


def model_card(service: ModelService) -> dict[str, Any]:
    """Name, version, hash, runtime, classes, input spec and (from a run's metrics.csv) the
    metrics of its last epoch."""
    predictor = service.predictor()
    card = predictor.info.to_dict()
    card["input"] = predictor.input.to_dict()
    card["metrics"] = {}
    path = service.model_path
    run_dir = path if path and path.is_dir() else None
    if run_dir and (run_dir / "metrics.csv").is_file():
        with open(run_dir / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        card["metrics"] = rows[-1] if rows else {}
    return card


def install_model(db: Session, state, actor: Actor, data: bytes, file_name: str | None) -> dict:
    """Validate, store, record and activate an uploaded model; its card. ModelUploadError if
    it is not a usable model (nothing replaced)."""
    suffix = Path(file_name or "").suffix.lower()
    if suffix not in SUFFIXES:
        raise ModelUploadError("upload a training run folder as .zip, or a .onnx model")
    model_id = uuid.uuid4().hex
    folder = cache_dir(state.settings.data_dir) / model_id
    try:
        path = unpack(data, suffix, folder)
        service = ModelService.loaded(path, model_id, state.settings.model_backend)
        card = model_card(service)
    except Exception as exc:  # the loaders raise many types for a file that is not a model
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ModelUploadError):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelUploadError(f"not a usable vcfnet model: {reason[:300]}") from exc
    key = f"models/{model_id}{suffix}"
    state.storage.write_bytes(key, data)
    try:
        put_setting(db, SETTING, {"id": model_id, "key": key, "card": card})
        detail = f"{card['name']} {card['runtime']} {card['hash'][:12]}"
        audit(db, actor, "admin.model.activate", detail=detail)
        db.commit()
    except BaseException:
        db.rollback()
        state.storage.delete(key)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    state.models = service
    log.info("active model is now %s (%s)", card["name"], model_id)
    return card


def sync_active_model(db: Session, state) -> None:
    """Use the admin's active model in this process if it changed elsewhere (fetched from
    storage into the local cache once)."""
    active = get_setting(db, SETTING)
    if not active or active["id"] == state.models.model_id:
        return
    with _sync_lock:  # one fetch per process, whichever job thread comes first
        if active["id"] == state.models.model_id:
            return
        folder = cache_dir(state.settings.data_dir) / active["id"]
        if folder.is_dir():
            path = find_model(folder)  # unpacked whole before (renamed into place)
        else:
            data = state.storage.read_bytes(active["key"])
            path = unpack(data, Path(active["key"]).suffix, folder)
        state.models = ModelService.loaded(path, active["id"], state.settings.model_backend)
    log.info("switched to the active model %s", active["id"])
