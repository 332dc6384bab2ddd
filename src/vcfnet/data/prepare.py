"""``vcfnet prepare``: radiographs + LabelImg boxes (or pre-cut crops) -> a de-identified,
patient-split dataset of 8-bit vertebra crops (``DATASET_DIR/manifest.csv`` + ``dataset.json``).

Two inputs: ``--images DIR --annotations DIR`` (DICOM/PNG/JPEG radiographs and LabelImg XML, one
row per box) or ``--imagefolder DIR`` (the paper code's ``Acute/``, ``Chronic/``, ``Pathologic/``
folders of crops, one row per file). Decoding runs in ``--workers`` processes; crops that already
exist from an earlier run with the same inputs and options are reused. All problems are collected
first; by default any problem stops the run before a manifest is written (see docs/data-formats.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import logging
import os
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image
from tqdm import tqdm

from vcfnet import __version__
from vcfnet.config import add_config_arguments, config_to_dict, resolve_config
from vcfnet.data.manifest import (
    MANIFEST_COLUMNS,
    SPLITS,
    write_dataset_info,
    write_manifest,
)
from vcfnet.data.pseudonym import key_fingerprint, pseudonym, resolve_id_key
from vcfnet.data.split import check_disjoint, parse_split, patient_labels, split_patients
from vcfnet.data.transforms import Box, Preprocessing, make_cache_crop, validate_box
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.atomic import atomic_path
from vcfnet.io.images import RadiographInfo, find_images, read_radiograph, read_radiograph_info
from vcfnet.io.voc import VocAnnotation, read_voc
from vcfnet.labels import CLASS_NAMES, parse_object_name

log = logging.getLogger(__name__)

CROPS_DIR = "crops"
REJECT_COLUMNS: tuple[str, ...] = ("file", "object_index", "reason")

#: The authors' crop file names: ``<index>-<Class>-<level>-<age>-<sex>.png``, level without T/L.
AUTHOR_NAME_RE = re.compile(
    r"^(?P<index>\d+)-(?P<cls>[A-Za-z]+)-(?P<level>\d{1,2})-(?P<age>\d{1,3})-(?P<sex>[MFmf])$"
)
_LEVEL_BY_NUMBER = {10: "T10", 11: "T11", 12: "T12", 1: "L1", 2: "L2", 3: "L3", 4: "L4", 5: "L5"}


@dataclass
class PrepareConfig:
    """Options of ``vcfnet prepare`` (see ``vcfnet prepare --help``)."""

    images: Path | None = field(
        default=None,
        metadata={
            "help": "folder of radiographs (DICOM, PNG, JPEG), searched recursively",
            "metavar": "DIR",
        },
    )
    annotations: Path | None = field(
        default=None,
        metadata={"help": "folder of LabelImg (Pascal VOC) XML files", "metavar": "DIR"},
    )
    imagefolder: Path | None = field(
        default=None,
        metadata={
            "help": "instead of --images/--annotations: folder with Acute/, Chronic/, Pathologic/ subfolders of crops",
            "metavar": "DIR",
        },
    )
    out: Path | None = field(
        default=None, metadata={"help": "output DATASET_DIR (required)", "metavar": "DATASET_DIR"}
    )
    patients: Path | None = field(
        default=None,
        metadata={"help": "CSV with columns image,patient_id[,age,sex,site]", "metavar": "CSV"},
    )
    site: str = field(
        default="default",
        metadata={"help": "site name for images the patients CSV gives no site", "metavar": "NAME"},
    )
    split: str = field(
        default="0.8",
        metadata={
            "help": "train fraction of patients (rest: test), or 'none' to put everything in 'test'",
            "metavar": "FRACTION|none",
        },
    )
    val: float = field(
        default=0.1,
        metadata={
            "help": "fraction of all patients carved from train as the validation split",
            "metavar": "FRACTION",
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the patient split", "metavar": "N"})
    margin: float = field(
        default=0.1,
        metadata={"help": "relative margin added around each box", "metavar": "FRACTION"},
    )
    cache_size: int = field(
        default=256, metadata={"help": "long side of the stored crops, pixels", "metavar": "PX"}
    )
    label_map: Path | None = field(
        default=None,
        metadata={
            "help": "YAML mapping other object names to acute/chronic/pathologic",
            "metavar": "YAML",
        },
    )
    skip_invalid: bool = field(
        default=False,
        metadata={"help": "leave out bad inputs (listed in the rejects CSV) instead of stopping"},
    )
    rejects: Path | None = field(
        default=None,
        metadata={
            "help": "where --skip-invalid lists rejected inputs (default: DATASET_DIR-rejects.csv beside DATASET_DIR, since it names input files)",
            "metavar": "CSV",
        },
    )
    workers: int = field(
        default=0, metadata={"help": "decoding processes (0 = all cores)", "metavar": "N"}
    )
    id_key: str | None = field(
        default=None,
        metadata={
            "help": "secret key for patient pseudonyms; prefer $VCFNET_ID_KEY (command lines are visible to other users); default: a random key kept in ~/.config/vcfnet/id_key",
            "metavar": "KEY",
        },
    )


@dataclass(frozen=True)
class Problem:
    """One bad input: the file, the object index within it (None: the whole file) and why."""

    file: str
    object_index: int | None
    reason: str

    def __str__(self) -> str:
        where = (
            self.file if self.object_index is None else f"{self.file}: object {self.object_index}"
        )
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class CropJob:
    """One box to crop: its object index and name in the XML, parsed label and level, crop path."""

    object_index: int
    label: str
    level: str
    box: Box | None  # None: the whole image (pre-cut crops)
    crop_path: str  # relative to DATASET_DIR
    annotation: str = ""  # the XML file, for messages
    age: float | None = None  # from the authors' file name, if any
    sex: str = ""


@dataclass(frozen=True)
class ImageJob:
    """One input image and the crops to make from it."""

    path: Path
    key: str  # path relative to the input folder (posix)
    site: str
    crops: tuple[CropJob, ...]


@dataclass
class ImageOutcome:
    """What a worker made of one ImageJob."""

    job: ImageJob
    info: RadiographInfo | None = None
    done: list[tuple[CropJob, Box]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    written: int = 0
    reused: int = 0


@dataclass(frozen=True)
class PrepareResult:
    """What ``prepare_dataset`` wrote: the manifest, rejected inputs and where everything is."""

    manifest: pd.DataFrame
    rejects: pd.DataFrame
    dataset_dir: Path
    manifest_path: Path
    info_path: Path
    rejects_path: Path | None
    info: dict


# ----------------------------------------------------------------------------- inputs


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


def read_patients_csv(path: Path | None) -> dict[str, dict]:
    """``--patients`` CSV rows keyed by their ``image`` value (lower-cased); {} if no path."""
    if path is None:
        return {}
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"--patients {path}: cannot read CSV ({exc})") from exc
    df.columns = [c.strip().lower() for c in df.columns]
    missing = {"image", "patient_id"} - set(df.columns)
    if missing:
        raise InputError(
            f"--patients {path}: missing column(s) {', '.join(sorted(missing))}; "
            "expected image,patient_id[,age,sex,site]"
        )
    return {str(r["image"]).strip().replace("\\", "/").lower(): r for r in df.to_dict("records")}


def _lookup_patient(rows: Mapping[str, dict], key: str) -> dict | None:
    """The CSV row for an image by relative path, then file name, then stem."""
    key = key.lower()
    name = key.rsplit("/", 1)[-1]
    for candidate in (key, name, name.rsplit(".", 1)[0]):
        if candidate in rows:
            return rows[candidate]
    return None


def _site_of(patients: Mapping[str, dict], image_key: str, default: str) -> str:
    entry = _lookup_patient(patients, image_key)
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
        crops = []
        for obj in ann.objects:
            try:
                parsed = parse_object_name(obj.name, label_map, allow_normal=True)
            except InputError as exc:
                problems.append(Problem(str(xml), obj.index, str(exc)))
                continue
            if parsed.label == "normal":
                normal += 1
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
            jobs.append(ImageJob(image, image_key, site, tuple(crops)))
    if normal:
        log.info("%d box(es) of normal vertebrae left out (the classes are fracture types)", normal)
    return jobs, problems


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


# ----------------------------------------------------------------------------- decoding (workers)


def _save_png(pixels: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=1)  # fast; crops are small


def process_image(job: ImageJob, dataset_dir: Path, pre: Preprocessing) -> ImageOutcome:
    """Decode one image (unless all its crops exist), check its boxes and write missing crops."""
    outcome = ImageOutcome(job)
    missing = [c for c in job.crops if not (dataset_dir / c.crop_path).is_file()]
    try:
        radiograph = read_radiograph(job.path) if missing else None
        outcome.info = radiograph.info if radiograph is not None else read_radiograph_info(job.path)
    except InputError as exc:
        outcome.problems.append(
            Problem(str(job.path), None, str(exc).removeprefix(f"{job.path}: "))
        )
        return outcome
    height, width = outcome.info.shape
    for crop in job.crops:
        box = crop.box if crop.box is not None else (0.0, 0.0, float(width), float(height))
        try:
            validate_box(box, (height, width))
        except InputError as exc:
            outcome.problems.append(
                Problem(
                    crop.annotation or str(job.path),
                    crop.object_index,
                    f"in {job.path.name}: {exc}; fix or delete the box in LabelImg",
                )
            )
            continue
        if crop in missing:
            _save_png(make_cache_crop(radiograph.pixels, box, pre), dataset_dir / crop.crop_path)  # type: ignore[union-attr]
            outcome.written += 1
        else:
            outcome.reused += 1
        outcome.done.append((crop, box))
    return outcome


def resolve_workers(workers: int) -> int:
    """``--workers``: 0 means all cores."""
    return max(1, workers or os.cpu_count() or 1)


def run_jobs(
    jobs: list[ImageJob], dataset_dir: Path, pre: Preprocessing, workers: int
) -> Iterator[ImageOutcome]:
    """Process jobs in ``workers`` processes (1: in this process), in order, with a progress bar."""
    fn = functools.partial(process_image, dataset_dir=dataset_dir, pre=pre)
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(jobs) > 1:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=min(workers, len(jobs))))
            outcomes: Iterable[ImageOutcome] = pool.map(
                fn, jobs, chunksize=max(1, min(16, len(jobs) // (workers * 4)))
            )
        else:
            outcomes = map(fn, jobs)
        yield from tqdm(outcomes, total=len(jobs), desc="prepare", unit="img", disable=None)


# ----------------------------------------------------------------------------- assembly


def _as_age(value) -> float | None:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return None
    return age if np.isfinite(age) and age >= 0 else None


def _as_sex(value) -> str:
    sex = str(value or "").strip().upper()[:1]
    return sex if sex in ("F", "M") else ""


def build_rows(
    outcomes: Iterable[ImageOutcome], patients: Mapping[str, dict], key: bytes
) -> tuple[list[dict], int]:
    """Manifest rows (without split) with pseudonymised patients; (rows, images without identity)."""
    rows, anonymous = [], 0
    for outcome in outcomes:
        job, info = outcome.job, outcome.info
        if info is None or not outcome.done:
            continue
        entry = _lookup_patient(patients, job.key)
        raw_id = str(entry["patient_id"]).strip() if entry else info.patient.patient_id
        if raw_id:
            patient = pseudonym(key, "patient", job.site, raw_id)
        else:
            anonymous += 1
            patient = pseudonym(key, "patient", job.site, "image:" + job.key)
        image_id = pseudonym(key, "image", job.site, job.key)
        for crop, box in outcome.done:
            age = _as_age(entry.get("age")) if entry and entry.get("age") else None
            age = (
                age if age is not None else (crop.age if crop.age is not None else info.patient.age)
            )
            sex = _as_sex(entry.get("sex")) if entry else ""
            rows.append(
                {
                    "crop_path": crop.crop_path,
                    "label": crop.label,
                    "level": crop.level,
                    "patient_id": patient,
                    "site": job.site,
                    "split": "",
                    "age": age,
                    "sex": sex or crop.sex or info.patient.sex,
                    "source_image": image_id,
                    "box_xmin": box[0],
                    "box_ymin": box[1],
                    "box_xmax": box[2],
                    "box_ymax": box[3],
                    "pixel_spacing_mm": info.pixel_spacing_mm,
                    "object_index": crop.object_index,
                }
            )
    return rows, anonymous


def assign_splits(
    manifest: pd.DataFrame, train_fraction: float | None, val: float, seed: int
) -> pd.DataFrame:
    """Add the ``split`` column: by patient, stratified by site and rarest class; checked disjoint."""
    if train_fraction is None:
        return manifest.assign(split="test")
    per_patient = patient_labels(manifest)
    site_of = manifest.groupby("patient_id")["site"].first()
    per_patient["label"] = [
        f"{site_of[p]}/{lab}"
        for p, lab in zip(per_patient["patient_id"], per_patient["label"], strict=True)
    ]
    test_fraction = 1.0 - train_fraction
    if val + test_fraction > 1.0:
        raise ConfigError(
            f"--val {val} is more than the {train_fraction} of patients left for training"
        )
    splits = split_patients(per_patient, test_fraction, val, seed)
    out = manifest.assign(split=manifest["patient_id"].map(splits))
    check_disjoint(out)
    return out


def count_table(manifest: pd.DataFrame) -> dict:
    """Counts of crops per site -> split -> class, plus totals per split and class, and patients."""
    by_site: dict = {}
    for (site, split, label), n in manifest.groupby(["site", "split", "label"]).size().items():
        by_site.setdefault(site, {}).setdefault(split, {})[label] = int(n)
    return {
        "crops": len(manifest),
        "patients": int(manifest["patient_id"].nunique()),
        "images": int(manifest["source_image"].nunique()),
        "by_site": by_site,
        "by_split": {s: int(n) for s, n in manifest["split"].value_counts().items()},
        "by_class": {c: int(n) for c, n in manifest["label"].value_counts().items()},
        "patients_by_split": {
            s: int(n) for s, n in manifest.groupby("split")["patient_id"].nunique().items()
        },
    }


def _remove_orphan_crops(dataset_dir: Path, keep: set[str]) -> int:
    removed = 0
    for path in (dataset_dir / CROPS_DIR).glob("*.png"):
        if f"{CROPS_DIR}/{path.name}" not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def default_rejects_path(dataset_dir: Path) -> Path:
    """``DATASET_DIR-rejects.csv`` beside DATASET_DIR (it names input files, so not inside)."""
    dataset_dir = dataset_dir.resolve()
    return dataset_dir.with_name(f"{dataset_dir.name}-rejects.csv")


def prepare_dataset(cfg: PrepareConfig) -> PrepareResult:
    """Run ``vcfnet prepare``; InputError listing every problem unless ``cfg.skip_invalid``."""
    if cfg.out is None:
        raise ConfigError("--out DATASET_DIR is required")
    by_boxes = cfg.images is not None or cfg.annotations is not None
    if by_boxes == (cfg.imagefolder is not None) or (
        by_boxes and (cfg.images is None or cfg.annotations is None)
    ):
        raise ConfigError("give either --images DIR --annotations DIR, or --imagefolder DIR")
    if not 0 <= cfg.margin <= 2 or cfg.cache_size < 8:
        raise ConfigError("--margin must be in [0, 2] and --cache-size at least 8 pixels")
    train_fraction = parse_split(cfg.split)
    dataset_dir = Path(cfg.out)
    key = resolve_id_key(cfg.id_key)
    label_map = load_label_map(cfg.label_map)
    patients = read_patients_csv(cfg.patients)
    pre = Preprocessing(margin=cfg.margin, cache_size=cfg.cache_size)

    collect = collect_box_jobs if by_boxes else collect_imagefolder_jobs
    jobs, problems = collect(cfg, key, label_map, patients)
    (dataset_dir / CROPS_DIR).mkdir(parents=True, exist_ok=True)
    outcomes = list(run_jobs(jobs, dataset_dir, pre, resolve_workers(cfg.workers)))
    problems += [p for o in outcomes for p in o.problems]
    if problems and not cfg.skip_invalid:
        raise InputError(
            f"{len(problems)} problem(s) in the input; no manifest written. Fix them, or re-run "
            "with --skip-invalid to leave them out:\n" + "\n".join(f"  {p}" for p in problems)
        )
    rows, anonymous = build_rows(outcomes, patients, key)
    if anonymous:
        log.warning(
            "%d image(s) have no patient ID (no --patients entry, no DICOM PatientID): each is "
            "treated as its own patient",
            anonymous,
        )
    if not rows:
        raise InputError("no usable boxes found; check --images/--annotations (or --imagefolder)")
    manifest = pd.DataFrame(rows)
    manifest = assign_splits(manifest, train_fraction, cfg.val, cfg.seed)
    manifest = manifest[[*MANIFEST_COLUMNS, "object_index"]]
    counts = count_table(manifest)
    log.info(
        "split check passed: no patient in two splits (%s patients)",
        ", ".join(f"{counts['patients_by_split'].get(s, 0)} {s}" for s in SPLITS),
    )

    rejects = pd.DataFrame(
        [[p.file, p.object_index, p.reason] for p in problems], columns=list(REJECT_COLUMNS)
    )
    rejects["object_index"] = rejects["object_index"].astype("Int64")
    rejects_path = None
    if cfg.skip_invalid:
        rejects_path = Path(cfg.rejects) if cfg.rejects else default_rejects_path(dataset_dir)
        with atomic_path(rejects_path) as tmp:
            rejects.to_csv(tmp, index=False)
        if len(rejects):
            log.warning("%d input problem(s) skipped; listed in %s", len(rejects), rejects_path)

    options = {k: v for k, v in config_to_dict(cfg).items() if k != "id_key"}
    info = {
        "vcfnet_version": __version__,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": "boxes" if by_boxes else "imagefolder",
        "options": options,
        "preprocessing": pre.to_dict(),
        "counts": counts,
        "rejected": len(rejects),
        "crops_written": sum(o.written for o in outcomes),
        "crops_reused": sum(o.reused for o in outcomes),
        "pseudonyms": {"method": "HMAC-SHA256", "key_fingerprint": key_fingerprint(key)},
        "split_check": "passed: no patient in two splits",
    }
    manifest_path = write_manifest(manifest, dataset_dir)
    info_path = write_dataset_info(info, dataset_dir)
    removed = _remove_orphan_crops(dataset_dir, set(manifest["crop_path"]))
    if removed:
        log.info("removed %d crop(s) no longer in the manifest", removed)
    return PrepareResult(
        manifest, rejects, dataset_dir, manifest_path, info_path, rejects_path, info
    )


# ----------------------------------------------------------------------------- CLI


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Examples: vcfnet prepare --images dicom/ --annotations xml/ --patients patients.csv "
        "--out data/site1;  vcfnet prepare --imagefolder samples/ --split none --out data/samples"
    )
    add_config_arguments(parser, PrepareConfig)


def run_prepare(args: argparse.Namespace) -> int:
    cfg = resolve_config(PrepareConfig, args)
    result = prepare_dataset(cfg)
    c = result.info["counts"]
    print(
        f"prepared {c['crops']} crops from {c['images']} images of {c['patients']} patients into "
        f"{result.dataset_dir} (crops: {c['by_split']}; patients: {c['patients_by_split']})"
    )
    return 0


# ----------------------------------------------------------------------------- benchmark


def add_bench_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-images", type=int, default=40, help="PNG radiographs to generate")
    parser.add_argument("--height", type=int, default=1280)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--boxes", type=int, default=3, help="boxes per radiograph")
    parser.add_argument(
        "--workers", type=int, default=0, help="parallel run's workers (0 = all cores)"
    )


def write_bench_inputs(
    root: Path, n_images: int, height: int, width: int, boxes: int, seed: int = 0
) -> tuple[Path, Path, Path]:
    """Synthetic 8-bit PNG radiographs (smooth background + noise), LabelImg XML and patients CSV."""
    from vcfnet.io.voc import write_voc

    rng = np.random.default_rng(seed)
    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True, exist_ok=True)
    xx = np.arange(width)[None, :]
    base = 60 + 80 * np.exp(-(((xx - width / 2) / (width / 4)) ** 2))
    for i in range(n_images):
        img = np.clip(base + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)
        name = f"rad{i:04d}.png"
        Image.fromarray(img).save(images / name)
        bh, bw = height // 10, width // 6
        objs = []
        for b in range(boxes):
            y1 = height // 5 + b * (bh + 20)
            objs.append(
                (
                    CLASS_NAMES[(i + b) % 3].capitalize() + f"-L{b + 1}",
                    (width / 3, y1, width / 3 + bw, y1 + bh),
                )
            )
        write_voc(xml / f"rad{i:04d}.xml", name, width, height, objs)
    patients = root / "patients.csv"
    patients.write_text(
        "image,patient_id\n" + "".join(f"rad{i:04d}.png,P{i // 2}\n" for i in range(n_images))
    )
    return images, xml, patients


def bench_prepare(args: argparse.Namespace) -> dict:
    """Radiographs/s of prepare on generated PNGs, 1 worker vs N workers, side by side."""
    workers = resolve_workers(getattr(args, "workers", 0))
    n = args.n_images
    with tempfile.TemporaryDirectory(prefix="vcfnet-bench-prepare-") as tmp:
        root = Path(tmp)
        images, xml, patients = write_bench_inputs(root, n, args.height, args.width, args.boxes)
        rates = {}
        for label, w in (("serial", 1), ("parallel", workers)):
            cfg = PrepareConfig(
                images=images,
                annotations=xml,
                patients=patients,
                out=root / f"out-{label}",
                workers=w,
                id_key="bench-key-not-secret",
            )
            start = time.perf_counter()
            prepare_dataset(cfg)
            rates[label] = n / (time.perf_counter() - start)
    return {
        "images": n,
        "image_size": f"{args.height}x{args.width}",
        "workers": workers,
        "radiographs_per_s_1_worker": rates["serial"],
        f"radiographs_per_s_{workers}_workers": rates["parallel"],
        "speedup": rates["parallel"] / rates["serial"],
    }
