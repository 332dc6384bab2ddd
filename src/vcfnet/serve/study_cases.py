"""Study cases from files (issue 14): radiographs with their LabelImg XML (the box and the true
class from each object's name, e.g. ``Acute-L1``), or a dataset made by ``vcfnet prepare``
(``manifest.csv`` + crops + ``dataset.json``), uploaded as a zip or read from a server folder the
admin allowed (``Settings.study_import_dirs``); and the crop a reader sees beside the whole film.

Every image goes through the platform's ingest (checks, decoding, de-identification) and becomes a
case of the researcher; its boxes and truths are added to the draft study by ``studies.add_case``.
XML is read by ``vcfnet.io.voc``, manifests by ``vcfnet.data.manifest``: no second parser.
Zip members are never extracted by their own names outside a scratch folder: names are checked
to stay inside it, sizes are checked before reading (zip bombs), links are skipped.
"""

from __future__ import annotations

import io
import logging
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from vcfnet.data.manifest import DATASET_INFO_NAME, MANIFEST_NAME, read_crop_spec, read_manifest
from vcfnet.errors import InputError
from vcfnet.geometry import crop_box
from vcfnet.io.images import DICOM_SUFFIXES, RASTER_SUFFIXES
from vcfnet.io.voc import VocAnnotation, read_voc
from vcfnet.labels import CLASS_NAMES, parse_object_name
from vcfnet.preprocess import CropSpec
from vcfnet.serve import crud, studies
from vcfnet.serve.crud import Actor, InvalidInputError
from vcfnet.serve.ingest import IngestError, ingest_upload
from vcfnet.serve.models import BOX_LEVELS, Study
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)

MAX_MEMBERS = 5000  # files in an uploaded zip
MAX_IMPORT_CASES = 1000  # radiographs or crops per import
EXPANSION = 4  # an uploaded zip may unpack to at most this many times the upload limit


@dataclass
class ImportReport:
    """What an import added to the study and what it left out (file name: reason)."""

    cases: list[int] = field(default_factory=list)
    vertebrae: int = 0
    skipped: list[str] = field(default_factory=list)


class Ingest(Protocol):
    """What ingest needs: the app state (``app_state(request)``) has these."""

    storage: LocalStorage
    settings: Settings
    id_key: bytes


def crop_png(png: bytes, box: dict) -> bytes:
    """The PNG of ``box`` cut from a case's PNG with the CropSpec margin (what the model sees)."""
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image)
    crop = crop_box(pixels, (box["x1"], box["y1"], box["x2"], box["y2"]), CropSpec().margin)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crop)).save(out, format="PNG")
    return out.getvalue()


# ------------------------------------------------------------------------------------ zip files


def open_zip(data: bytes, limit: int) -> zipfile.ZipFile:
    """A zip of at most MAX_MEMBERS files unpacking to at most EXPANSION x ``limit`` bytes, no
    file over ``limit``; InvalidInputError otherwise."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(
            "the upload is not a zip file; zip the folder and upload it"
        ) from exc
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise InvalidInputError(f"the zip holds {len(infos)} files; at most {MAX_MEMBERS}")
    if (
        any(i.file_size > limit for i in infos)
        or sum(i.file_size for i in infos) > limit * EXPANSION
    ):
        raise InvalidInputError(
            "the zip unpacks to more than the upload limit allows: import the folder from the "
            "server instead (an admin allows its parent with --study-import-dir)"
        )
    return zf


def _plain_files(zf: zipfile.ZipFile) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    """(path, info) of the regular files of a zip, without links, hidden files, traversal."""
    out = []
    for info in zf.infolist():
        path = PurePosixPath(info.filename.replace("\\", "/"))
        is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
        if info.is_dir() or is_link or path.is_absolute() or ".." in path.parts:
            continue
        if any(part.startswith(".") or part == "__MACOSX" for part in path.parts):
            continue
        out.append((path, info))
    return out


# ------------------------------------------------------------------------- radiographs + LabelImg


def _annotation(zf: zipfile.ZipFile, info: zipfile.ZipInfo, scratch: Path) -> VocAnnotation:
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".xml") as tmp:
        tmp.write(zf.read(info))
        tmp.flush()
        return read_voc(tmp.name)


def xml_truths(ann: VocAnnotation, name: str) -> tuple[list[dict], dict[int, str]]:
    """(boxes, {box index: true class}) of the fractured vertebrae of an annotation: objects named
    ``<class>-<level>`` with a level of the platform; normal vertebrae are left out."""
    boxes, truths = [], {}
    for obj in ann.objects:
        try:
            parsed = parse_object_name(obj.name, allow_normal=True)
        except InputError as exc:
            raise InvalidInputError(f"{name}: {exc}") from exc
        if parsed.label == "normal" or parsed.level not in BOX_LEVELS:
            continue
        if parsed.level in (b["level"] for b in boxes):
            raise InvalidInputError(f"{name}: level {parsed.level} is labelled twice")
        x1, y1, x2, y2 = obj.box
        truths[len(boxes)] = parsed.label
        boxes.append({"level": parsed.level, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return boxes, truths


def _clip(boxes: list[dict], width: int, height: int) -> list[dict]:
    return [
        {
            **b,
            "x1": max(0.0, b["x1"]),
            "y1": max(0.0, b["y1"]),
            "x2": min(float(width), b["x2"]),
            "y2": min(float(height), b["y2"]),
        }
        for b in boxes
    ]


def _add(
    db: Session, ing: Ingest, actor: Actor, study: Study, stream, name: str, boxes, truths
) -> int:
    """Ingest one image as a case, set its boxes and add it with ``truths``; the case id."""
    case = ingest_upload(db, ing.storage, ing.settings, ing.id_key, actor, stream, name)
    crud.replace_boxes(db, actor, case, _clip(boxes, case.width, case.height))
    studies.add_case(db, actor, study, case.id, truths)
    return case.id


def import_labelimg_zip(
    db: Session, ing: Ingest, actor: Actor, study: Study, data: bytes
) -> ImportReport:
    """Radiographs (DICOM, PNG, JPEG) and their LabelImg XML in one zip, paired by the XML's
    ``<filename>`` stem (else its own stem), as ``vcfnet prepare`` pairs them."""
    studies.require_draft(study)
    zf = open_zip(data, ing.settings.max_upload_bytes)
    files = _plain_files(zf)
    images = {
        p.stem: (p, i) for p, i in files if p.suffix.lower() in DICOM_SUFFIXES | RASTER_SUFFIXES
    }
    scratch = ing.storage.root / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    report, paired = ImportReport(), set()
    for path, info in sorted(files):
        if path.suffix.lower() != ".xml" or len(report.cases) >= MAX_IMPORT_CASES:
            continue
        try:
            ann = _annotation(zf, info, scratch)
            stem = ann.image_stem if ann.image_stem in images else path.stem
            if stem not in images:
                raise InvalidInputError(f"{path.name}: no image {stem}.* in the zip")
            image_path, image_info = images[stem]
            paired.add(stem)
            boxes, truths = xml_truths(ann, path.name)
        except (InputError, InvalidInputError) as exc:
            report.skipped.append(str(exc).replace(str(scratch), "").lstrip("/"))
            continue
        if not boxes:
            report.skipped.append(f"{path.name}: no fractured vertebra (<class>-<level>) labelled")
            continue
        try:
            with zf.open(image_info) as stream:
                case_id = _add(db, ing, actor, study, stream, image_path.name, boxes, truths)
        except (IngestError, InvalidInputError) as exc:
            report.skipped.append(f"{image_path.name}: {exc}")
            continue
        report.cases.append(case_id)
        report.vertebrae += len(boxes)
    report.skipped += [
        f"{p.name}: no LabelImg XML" for s, (p, _) in images.items() if s not in paired
    ]
    return report


# ---------------------------------------------------------------------------- prepared datasets


def allowed_dataset_dir(folder: str, roots: tuple[Path, ...]) -> Path:
    """The real path of ``folder`` if it is a folder inside one of ``roots`` (links resolved, so
    none leads out); one message for absent and forbidden paths (no probing of the server)."""
    refusal = InvalidInputError(
        f"{folder!r} is not a dataset folder inside the folders the admin allowed "
        f"({', '.join(str(r) for r in roots) or 'none: start vcfnet serve with --study-import-dir'})"
    )
    path = Path(folder)
    if not folder or not path.is_absolute() or "\x00" in folder:
        raise refusal
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise refusal from None
    if not real.is_dir() or not any(real.is_relative_to(r.resolve()) for r in roots):
        raise refusal
    return real


def inner_box(width: int, height: int, margin: float) -> dict:
    """The vertebra's box inside a crop cut with ``margin`` (its sides grown by margin x size)."""
    fx = fy = margin / (1 + 2 * margin)
    return {"x1": width * fx, "y1": height * fy, "x2": width * (1 - fx), "y2": height * (1 - fy)}


def import_dataset_dir(
    db: Session, ing: Ingest, actor: Actor, study: Study, folder: Path, split: str, limit: int
) -> ImportReport:
    """The crops of a prepared dataset (of one ``split``, or all for ''), at most ``limit``, each
    a case with one box (the vertebra inside the crop's margin) whose truth is its label."""
    studies.require_draft(study)
    try:
        df = read_manifest(folder)
        margin = read_crop_spec(folder).margin
    except InputError as exc:
        raise InvalidInputError(str(exc).replace(str(folder), "the dataset")) from exc
    if split:
        df = df[df["split"] == split]
    report, root = ImportReport(), folder.resolve()
    for row in df.head(max(0, min(limit, MAX_IMPORT_CASES))).itertuples():
        crop = (root / row.crop_path).resolve()
        if not crop.is_relative_to(root) or not crop.is_file():
            report.skipped.append(f"{row.crop_path}: not a file inside the dataset")
            continue
        if row.level not in BOX_LEVELS or row.label not in CLASS_NAMES:
            report.skipped.append(f"{row.crop_path}: level {row.level!r} / class {row.label!r}")
            continue
        with Image.open(crop) as image:
            width, height = image.size
        box = {"level": row.level, **inner_box(width, height, margin)}
        try:
            with open(crop, "rb") as stream:
                case_id = _add(db, ing, actor, study, stream, crop.name, [box], {0: row.label})
        except (IngestError, InvalidInputError) as exc:
            report.skipped.append(f"{row.crop_path}: {exc}")
            continue
        report.cases.append(case_id)
        report.vertebrae += 1
    return report


def import_dataset_zip(
    db: Session, ing: Ingest, actor: Actor, study: Study, data: bytes, split: str, limit: int
) -> ImportReport:
    """A prepared dataset uploaded as a zip (manifest.csv at its top or in one folder)."""
    zf = open_zip(data, ing.settings.max_upload_bytes)
    files = _plain_files(zf)
    manifests = [p for p, _ in files if p.name == MANIFEST_NAME]
    if len(manifests) != 1:
        raise InvalidInputError(
            f"the zip must hold one {MANIFEST_NAME} (with {DATASET_INFO_NAME} and the crops), "
            f"as 'vcfnet prepare' writes them; it holds {len(manifests)}"
        )
    base = manifests[0].parent
    scratch = ing.storage.root / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        root = Path(tmp).resolve()
        for path, info in files:
            if base.parts and path.parts[: len(base.parts)] != base.parts:
                continue
            target = (root / Path(*path.parts[len(base.parts) :])).resolve()
            if not target.is_relative_to(root):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
        return import_dataset_dir(db, ing, actor, study, root, split, limit)
