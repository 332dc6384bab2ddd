"""The predictions table: one row per case with its truth, prediction and class probabilities.

Written by ``vcfnet evaluate`` (``predictions.csv``) and ``vcfnet predict --format csv``, read by
``vcfnet metrics`` and ``vcfnet compare``. Its rules live here once: the columns, the case id
(``SITE/crop-stem``), the probability columns ``p_<class>`` and the label indexing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vcfnet.errors import InputError
from vcfnet.inference.results import ImagePrediction
from vcfnet.io.tables import write_csv
from vcfnet.labels import CLASS_NAMES

log = logging.getLogger(__name__)

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASS_NAMES)

#: Columns every predictions file must have.
REQUIRED_PREDICTION_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "site",
    "label",
    "pred",
    *PROB_COLUMNS,
)

#: Columns of the predictions.csv that ``evaluate`` writes, in order.
PREDICTION_COLUMNS: tuple[str, ...] = (*REQUIRED_PREDICTION_COLUMNS, "level", "crop_path")

#: Tolerance on sum(probabilities) == 1 (CSV round trips and float32 softmax).
PROB_SUM_TOLERANCE = 1e-3


def validate_predictions(df: pd.DataFrame, source: str = "predictions") -> pd.DataFrame:
    """Check a predictions table; returns a clean copy. InputError says what is wrong."""
    missing = [c for c in REQUIRED_PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{source} lacks column(s) {', '.join(missing)}; expected "
            f"{', '.join(REQUIRED_PREDICTION_COLUMNS)} (as written by 'vcfnet evaluate')"
        )
    if df.empty:
        raise InputError(f"{source} has no rows")
    df = df.copy()
    for col in ("case_id", "patient_id", "site", "label", "pred"):
        if df[col].isna().any() or (df[col].astype(str).str.strip() == "").any():
            bad = int(df[col].isna().sum() + (df[col].astype(str).str.strip() == "").sum())
            raise InputError(f"{source}: {bad} row(s) have an empty {col!r}")
        df[col] = df[col].astype(str).str.strip()
    for col in ("label", "pred"):
        df[col] = df[col].str.lower()
        unknown = sorted(set(df[col]) - set(CLASS_NAMES))
        if unknown:
            raise InputError(
                f"{source}: unknown {col} value(s) {', '.join(unknown)}; expected "
                f"{', '.join(CLASS_NAMES)}"
            )
    probs = df.loc[:, list(PROB_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(probs).all():
        rows = np.flatnonzero(~np.isfinite(probs).all(axis=1))
        raise InputError(
            f"{source}: {rows.size} row(s) have missing or non-numeric probabilities "
            f"(first: case {df['case_id'].iloc[rows[0]]!r}); re-run 'vcfnet evaluate'"
        )
    if (probs < 0).any() or (probs > 1).any():
        raise InputError(f"{source}: probabilities must lie in [0, 1]")
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_TOLERANCE)
    if off.size:
        raise InputError(
            f"{source}: probabilities of {off.size} row(s) do not sum to 1 (first: case "
            f"{df['case_id'].iloc[off[0]]!r} sums to {sums[off[0]]:.4f}); "
            f"columns {', '.join(PROB_COLUMNS)} must be softmax outputs"
        )
    df.loc[:, list(PROB_COLUMNS)] = probs
    dup = df["case_id"][df["case_id"].duplicated()]
    if not dup.empty:
        raise InputError(f"{source}: case_id {dup.iloc[0]!r} occurs more than once")
    return df


def read_predictions(path: Path | str) -> pd.DataFrame:
    """Read and validate a predictions.csv (InputError when missing or malformed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"predictions file {path} not found (write one with 'vcfnet evaluate')")
    try:
        df = pd.read_csv(
            path,
            dtype={
                "case_id": str,
                "patient_id": str,
                "site": str,
                "label": str,
                "pred": str,
                "level": str,
            },
            keep_default_na=False,
            na_values={c: ["", "nan", "NaN"] for c in PROB_COLUMNS},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable CSV file: {exc}") from exc
    return validate_predictions(df, str(path))


def write_predictions(df: pd.DataFrame, path: Path | str) -> Path:
    """Write predictions atomically, known columns first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in PREDICTION_COLUMNS if c in df.columns]
    cols += [c for c in df.columns if c not in cols]
    write_csv(df.loc[:, cols], path)
    return path


def label_indices(labels: pd.Series) -> np.ndarray:
    index = {c: i for i, c in enumerate(CLASS_NAMES)}
    return labels.map(index).to_numpy(dtype=int)


def case_ids(sites: pd.Series, crop_paths: pd.Series) -> list[str]:
    """The case id of each prepared crop: ``SITE/<crop file stem>`` (the crop stem is a keyed
    pseudonym, so the id names no patient)."""
    return [f"{s}/{Path(p).stem}" for s, p in zip(sites, crop_paths, strict=True)]


def prediction_rows(
    results: Sequence[ImagePrediction], class_names: Sequence[str], site: str = "local"
) -> list[dict[str, Any]]:
    """Rows in the ``predictions.csv`` layout of ``vcfnet evaluate`` (+ source and box columns)."""
    rows = []
    for result in results:
        stem = Path(result.source).stem
        for i, box in enumerate(result.boxes):
            is_crop = box.box is None
            row = {
                "case_id": stem if is_crop else f"{stem}-{i}",
                "patient_id": result.patient_id or stem,
                "site": site,
                "label": box.label,
                "pred": box.predicted,
                **{f"p_{c}": box.probabilities[c] for c in class_names},
                "level": box.level,
                "crop_path": result.source if is_crop else "",
                "source": result.source,
            }
            for key, value in zip(
                ("box_xmin", "box_ymin", "box_xmax", "box_ymax"), box.box or ("",) * 4, strict=True
            ):
                row[key] = value
            rows.append(row)
    return rows
