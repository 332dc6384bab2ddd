"""``vcfnet prepare``: radiographs + LabelImg boxes (or pre-cut crops) -> a de-identified,
patient-split dataset of 8-bit vertebra crops (``DATASET_DIR/manifest.csv`` + ``dataset.json``).

Two inputs: ``--images DIR --annotations DIR`` (DICOM/PNG/JPEG radiographs and LabelImg XML, one
row per box) or ``--imagefolder DIR`` (the paper code's ``Acute/``, ``Chronic/``, ``Pathologic/``
folders of crops, one row per file). Decoding runs in ``--workers`` processes; crops that already
exist from an earlier run with the same inputs and options are reused. All problems are collected
first; by default any problem stops the run before a manifest is written (see docs/data-formats.md).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vcfnet import __version__
from vcfnet.config import config_to_dict
from vcfnet.data.assemble import assign_splits, build_rows, count_table
from vcfnet.data.config import CROPS_DIR, REJECT_COLUMNS, PrepareConfig
from vcfnet.data.jobs import resolve_workers, run_jobs
from vcfnet.data.manifest import (
    DATASET_INFO_NAME,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    SPLITS,
    read_manifest,
    write_dataset_info,
    write_manifest,
)
from vcfnet.data.pseudonym import key_fingerprint, resolve_id_key
from vcfnet.data.sources import (
    collect_box_jobs,
    collect_imagefolder_jobs,
    load_label_map,
    read_patients_csv,
)
from vcfnet.data.split import parse_split
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.atomic import remove_stale_temps
from vcfnet.io.tables import write_csv
from vcfnet.preprocess import CropSpec

log = logging.getLogger(__name__)


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


def _remove_orphan_crops(dataset_dir: Path, previous: set[str], keep: set[str]) -> int:
    """Delete the crops the previous manifest listed that the new one does not; nothing else."""
    removed = 0
    for rel in sorted(previous - keep):
        path = dataset_dir / rel
        if path.parent == dataset_dir / CROPS_DIR and path.is_file():
            path.unlink()
            removed += 1
    return removed


def check_output_paths(dataset_dir: Path, rejects: Path | None) -> set[str]:
    """Refuse, before any work, an --out that is a file or a non-empty folder that is not a vcfnet
    dataset, and a --rejects that is a folder. Returns the crop paths of the previous manifest."""
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise ConfigError(f"--out {dataset_dir} is a file; give a folder for the dataset")
    if rejects is not None and rejects.is_dir():
        raise ConfigError(f"--rejects {rejects} is a folder; give a file name, e.g. rejects.csv")
    if not dataset_dir.is_dir() or not any(dataset_dir.iterdir()):
        return set()
    if (
        not (dataset_dir / DATASET_INFO_NAME).is_file()
        or not (dataset_dir / MANIFEST_NAME).is_file()
    ):
        raise ConfigError(
            f"--out {dataset_dir} is a non-empty folder that is not a vcfnet dataset (no "
            f"{DATASET_INFO_NAME} and {MANIFEST_NAME}); choose a new or empty folder"
        )
    return set(read_manifest(dataset_dir, check_files=False)["crop_path"])


#: options of PrepareConfig that name inputs (or the key) and so stay out of dataset.json
INPUT_OPTIONS = frozenset(
    {"images", "annotations", "imagefolder", "patients", "label_map", "out", "rejects", "id_key"}
)


def default_rejects_path(dataset_dir: Path) -> Path:
    """``DATASET_DIR-rejects.csv`` beside DATASET_DIR (it names input files, so not inside)."""
    dataset_dir = dataset_dir.resolve()
    return dataset_dir.with_name(f"{dataset_dir.name}-rejects.csv")


def _check_options(cfg: PrepareConfig) -> bool:
    """ConfigError for a missing or contradictory option; True for boxes input, False for folders."""
    if cfg.out is None:
        raise ConfigError("--out DATASET_DIR is required")
    by_boxes = cfg.images is not None or cfg.annotations is not None
    if by_boxes == (cfg.imagefolder is not None) or (
        by_boxes and (cfg.images is None or cfg.annotations is None)
    ):
        raise ConfigError("give either --images DIR --annotations DIR, or --imagefolder DIR")
    if not 0 <= cfg.margin <= 2 or cfg.cache_size < 8:
        raise ConfigError("--margin must be in [0, 2] and --cache-size at least 8 pixels")
    return by_boxes


def _write_rejects(
    problems: list, cfg: PrepareConfig, dataset_dir: Path
) -> tuple[pd.DataFrame, Path | None]:
    """The rejects table; under --skip-invalid also written beside (not inside) the dataset."""
    rejects = pd.DataFrame(
        [[p.file, p.object_index, p.reason] for p in problems], columns=list(REJECT_COLUMNS)
    )
    rejects["object_index"] = rejects["object_index"].astype("Int64")
    if not cfg.skip_invalid:
        return rejects, None
    rejects_path = Path(cfg.rejects) if cfg.rejects else default_rejects_path(dataset_dir)
    write_csv(rejects, rejects_path)
    if len(rejects):
        log.warning("%d input problem(s) skipped; listed in %s", len(rejects), rejects_path)
    return rejects, rejects_path


def prepare_dataset(cfg: PrepareConfig) -> PrepareResult:
    """Run ``vcfnet prepare``; InputError listing every problem unless ``cfg.skip_invalid``."""
    by_boxes = _check_options(cfg)
    train_fraction = parse_split(cfg.split)
    dataset_dir = Path(cfg.out)
    previous_crops = check_output_paths(dataset_dir, Path(cfg.rejects) if cfg.rejects else None)
    key = resolve_id_key(cfg.id_key)
    label_map = load_label_map(cfg.label_map)
    patients = read_patients_csv(cfg.patients)
    spec = CropSpec(margin=cfg.margin, cache_size=cfg.cache_size)

    collect = collect_box_jobs if by_boxes else collect_imagefolder_jobs
    jobs, problems = collect(cfg, key, label_map, patients)
    (dataset_dir / CROPS_DIR).mkdir(parents=True, exist_ok=True)
    stale = remove_stale_temps(dataset_dir) + remove_stale_temps(dataset_dir / CROPS_DIR)
    if stale:
        log.info("removed %d temporary file(s) a killed run had left", stale)
    outcomes = list(run_jobs(jobs, dataset_dir, spec, resolve_workers(cfg.workers)))
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

    rejects, rejects_path = _write_rejects(problems, cfg, dataset_dir)

    # no paths: a folder or file named after a patient must not reach the de-identified dataset
    options = {k: v for k, v in config_to_dict(cfg).items() if k not in INPUT_OPTIONS}
    info = {
        "vcfnet_version": __version__,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": "boxes" if by_boxes else "imagefolder",
        "options": options,
        "crop_spec": spec.to_dict(),
        "counts": counts,
        "rejected": len(rejects),
        "crops_written": sum(o.written for o in outcomes),
        "crops_reused": sum(o.reused for o in outcomes),
        "pseudonyms": {"method": "HMAC-SHA256", "key_fingerprint": key_fingerprint(key)},
        "split_check": "passed: no patient in two splits",
    }
    manifest_path = write_manifest(manifest, dataset_dir)
    info_path = write_dataset_info(info, dataset_dir)
    removed = _remove_orphan_crops(dataset_dir, previous_crops, set(manifest["crop_path"]))
    if removed:
        log.info("removed %d crop(s) no longer in the manifest", removed)
    return PrepareResult(
        manifest, rejects, dataset_dir, manifest_path, info_path, rejects_path, info
    )
