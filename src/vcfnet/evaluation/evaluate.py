"""``evaluate_model``: predict the crops of prepared datasets with any Predictor (``.pt``, ``.onnx``,
int8 ``.onnx``), write ``predictions.csv`` and the metrics report."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vcfnet.data.dataset import decode_crops
from vcfnet.data.manifest import read_manifest
from vcfnet.errors import InputError
from vcfnet.evaluation.predictions import PROB_COLUMNS, case_ids, write_predictions
from vcfnet.evaluation.report import write_metrics_report
from vcfnet.inference.loading import load_model
from vcfnet.inference.predictor import Predictor
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.paths import resolve_model_path

log = logging.getLogger(__name__)

#: Crops decoded and predicted at a time (bounds memory on large datasets).
PREDICT_CHUNK = 512


def select_rows(dataset_dir: Path, split: str, sites: tuple[str, ...]) -> pd.DataFrame:
    """Manifest rows of ``split`` (``all``: every row) and ``sites`` (empty: all); InputError if none."""
    manifest = read_manifest(dataset_dir)
    rows = manifest if split == "all" else manifest[manifest["split"] == split]
    if sites:
        rows = rows[rows["site"].isin(sites)]
    if rows.empty:
        raise InputError(
            f"{dataset_dir}: no cases in split {split!r}"
            + (f" for site(s) {', '.join(sites)}" if sites else "")
            + f" (splits present: {', '.join(sorted(set(manifest['split'])))})"
        )
    return rows


def predict_dataset(
    predictor: Predictor,
    dataset_dir: Path | str,
    *,
    split: str = "test",
    sites: tuple[str, ...] = (),
    workers: int = 2,
) -> pd.DataFrame:
    """Predictions (PREDICTION_COLUMNS) of ``predictor`` for one prepared dataset's crops."""
    dataset_dir = Path(dataset_dir)
    rows = select_rows(dataset_dir, split, sites)
    if tuple(predictor.class_names) != CLASS_NAMES:
        raise InputError(f"model classes {predictor.class_names} differ from {CLASS_NAMES}")
    paths = [dataset_dir / p for p in rows["crop_path"]]
    size = predictor.input.image_size
    chunks = [np.zeros((0, len(CLASS_NAMES)))]
    for start in tqdm(
        range(0, len(paths), PREDICT_CHUNK),
        desc=f"predict {dataset_dir.name}",
        unit="chunk",
        disable=None,
    ):
        crops = decode_crops(paths[start : start + PREDICT_CHUNK], size, workers=workers)
        chunks.append(predictor.predict_crops(crops))
    probs = np.concatenate(chunks)
    return pd.DataFrame(
        {
            "case_id": case_ids(rows["site"], rows["crop_path"]),
            "patient_id": rows["patient_id"].to_numpy(),
            "site": rows["site"].to_numpy(),
            "label": rows["label"].to_numpy(),
            "pred": [CLASS_NAMES[i] for i in probs.argmax(axis=1)],
            **{col: probs[:, k] for k, col in enumerate(PROB_COLUMNS)},
            "level": rows["level"].to_numpy(),
            # as in the manifest: relative to DATASET_DIR, so no local path leaves the machine
            "crop_path": rows["crop_path"].to_numpy(),
        }
    )


def evaluate_model(
    model: Path | str,
    data_dirs: list[Path] | tuple[Path, ...],
    out_dir: Path | str,
    *,
    split: str = "test",
    sites: tuple[str, ...] = (),
    ci: str = "auto",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
) -> pd.DataFrame:
    """Predict every dataset with the model at ``model`` (RUN_DIR, ``.pt`` or ``.onnx``, fp32 or
    int8), write ``out_dir/predictions.csv`` and the metrics report; returns the metrics table."""
    if not data_dirs:
        raise InputError("no dataset given: pass --data DATASET_DIR [DATASET_DIR ...]")
    predictor = load_model(model, device=device, precision=precision, batch_size=batch_size)
    parts = []
    for data_dir in data_dirs:
        part = predict_dataset(predictor, data_dir, split=split, sites=sites, workers=workers)
        log.info("predicted %d case(s) of %s", len(part), data_dir)
        parts.append(part.assign(_dataset=Path(data_dir).name))
    preds = pd.concat(parts, ignore_index=True)
    if preds["case_id"].duplicated().any():  # same site and crop name in two datasets
        log.warning("case ids repeat across datasets; prefixing them with the dataset folder name")
        preds["case_id"] = preds["_dataset"] + "/" + preds["case_id"]
    preds = preds.drop(columns="_dataset")
    out_dir = Path(out_dir)
    write_predictions(preds, out_dir / "predictions.csv")
    provenance = {
        "model": str(resolve_model_path(model)),
        "model_hash": predictor.info.hash,
        "runtime": predictor.info.runtime,
        "datasets": [str(Path(d)) for d in data_dirs],
        "split": split,
        "sites": list(sites) or "all",
    }
    return write_metrics_report(
        preds,
        out_dir,
        ci=ci,
        n_boot=n_boot,
        level=level,
        seed=seed,
        n_bins=n_bins,
        provenance=provenance,
    )
