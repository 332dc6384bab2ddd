"""The dataset manifest: ``DATASET_DIR/manifest.csv``, one row per boxed vertebra."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vcfnet.errors import InputError
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import write_csv
from vcfnet.preprocess import CropSpec

MANIFEST_NAME = "manifest.csv"
DATASET_INFO_NAME = "dataset.json"
SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Required columns, in file order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "crop_path",  # relative to DATASET_DIR, 8-bit grayscale PNG
    "label",  # acute | chronic | pathologic
    "level",  # e.g. L1, T12 ('' if unknown)
    "patient_id",  # keyed pseudonym, never the raw ID
    "site",
    "split",  # train | val | test
    "age",
    "sex",  # F | M | ''
    "source_image",  # pseudonymised image key, never the original file name
    "box_xmin",
    "box_ymin",
    "box_xmax",
    "box_ymax",
    "pixel_spacing_mm",
)


def read_manifest(dataset_dir: Path | str, *, check_files: bool = True) -> pd.DataFrame:
    """Read and validate ``dataset_dir/manifest.csv``; raises InputError naming what is wrong."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / MANIFEST_NAME
    if not path.is_file():
        raise InputError(f"{path} not found: is {dataset_dir} a dataset made by 'vcfnet prepare'?")
    df = pd.read_csv(
        path,
        dtype={
            "level": str,
            "patient_id": str,
            "site": str,
            "sex": str,
            "source_image": str,
            "crop_path": str,
            "label": str,
            "split": str,
        },
        keep_default_na=False,
        na_values={"age": [""], "pixel_spacing_mm": [""]},
    )
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {', '.join(missing)}; re-run 'vcfnet prepare'")
    if check_files:
        absent = [p for p in df["crop_path"] if not (dataset_dir / p).is_file()]
        if absent:
            raise InputError(
                f"{len(absent)} crop(s) listed in {path} are missing (first: {absent[0]}); "
                "re-run 'vcfnet prepare'"
            )
    return df


def write_manifest(df: pd.DataFrame, dataset_dir: Path | str) -> Path:
    """Write the manifest atomically (temp file + rename); required columns first."""
    dataset_dir = Path(dataset_dir)
    cols = list(MANIFEST_COLUMNS) + [c for c in df.columns if c not in MANIFEST_COLUMNS]
    path = dataset_dir / MANIFEST_NAME
    write_csv(df.loc[:, cols], path)
    return path


def write_dataset_info(info: dict, dataset_dir: Path | str) -> Path:
    path = Path(dataset_dir) / DATASET_INFO_NAME
    atomic_write_text(path, json.dumps(info, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_dataset_info(dataset_dir: Path | str) -> dict:
    """dataset.json of a prepared dataset; InputError saying how to make one if it is missing."""
    path = Path(dataset_dir) / DATASET_INFO_NAME
    if not path.is_file():
        raise InputError(
            f"{dataset_dir} has no {DATASET_INFO_NAME}: it records how the crops were cut (margin, "
            "size); make the dataset with 'vcfnet prepare --out DATASET_DIR ...'"
        )
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc}); re-run 'vcfnet prepare'") from exc
    if not isinstance(info, dict):
        raise InputError(f"{path} does not hold a JSON object; re-run 'vcfnet prepare'")
    return info


def read_crop_spec(dataset_dir: Path | str) -> CropSpec:
    """The CropSpec the dataset's crops were cut with (``crop_spec`` in its dataset.json)."""
    info = read_dataset_info(dataset_dir)
    if not isinstance(info.get("crop_spec"), dict):
        raise InputError(
            f"{Path(dataset_dir) / DATASET_INFO_NAME} has no crop_spec (made by an older vcfnet?); "
            "re-run 'vcfnet prepare' on the same inputs to refresh it (crops are reused)"
        )
    return CropSpec.from_dict(info["crop_spec"])
