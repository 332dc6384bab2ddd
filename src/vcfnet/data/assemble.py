"""From decoded jobs to the manifest: one row per crop with its keyed patient pseudonym,
then the patient-level split and the count table."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from vcfnet.data.jobs import ImageOutcome
from vcfnet.data.pseudonym import pseudonym
from vcfnet.data.sources import lookup_patient
from vcfnet.data.split import check_disjoint, patient_labels, split_patients
from vcfnet.errors import ConfigError

log = logging.getLogger(__name__)


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
        entry = lookup_patient(patients, job.key)
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
