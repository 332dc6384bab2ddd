"""Upload -> de-identified case: checks, decoding, pseudonym, stored PNG, database row.

The rules are those of ``vcfnet prepare``: the patient becomes a keyed pseudonym of the DICOM
PatientID (HMAC, ``vcfnet.data.pseudonym``; the hospital plays the site); only sex, age and pixel
spacing are kept; no name, ID, birth date, accession number, institution or file name is stored,
and the uploaded file itself is dropped unless ``Settings.keep_originals``. What is stored is a PNG
of the display pixels, written atomically before the case's row is committed (a crash in between
leaves an orphan file that the start-up sweep removes, never a case without its image).

Before anything is decoded: the size limit, the type by content (DICOM Part 10, PNG, JPEG),
polyglot checks (bytes after a PNG's IEND or a JPEG's EOI, a DICOM preamble that is not empty)
and the pixel count from the header (a decompression bomb is refused unread).
"""

from __future__ import annotations

import io
import logging
import struct
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from vcfnet.data.pseudonym import pseudonym
from vcfnet.errors import InputError
from vcfnet.serve import retention
from vcfnet.serve.crud import Actor, audit
from vcfnet.serve.models import Case
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
#: JPEG start-of-frame markers (they carry the image size); C4, C8 and CC are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_CHUNK = 1024 * 1024
SUFFIXES = {"dicom": ".dcm", "png": ".png", "jpeg": ".jpg"}


class IngestError(ValueError):
    """An upload that is refused; ``status_code`` is the HTTP answer."""

    status_code = 422


class BadFileNameError(IngestError):
    status_code = 400


class UploadTooLargeError(IngestError):
    status_code = 413


class UnsupportedFileError(IngestError):
    status_code = 415


class ImageTooLargeError(IngestError):
    status_code = 413


class UnreadableImageError(IngestError):
    status_code = 422


@dataclass(frozen=True)
class CheckedUpload:
    data: bytes
    kind: str  # dicom | png | jpeg


def check_file_name(name: str | None) -> None:
    """The client's file name is never used for a path, but a traversal attempt is refused."""
    name = name or ""
    if (
        any(c in name for c in ("/", "\\", "\x00"))
        or name.startswith(".")
        or len(name) > 255
        or not name.isprintable()
    ):
        raise BadFileNameError("the file name must be a plain name (no folders, no leading dot)")


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """All of ``stream``, refusing more than ``limit`` bytes."""
    buffer = io.BytesIO()
    while chunk := stream.read(_CHUNK):
        buffer.write(chunk)
        if buffer.tell() > limit:
            raise UploadTooLargeError(
                f"the file is larger than the limit of {limit // (1024 * 1024)} MiB; "
                "upload a smaller export"
            )
    return buffer.getvalue()


def sniff_kind(data: bytes) -> str:
    """dicom | png | jpeg by content; UnsupportedFileError otherwise or for a polyglot."""
    if data.startswith(PNG_SIGNATURE):
        _png_end(data)
        return "png"
    if data.startswith(JPEG_SOI):
        if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise UnsupportedFileError(
                "the JPEG has data after its end (a polyglot or a damaged file); re-export it"
            )
        return "jpeg"
    if len(data) > 132 and data[128:132] == b"DICM":
        if any(data[:128]):
            raise UnsupportedFileError(
                "the DICOM preamble is not empty (it may hide another file, CVE-2019-11687); "
                "re-export the image from PACS"
            )
        return "dicom"
    raise UnsupportedFileError(
        "not a DICOM (Part 10), PNG or JPEG file; export the radiograph in one of these formats"
    )


def _png_end(data: bytes) -> int:
    """Offset after the IEND chunk; refuses truncated files and bytes after IEND."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            if pos != len(data):
                raise UnsupportedFileError(
                    "the PNG has data after its end (a polyglot); re-export the image"
                )
            return pos
    raise UnreadableImageError("the PNG is truncated (no IEND chunk); upload the whole file")


def header_shape(data: bytes, kind: str, path: Path) -> tuple[int, int, int]:
    """(height, width, frames) from the header only, without decoding pixels."""
    if kind == "png":
        if data[12:16] != b"IHDR":
            raise UnreadableImageError("the PNG has no IHDR header; re-export the image")
        width, height = struct.unpack(">II", data[16:24])
        return height, width, 1
    if kind == "jpeg":
        return (*_jpeg_shape(data), 1)
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return int(ds.Rows), int(ds.Columns), int(ds.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # pydicom raises many types for broken headers
        raise UnreadableImageError(
            f"the DICOM header cannot be read ({type(exc).__name__}); re-export the image"
        ) from exc


def _jpeg_shape(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return height, width
        pos += 2 + length
    raise UnreadableImageError("the JPEG has no frame header; re-export the image")


def check_pixels(data: bytes, kind: str, settings: Settings, tmp: Path) -> CheckedUpload:
    """The pixel count from the header against the limit; ``tmp`` already holds ``data``."""
    height, width, frames = header_shape(data, kind, tmp)
    pixels = height * width * max(frames, 1)
    if height < 1 or width < 1:
        raise UnreadableImageError("the image header says it has no pixels; re-export it")
    if pixels > settings.max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height}"
            + (f"x{frames} frames" if frames > 1 else "")
            + f" = {pixels / 1e6:.0f} megapixels; the limit is {settings.max_pixels / 1e6:.0f}; "
            "upload a single frame at a smaller size"
        )
    return CheckedUpload(data, kind)


def decode(path: Path):
    """The display pixels and header facts (``vcfnet.io``'s pipeline); UnreadableImageError."""
    from vcfnet.io.images import read_radiograph

    try:
        return read_radiograph(path)
    except InputError as exc:
        reason = str(exc).removeprefix(f"{path}: ").splitlines()[0]
        raise UnreadableImageError(f"the image cannot be decoded: {reason}") from exc


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def read_upload(
    storage: LocalStorage, settings: Settings, stream: BinaryIO, file_name: str | None
) -> tuple[CheckedUpload, object]:
    """(checked upload, decoded Radiograph) of an uploaded file; IngestError if refused.

    The bytes go to a scratch file under the data folder only while they are decoded.
    """
    check_file_name(file_name)
    data = read_limited(stream, settings.max_upload_bytes)
    kind = sniff_kind(data)
    scratch = storage.scratch_dir
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=SUFFIXES[kind]) as tmp:
        tmp.write(data)
        tmp.flush()
        checked = check_pixels(data, kind, settings, Path(tmp.name))
        radiograph = decode(Path(tmp.name))
    return checked, radiograph


def ingest_upload(
    db: Session,
    storage: LocalStorage,
    settings: Settings,
    id_key: bytes,
    actor: Actor,
    stream: BinaryIO,
    file_name: str | None,
) -> Case:
    """Check, decode and de-identify an upload; store its PNG, then commit its case."""
    checked, radiograph = read_upload(storage, settings, stream, file_name)
    return store_case(db, storage, settings, id_key, actor, checked, radiograph)


def patient_pseudonym(id_key: bytes, hospital: str, patient_id: str, fallback: str) -> str:
    """The keyed pseudonym ``vcfnet prepare`` gives (the hospital as the site); ``fallback``
    (unique per image) stands in for a missing PatientID, as prepare does."""
    return pseudonym(id_key, "patient", hospital, patient_id or f"image:{fallback}")


def store_case(
    db,
    storage,
    settings,
    id_key,
    actor: Actor,
    checked: CheckedUpload,
    radiograph,
    *,
    uids: dict[str, str] | None = None,
    action: str = "case.upload",
    detail: str | None = None,
):
    """Write the PNG (and, if configured, the original) atomically, then commit the row.

    ``uids`` (study/series/SOP instance UID columns) replaces the random new ones (the DICOM
    receiver passes keyed ones, so that images of one study share a study); ``action`` and
    ``detail`` name the audit entry (no patient data).
    """
    case_uuid = uuid.uuid4().hex
    hospital = actor.user.hospital
    patient = patient_pseudonym(id_key, hospital, radiograph.patient.patient_id, case_uuid)
    image_key = f"images/{case_uuid}.png"
    keep = retention.current(db, settings).keep_originals  # the admin's choice, else the flag
    original_key = f"originals/{case_uuid}.{checked.kind}" if keep else None
    written = []
    try:
        storage.write_bytes(image_key, png_bytes(radiograph.pixels))
        written.append(image_key)
        if original_key:
            storage.write_bytes(original_key, checked.data)
            written.append(original_key)
        height, width = radiograph.shape
        case = Case(
            patient_pseudonym=patient,
            image_key=image_key,
            original_key=original_key,
            source_format=checked.kind,
            width=width,
            height=height,
            pixel_spacing_mm=radiograph.pixel_spacing_mm,
            sex=radiograph.patient.sex,
            age=radiograph.patient.age,
            hospital=hospital,
            created_by_id=actor.user.id,
            **(uids or {}),
        )
        db.add(case)
        db.flush()
        audit(db, actor, action, case_id=case.id, detail=checked.kind if detail is None else detail)
        db.commit()
    except BaseException:
        db.rollback()
        for key in written:
            storage.delete(key)
        raise
    log.info("case %d ingested (%s, %dx%d)", case.id, checked.kind, width, height)
    return case
