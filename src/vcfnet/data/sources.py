"""Where ``prepare``'s inputs come from: radiographs paired with LabelImg boxes, or an
ImageFolder of crops named as the authors' code names them; patient lists and label maps."""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import yaml

from vcfnet.data.config import CROPS_DIR, PrepareConfig
from vcfnet.data.jobs import CropJob, ImageJob, Problem
from vcfnet.data.pseudonym import pseudonym
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.images import find_images
from vcfnet.io.voc import VocAnnotation, read_voc
from vcfnet.labels import CLASS_NAMES, parse_object_name

log = logging.getLogger(__name__)


def load_label_map(path: Path | None) -> dict[str, str]:
    """YAML ``{other_name: acute|chronic|pathologic}`` with lower-cased keys ({} if no path)."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--label-map {path}: cannot read YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--label-map {path}: expected a mapping such as 'fresh: acute'")
    bad = {k: v for k, v in data.items() if str(v).lower() not in CLASS_NAMES}
    if bad:
        raise ConfigError(
            f"--label-map {path}: {bad} map to unknown classes; targets must be one of {', '.join(CLASS_NAMES)}"
        )
    return {str(k).strip().lower(): str(v).lower() for k, v in data.items()}


def _patients_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV, strictly: every row has as many fields as the header."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            table = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--patients {path}: cannot read CSV ({exc})") from exc
    if not table:
        raise InputError(f"--patients {path}: the file is empty; expected image,patient_id,...")
    header = [c.strip().lower() for c in table[0]]
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise InputError(
                f"--patients {path}: row {line} has {len(row)} fields, the header {len(header)}; "
                "quote values that contain a comma"
            )
    return header, table[1:]


def read_patients_csv(path: Path | None) -> dict[str, dict]:
    """``--patients`` CSV rows keyed by their ``image`` value (lower-cased); {} if no path.

    Strict: a row with a wrong number of fields, or an image listed twice with different patient
    IDs, is an InputError naming the row."""
    if path is None:
        return {}
    header, table = _patients_rows(Path(path))
    missing = {"image", "patient_id"} - set(header)
    if missing:
        raise InputError(
            f"--patients {path}: missing column(s) {', '.join(sorted(missing))}; "
            "expected image,patient_id[,age,sex,site]"
        )
    rows: dict[str, dict] = {}
    for line, values in enumerate(table, start=2):
        row = dict(zip(header, (v.strip() for v in values), strict=True))
        key = row["image"].replace("\\", "/").lower()
        if key in rows and rows[key]["patient_id"] != row["patient_id"]:
            raise InputError(
                f"--patients {path}: row {line} lists image {row['image']!r} again with another "
                "patient ID; keep one row per image"
            )
        rows[key] = row
    return rows


def lookup_patient(rows: Mapping[str, dict], key: str) -> dict | None:
    """The CSV row for an image by relative path, then file name, then stem."""
    key = key.lower()
    name = key.rsplit("/", 1)[-1]
    for candidate in (key, name, name.rsplit(".", 1)[0]):
        if candidate in rows:
            return rows[candidate]
    return None


def _site_of(patients: Mapping[str, dict], image_key: str, default: str) -> str:
    entry = lookup_patient(patients, image_key)
    return str((entry or {}).get("site") or "").strip() or default


def _crop_path(key: bytes, site: str, image_key: str, stat: os.stat_result, detail: str) -> str:
    """Crop file name from a keyed hash of the input (and its size/mtime) and the crop options."""
    name = pseudonym(
        key, "crop", site, image_key, str(stat.st_size), str(stat.st_mtime_ns), detail, length=20
    )
    return f"{CROPS_DIR}/{name}.png"


def _match_annotations(
    images_dir: Path, annotations_dir: Path
) -> tuple[list[tuple[VocAnnotation, Path]], list[Problem], int]:
    """Pair each XML with its image (by <filename>, else by stem); (pairs, problems, unannotated)."""
    images = find_images(images_dir)
    by_name: dict[str, list[Path]] = defaultdict(list)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for img in images:
        by_name[img.name.lower()].append(img)
        by_stem[img.stem.lower()].append(img)
    pairs: list[tuple[VocAnnotation, Path]] = []
    problems: list[Problem] = []
    used: dict[Path, Path] = {}
    for xml in sorted(annotations_dir.rglob("*.xml")):
        try:
            ann = read_voc(xml)
        except InputError as exc:
            problems.append(Problem(str(xml), None, str(exc).removeprefix(f"{xml}: ")))
            continue
        filename = ann.filename.replace("\\", "/").rsplit("/", 1)[-1]
        candidates = (
            by_name.get(filename.lower())
            or by_stem.get(Path(filename).stem.lower() if filename else "")
            or by_stem.get(xml.stem.lower())
            or []
        )
        if len(candidates) > 1:
            rel_dir = xml.parent.relative_to(annotations_dir)
            same_dir = [c for c in candidates if c.parent.relative_to(images_dir) == rel_dir]
            candidates = same_dir if len(same_dir) == 1 else candidates
        wanted = repr(filename or xml.stem)
        if not candidates:
            reason = f"image {wanted} not found in {images_dir}; add the image or remove the XML"
        elif len(candidates) > 1:
            reason = f"image {wanted} matches {len(candidates)} files in {images_dir}; make the names unique"
        elif candidates[0] in used:
            reason = f"its image {candidates[0]} is already annotated by {used[candidates[0]]}; keep one XML per image"
        else:
            used[candidates[0]] = xml
            pairs.append((ann, candidates[0]))
            continue
        problems.append(Problem(str(xml), None, reason))
    unannotated = len(images) - len(used)
    return pairs, problems, unannotated


def _duplicate_box(xml: Path, obj, label: str, labels_by_box: dict, problems: list) -> bool:
    """True when ``obj`` repeats an earlier box of the same XML: a warning if it has the same
    label, a problem if another (one vertebra cannot be two classes)."""
    box = tuple(obj.box)
    if box not in labels_by_box:
        labels_by_box[box] = (label, obj.index)
        return False
    first_label, first_index = labels_by_box[box]
    if first_label == label:
        log.warning(
            "%s: object %d repeats object %d (same box, same class); kept once",
            xml,
            obj.index,
            first_index,
        )
    else:
        problems.append(
            Problem(
                str(xml),
                obj.index,
                f"same box as object {first_index} but "
                f"{label} instead of {first_label}; keep the right one in LabelImg",
            )
        )
    return True


def collect_box_jobs(
    cfg: PrepareConfig, key: bytes, label_map: Mapping[str, str], patients: Mapping[str, dict]
) -> tuple[list[ImageJob], list[Problem]]:
    """ImageJobs for ``--images`` + ``--annotations``; problems with the XML files."""
    images_dir, ann_dir = Path(cfg.images), Path(cfg.annotations)  # type: ignore[arg-type]
    for flag, folder in (("--images", images_dir), ("--annotations", ann_dir)):
        if not folder.is_dir():
            raise InputError(f"{flag} {folder}: folder not found")
    pairs, problems, unannotated = _match_annotations(images_dir, ann_dir)
    if unannotated:
        log.info("%d image(s) have no annotation file and are left out", unannotated)
    jobs, normal = [], 0
    for ann, image in pairs:
        xml = ann.path
        if not ann.objects:
            log.warning("%s has no boxes; left out", xml)
            continue
        image_key = image.relative_to(images_dir).as_posix()
        site = _site_of(patients, image_key, cfg.site)
        stat = image.stat()
        crops, labels_by_box = [], {}
        for obj in ann.objects:
            try:
                parsed = parse_object_name(obj.name, label_map, allow_normal=True)
            except InputError as exc:
                problems.append(Problem(str(xml), obj.index, str(exc)))
                continue
            if parsed.label == "normal":
                normal += 1
                continue
            if _duplicate_box(xml, obj, parsed.label, labels_by_box, problems):
                continue
            detail = f"{obj.index}|{obj.box}|{cfg.margin}|{cfg.cache_size}"
            crops.append(
                CropJob(
                    obj.index,
                    parsed.label,
                    parsed.level,
                    obj.box,
                    _crop_path(key, site, image_key, stat, detail),
                    annotation=str(xml),
                )
            )
        if crops:
            size = (ann.width, ann.height) if ann.width and ann.height else None
            jobs.append(ImageJob(image, image_key, site, tuple(crops), size))
    if normal:
        log.info("%d box(es) of normal vertebrae left out (the classes are fracture types)", normal)
    return jobs, problems


#: The authors' crop file names: ``<index>-<Class>-<level>-<age>-<sex>.png``, level without T/L.
AUTHOR_NAME_RE = re.compile(
    r"^(?P<index>\d+)-(?P<cls>[A-Za-z]+)-(?P<level>\d{1,2})-(?P<age>\d{1,3})-(?P<sex>[MFmf])$"
)

_LEVEL_BY_NUMBER = {10: "T10", 11: "T11", 12: "T12", 1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"}


def parse_author_name(stem: str) -> tuple[str, str, float | None, str] | None:
    """``'3-Acute-12-84-F'`` -> ('acute'?, 'T12', 84.0, 'F'): (class word, level, age, sex) or None."""
    match = AUTHOR_NAME_RE.match(stem)
    if not match:
        return None
    level = _LEVEL_BY_NUMBER.get(int(match.group("level")), "")
    return match.group("cls"), level, float(match.group("age")), match.group("sex").upper()


def collect_imagefolder_jobs(
    cfg: PrepareConfig, key: bytes, label_map: Mapping[str, str], patients: Mapping[str, dict]
) -> tuple[list[ImageJob], list[Problem]]:
    """ImageJobs for ``--imagefolder`` (one whole-image crop per file); problems with folders."""
    root = Path(cfg.imagefolder)  # type: ignore[arg-type]
    if not root.is_dir():
        raise InputError(f"--imagefolder {root}: folder not found")
    jobs, problems = [], []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise InputError(
            f"--imagefolder {root}: no class folders (expected Acute/, Chronic/, Pathologic/)"
        )
    for folder in folders:
        try:
            label = parse_object_name(folder.name, label_map).label
        except InputError as exc:
            problems.append(Problem(str(folder), None, f"folder name is not a class: {exc}"))
            continue
        for image in find_images(folder):
            image_key = image.relative_to(root).as_posix()
            site = _site_of(patients, image_key, cfg.site)
            parsed = parse_author_name(image.stem)
            level, age, sex = ("", None, "") if parsed is None else parsed[1:]
            if (
                parsed is not None
                and parsed[0].lower() != label
                and label_map.get(parsed[0].lower()) != label
            ):
                log.warning(
                    "%s: file name says %s but the folder says %s; using the folder",
                    image,
                    parsed[0],
                    label,
                )
            detail = f"full|{cfg.cache_size}"
            crop = CropJob(
                0,
                label,
                level,
                None,
                _crop_path(key, site, image_key, image.stat(), detail),
                age=age,
                sex=sex,
            )
            jobs.append(ImageJob(image, image_key, site, (crop,)))
    return jobs, problems
