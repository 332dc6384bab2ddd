"""What a run leaves in RUN_DIR besides checkpoints: metrics.csv and model_card.md."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pandas as pd

from vcfnet.data.dataset import CropTensors
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import write_csv
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import load_checkpoint
from vcfnet.training.config import METRIC_COLUMNS, TrainConfig, TrainResult


def weights_record(weights: str) -> str:
    """How the backbone was initialised, for config and model card (file weights with their sha256)."""
    if weights.lower() == "imagenet":
        return "imagenet (torchvision ResNet18_Weights.IMAGENET1K_V1)"
    if weights.lower() == "none":
        return "none (random init)"
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    return f"{weights} (sha256 {digest})"


def write_metrics(history: list[dict[str, float]], path: Path) -> None:
    """metrics.csv, one row per epoch, columns ``METRIC_COLUMNS`` (atomic rewrite)."""
    df = pd.DataFrame(history).reindex(columns=list(METRIC_COLUMNS))
    write_csv(df, path, float_format="%.6g")


def read_run(run_dir: Path | str) -> TrainResult:
    """The TrainResult of a run folder written by ``train``."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(last)
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=run_dir / "checkpoints" / "best.pt",
        last_checkpoint=last,
        best_epoch=int(ckpt.extra.get("best_epoch", 0)),
        best_metric=float(ckpt.extra.get("best_metric", math.nan)),
        metrics=pd.read_csv(run_dir / "metrics.csv"),
        model_hash=ckpt.model_hash,
    )


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def write_model_card(
    path: Path,
    cfg: TrainConfig,
    history: list[dict],
    best_epoch: int,
    weights_used: str,
    train_data: CropTensors,
    val_data: CropTensors,
) -> None:
    """model_card.md: data, recipe, validation results, intended use and limits."""
    best = next((r for r in history if r["epoch"] == best_epoch), history[-1])
    counts = "\n".join(
        f"| {split} | {len(d)} | "
        + " | ".join(str(c) for c in d.class_counts())
        + f" | {d.rows['patient_id'].nunique()} |"
        for split, d in (("train", train_data), ("val", val_data))
    )
    aucs = "\n".join(f"| {c} | {_fmt(best[f'val_auc_{c}'])} |" for c in CLASS_NAMES)
    text = f"""# vcfnet model card

ResNet-18 classifier of vertebral compression fractures ({", ".join(CLASS_NAMES)}) on crops of
lateral lumbar radiographs, after Xu et al., Front. Endocrinol. 2023 (doi:10.3389/fendo.2023.1025749).

## Data
Dataset: `{cfg.data}` (split per patient by `vcfnet prepare`; the test split was not read).

| split | crops | {" | ".join(CLASS_NAMES)} | patients |
|---|---|{"---|" * len(CLASS_NAMES)}---|
{counts}

## Recipe
- Backbone weights: {weights_used}
- Input {cfg.image_size}x{cfg.image_size}, gray replicated to 3 channels, ImageNet mean/std
- Augmentation: hflip={cfg.hflip}, vflip={cfg.vflip}, rotation ±{cfg.rotation_degrees}°
- Adam lr {cfg.lr:g}, weight decay {cfg.weight_decay:g}, {cfg.lr_schedule} schedule, batch {cfg.batch_size},
  {cfg.epochs} epochs, class weights {cfg.class_weights}, sampler {cfg.sampler}, seed {cfg.seed},
  precision {cfg.precision}
- Best epoch selected on the validation split by {cfg.select_metric}: epoch {best_epoch} of {len(history)} run

## Validation results (epoch {best_epoch})
Loss {_fmt(best["val_loss"])}, top-1 accuracy {_fmt(best["val_acc"])}, macro one-vs-rest AUC {_fmt(best["val_macro_auc"])}.

| class | AUC (one-vs-rest) |
|---|---|
{aucs}

## Intended use
Research and reproduction of the paper's method. Input: a box around one fractured vertebra on a
lateral lumbar radiograph, already known to be a compression fracture. Output: probabilities of
acute, chronic and pathologic. Evaluate on held-out sites with `vcfnet evaluate` before any use.

## Limits
Not a medical device; not validated for clinical decisions. It does not detect fractures, only
classifies boxed ones. Validation-split numbers are optimistic (the epoch was chosen on them);
report test and external-site results instead. Pathologic fractures are rare (~8% in the paper),
so their estimates are the least certain. A model trained on synthetic data (`vcfnet synth`) says
nothing about real radiographs.
"""
    atomic_write_text(path, text)
