"""``vcfnet evaluate``, ``vcfnet metrics`` and ``vcfnet compare``: Table 2 and Figure 5 per site.

``evaluate`` predicts the crops of one or more prepared datasets with a trained model, writes
``predictions.csv`` and then does exactly what ``metrics`` does with that file: ``metrics.csv``
(one row per site and class), ``metrics.json`` (plus Wilson intervals of every proportion and the
confusion matrices), figures per site (ROC, confusion matrix, reliability), a forest plot of the
per-class AUCs across sites, and ``report.html`` + ``report.md``. ``compare`` tests two models'
predictions on the same cases (DeLong per class, McNemar on top-1 correctness).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from vcfnet import __version__
from vcfnet.config import add_config_arguments, config_to_dict, resolve_config
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.atomic import atomic_path, atomic_write_text
from vcfnet.labels import CLASS_NAMES
from vcfnet.report import json_safe

log = logging.getLogger(__name__)

PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{c}" for c in CLASS_NAMES)
#: Columns every predictions file must have.
REQUIRED_PREDICTION_COLUMNS: tuple[str, ...] = (
    "case_id", "patient_id", "site", "label", "pred", *PROB_COLUMNS,
)  # fmt: skip
#: Columns of the predictions.csv that ``evaluate`` writes, in order.
PREDICTION_COLUMNS: tuple[str, ...] = (*REQUIRED_PREDICTION_COLUMNS, "level", "crop_path")
#: Crops decoded and predicted at a time (bounds memory on large datasets).
PREDICT_CHUNK = 512
#: Tolerance on sum(probabilities) == 1 (CSV round trips and float32 softmax).
PROB_SUM_TOLERANCE = 1e-3

#: The overall-row conventions of the paper's Table 2, stated in every report.
OVERALL_DEFINITIONS: tuple[str, ...] = (
    "Per-class rows are one-vs-rest.",
    "Overall accuracy = mean of the three one-vs-rest accuracies (the paper's convention; "
    "it is higher than the 3-class top-1 accuracy, which is shown beside it).",
    "Overall sensitivity, specificity, PPV and NPV = micro-averaged over the three one-vs-rest "
    "tables (so overall sensitivity = PPV = top-1 accuracy).",
    "Overall precision = support-weighted mean of the per-class precisions; overall F1 = "
    "harmonic mean of that precision and the overall sensitivity.",
    "Overall AUC = macro AUC (mean of the one-vs-rest AUCs) with a percentile bootstrap interval "
    "resampling patients, stratified by class.",
    "Confusion matrices: rows = true class, columns = predicted class.",
)


# --------------------------------------------------------------------------------------------
# configs
@dataclass
class ReportConfig:
    """Options shared by ``evaluate`` and ``metrics``."""

    out: Path | None = field(
        default=None, metadata={"help": "report folder to write", "metavar": "REPORT_DIR"}
    )
    ci: Literal["delong", "bootstrap"] = field(
        default="delong",
        metadata={"help": "per-class AUC interval: DeLong, or bootstrap resampling patients"},
    )
    n_boot: int = field(default=2000, metadata={"help": "bootstrap replicates"})
    level: float = field(default=0.95, metadata={"help": "confidence level of all intervals"})
    seed: int = field(default=0, metadata={"help": "bootstrap seed"})
    n_bins: int = field(default=10, metadata={"help": "bins of the reliability diagram"})

    def __post_init__(self) -> None:
        if not 0 < self.level < 1:
            raise ConfigError(f"--level must be between 0 and 1 (e.g. 0.95), got {self.level}")
        if self.n_boot < 100:
            raise ConfigError(f"--n-boot must be at least 100, got {self.n_boot}")


@dataclass
class MetricsConfig(ReportConfig):
    """Options of ``vcfnet metrics``."""

    predictions: Path | None = field(
        default=None, metadata={"help": "predictions.csv", "metavar": "CSV"}
    )


@dataclass
class EvaluateConfig(ReportConfig):
    """Options of ``vcfnet evaluate``."""

    model: Path | None = field(
        default=None,
        metadata={"help": "run folder or checkpoint (.pt) of 'vcfnet train'", "metavar": "MODEL"},
    )
    data: tuple[Path, ...] = field(
        default=(), metadata={"help": "dataset folder(s) made by 'vcfnet prepare'"}
    )
    split: Literal["train", "val", "test", "all"] = field(
        default="test",
        metadata={"help": "manifest split to evaluate ('--split none' datasets are all 'test')"},
    )
    site: tuple[str, ...] = field(default=(), metadata={"help": "only these sites (default all)"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "inference precision"}
    )
    batch_size: int = field(default=64, metadata={"help": "inference batch size"})
    workers: int = field(default=2, metadata={"help": "threads decoding crops"})


@dataclass
class CompareConfig:
    """Options of ``vcfnet compare``."""

    predictions_a: Path | None = field(default=None, metadata={"help": "predictions of model A"})
    predictions_b: Path | None = field(default=None, metadata={"help": "predictions of model B"})
    out: Path | None = field(default=None, metadata={"help": "folder to write", "metavar": "DIR"})
    level: float = field(default=0.95, metadata={"help": "confidence level"})


# --------------------------------------------------------------------------------------------
# predictions files
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
        df = pd.read_csv(path, dtype={"case_id": str, "patient_id": str, "site": str,
                                      "label": str, "pred": str, "level": str},
                         keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in PROB_COLUMNS})  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable CSV file: {exc}") from exc
    return validate_predictions(df, str(path))


def write_predictions(df: pd.DataFrame, path: Path | str) -> Path:
    """Write predictions atomically, known columns first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in PREDICTION_COLUMNS if c in df.columns]
    cols += [c for c in df.columns if c not in cols]
    with atomic_path(path) as tmp:
        df.loc[:, cols].to_csv(tmp, index=False)
    return path


# --------------------------------------------------------------------------------------------
# metrics report
def _label_indices(labels: pd.Series) -> np.ndarray:
    index = {c: i for i, c in enumerate(CLASS_NAMES)}
    return labels.map(index).to_numpy(dtype=int)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "site"


@dataclass(frozen=True)
class SiteResult:
    """Everything computed for one site: the Table 2 rows, Wilson table, confusion matrix, ECE."""

    site: str
    table: pd.DataFrame
    proportions: pd.DataFrame
    confusion: np.ndarray
    ece: float


def site_metrics(
    df: pd.DataFrame,
    site: str,
    *,
    ci: Literal["delong", "bootstrap"] = "delong",
    n_boot: int = 2000,
    level: float = 0.95,
    n_bins: int = 10,
    rng: np.random.Generator | int | None = 0,
) -> SiteResult:
    """Metrics of one site's validated predictions ``df``."""
    from vcfnet.stats.calibration import reliability
    from vcfnet.stats.classification import classification_table, confusion_matrix, proportion_table

    y_true = _label_indices(df["label"])
    y_pred = _label_indices(df["pred"])
    probs = df.loc[:, list(PROB_COLUMNS)].to_numpy(float)
    groups = df["patient_id"].to_numpy()
    table = classification_table(
        y_true, y_pred, probs, CLASS_NAMES, ci=ci, level=level, n_boot=n_boot,
        groups=groups, rng=rng,
    )  # fmt: skip
    cm = confusion_matrix(y_true, y_pred, len(CLASS_NAMES))
    props = proportion_table(cm, CLASS_NAMES, level)
    ece = reliability(y_true, probs, n_bins).ece
    return SiteResult(site, table.assign(site=site), props.assign(site=site), cm, ece)


def _report_table(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """Table 2 layout for the report: AUC (CI) and percentages with one decimal."""
    from vcfnet.report.figures import format_ci

    pct = ["accuracy", "sensitivity", "specificity", "precision", "f1", "ppv", "npv"]
    out = pd.DataFrame({"class": table["class"], "n": table["n"]})
    out[f"AUC ({level:.0%} CI)"] = [
        format_ci(r.auc, r.auc_ci_low, r.auc_ci_high) for r in table.itertuples()
    ]
    for col in pct:
        out[f"{col} (%)"] = [f"{100 * v:.1f}" if np.isfinite(v) else "" for v in table[col]]
    out["top-1 accuracy (%)"] = [
        f"{100 * v:.1f}" if np.isfinite(v) else "" for v in table["top1_accuracy"]
    ]
    return out


def write_metrics_report(
    predictions: pd.DataFrame,
    out_dir: Path | str,
    *,
    ci: Literal["delong", "bootstrap"] = "delong",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    provenance: dict[str, Any] | None = None,
    title: str = "vcfnet evaluation",
) -> pd.DataFrame:
    """Write metrics.csv, metrics.json, figures/ and report.html/.md for ``predictions``.

    Returns the metrics table (one row per site and class; columns site, class, n, auc, ...).
    """
    from vcfnet.report.figures import (
        plot_confusion,
        plot_forest,
        plot_reliability,
        plot_roc,
        save_figure,
    )
    from vcfnet.report.html import Report
    from vcfnet.stats.classification import TABLE_COLUMNS

    df = validate_predictions(predictions)
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sites = list(dict.fromkeys(df["site"]))
    results = [
        site_metrics(
            df[df["site"] == s], s, ci=ci, n_boot=n_boot, level=level, n_bins=n_bins, rng=rng
        )
        for s in sites
    ]
    metrics = pd.concat([r.table for r in results], ignore_index=True)
    metrics = metrics.loc[:, ["site", *TABLE_COLUMNS]]
    with atomic_path(out_dir / "metrics.csv") as tmp:
        metrics.to_csv(tmp, index=False)

    prov = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "vcfnet_version": __version__,
        "n_cases": len(df),
        "n_patients": int(df["patient_id"].nunique()),
        "cases_per_site_and_class": {
            s: {c: int(((df["site"] == s) & (df["label"] == c)).sum()) for c in CLASS_NAMES}
            for s in sites
        },
        "ci": ci, "n_boot": n_boot, "level": level, "seed": seed,
        **(provenance or {}),
    }  # fmt: skip

    report = Report(title)
    report.heading("Provenance")
    report.bullets([f"{k}: {v}" for k, v in prov.items() if k != "cases_per_site_and_class"])
    counts = pd.DataFrame(prov["cases_per_site_and_class"]).T.rename_axis("site").reset_index()
    report.table(counts, caption="Cases per site and true class")
    report.heading("Definitions")
    report.bullets(
        [*OVERALL_DEFINITIONS,
         f"Per-class AUC intervals: {'DeLong' if ci == 'delong' else f'bootstrap ({n_boot} replicates, resampling patients, stratified)'}; "
         f"proportions have Wilson intervals in metrics.json; level {level:.0%}."]
    )  # fmt: skip
    site_json = {}
    for r in results:
        stem = fig_dir / _slug(r.site)
        sub = df[df["site"] == r.site]
        y_true = _label_indices(sub["label"])
        probs = sub.loc[:, list(PROB_COLUMNS)].to_numpy(float)
        roc = save_figure(
            plot_roc(y_true, probs, CLASS_NAMES, auc_table=r.table.set_index("class"),
                     title=f"ROC, {r.site} (n={len(sub)})"),
            stem.with_name(stem.name + "_roc"),
        )  # fmt: skip
        conf = save_figure(
            plot_confusion(r.confusion, CLASS_NAMES, title=f"Confusion matrix, {r.site}"),
            stem.with_name(stem.name + "_confusion"),
        )
        rel = save_figure(
            plot_reliability(y_true, probs, n_bins=n_bins, title=f"Calibration, {r.site}"),
            stem.with_name(stem.name + "_reliability"),
        )
        report.heading(f"Site {r.site}")
        report.table(_report_table(r.table, level), caption=f"Table 2 layout, {r.site}")
        report.figure(roc[0], f"One-vs-rest ROC curves, {r.site}; legend: AUC ({level:.0%} CI)")
        report.figure(
            conf[0], f"Row-normalised confusion matrix, {r.site} (rows true, columns predicted)"
        )
        report.figure(
            rel[0], f"Reliability of the top-class probability, {r.site}; ECE {r.ece:.3f}"
        )
        site_json[r.site] = {
            "n": len(sub),
            "metrics": r.table.drop(columns="site").to_dict(orient="records"),
            "wilson_intervals": r.proportions.drop(columns="site").to_dict(orient="records"),
            "confusion_matrix": {
                "labels": list(CLASS_NAMES),
                "layout": "rows = true class, columns = predicted class",
                "counts": r.confusion.tolist(),
            },
            "ece": r.ece,
            "figures": [p.relative_to(out_dir).as_posix() for p in (*roc, *conf, *rel)],
        }
    per_class = metrics[metrics["class"] != "overall"]
    if per_class["auc"].notna().any():
        forest = save_figure(
            plot_forest(
                per_class, title="Per-class AUC across sites", xlabel=f"AUC ({level:.0%} CI)"
            ),
            fig_dir / "forest_auc",
        )
        report.heading("Across sites")
        report.figure(forest[0], "Per-class AUC with confidence intervals, by site")
    summary = {
        "provenance": prov,
        "definitions": list(OVERALL_DEFINITIONS),
        "columns": ["site", *TABLE_COLUMNS],
        "sites": site_json,
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(json_safe(summary), indent=2) + "\n")
    report.write(out_dir)
    log.info("wrote metrics for %d site(s), %d cases to %s", len(sites), len(df), out_dir)
    return metrics


# --------------------------------------------------------------------------------------------
# model evaluation
def predict_dataset(
    checkpoint,
    dataset_dir: Path | str,
    *,
    split: str = "test",
    sites: tuple[str, ...] = (),
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
) -> pd.DataFrame:
    """Predictions (PREDICTION_COLUMNS) of ``checkpoint`` for one prepared dataset's crops."""
    from tqdm import tqdm

    from vcfnet.data.dataset import decode_crops
    from vcfnet.data.manifest import read_manifest
    from vcfnet.device import resolve_device, resolve_precision
    from vcfnet.model import predict_proba

    dataset_dir = Path(dataset_dir)
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
    class_names = tuple(checkpoint.class_names)
    if class_names != CLASS_NAMES:
        raise InputError(f"model classes {class_names} differ from {CLASS_NAMES}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    paths = [dataset_dir / p for p in rows["crop_path"]]
    chunks = []
    for start in tqdm(range(0, len(paths), PREDICT_CHUNK), desc=f"predict {dataset_dir.name}",
                      unit="chunk", disable=None):  # fmt: skip
        crops = decode_crops(paths[start : start + PREDICT_CHUNK],
                             checkpoint.preprocessing.image_size, workers=workers)  # fmt: skip
        chunks.append(predict_proba(checkpoint.model, crops, checkpoint.preprocessing, device=dev,
                                    precision=prec, batch_size=batch_size))  # fmt: skip
    probs = np.concatenate(chunks)
    out = pd.DataFrame(
        {
            "case_id": [
                f"{s}/{Path(p).stem}" for s, p in zip(rows["site"], rows["crop_path"], strict=True)
            ],
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
    return out


def evaluate_model(
    model: Path | str,
    data_dirs: list[Path] | tuple[Path, ...],
    out_dir: Path | str,
    *,
    split: str = "test",
    sites: tuple[str, ...] = (),
    ci: Literal["delong", "bootstrap"] = "delong",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
) -> pd.DataFrame:
    """Predict every dataset, write ``out_dir/predictions.csv`` and the metrics report.

    Returns the metrics table (see write_metrics_report).
    """
    from vcfnet.model import load_checkpoint
    from vcfnet.predict import resolve_model_path

    if not data_dirs:
        raise InputError("no dataset given: pass --data DATASET_DIR [DATASET_DIR ...]")
    model_path = resolve_model_path(model)
    checkpoint = load_checkpoint(model_path)
    parts = []
    for data_dir in data_dirs:
        part = predict_dataset(checkpoint, data_dir, split=split, sites=sites, device=device,
                               precision=precision, batch_size=batch_size, workers=workers)  # fmt: skip
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
        "model": str(model_path),
        "model_hash": checkpoint.model_hash,
        "datasets": [str(Path(d)) for d in data_dirs],
        "split": split,
        "sites": list(sites) or "all",
    }
    return write_metrics_report(preds, out_dir, ci=ci, n_boot=n_boot, level=level, seed=seed,
                                n_bins=n_bins, provenance=provenance)  # fmt: skip


# --------------------------------------------------------------------------------------------
# paired comparison of two models
def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, *, level: float = 0.95
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired tests of two validated predictions tables on the same cases (matched by case_id).

    Returns (auc_tests, mcnemar_tests): per site (plus ``all`` when several sites) and class, the
    DeLong test of AUC(A) - AUC(B); per site, McNemar's test of top-1 correctness.
    """
    from vcfnet.stats.proportions import mcnemar_test
    from vcfnet.stats.roc import delong_test

    a = validate_predictions(a, "predictions A")
    b = validate_predictions(b, "predictions B")
    only_a = sorted(set(a["case_id"]) - set(b["case_id"]))
    only_b = sorted(set(b["case_id"]) - set(a["case_id"]))
    if only_a or only_b:
        raise InputError(
            f"the two predictions files must hold the same cases: {len(only_a)} case(s) only in A "
            f"(first: {only_a[:1]}), {len(only_b)} only in B (first: {only_b[:1]}); evaluate both "
            "models on the same datasets and split"
        )
    merged = a.merge(b, on="case_id", suffixes=("_a", "_b"))
    differ = merged["label_a"] != merged["label_b"]
    if differ.any():
        raise InputError(
            f"{int(differ.sum())} case(s) have different true labels in A and B "
            f"(first: {merged.loc[differ, 'case_id'].iloc[0]!r}): not the same reference standard"
        )
    sites = list(dict.fromkeys(merged["site_a"]))
    groups = [(s, merged[merged["site_a"] == s]) for s in sites]
    if len(sites) > 1:
        groups.append(("all", merged))
    auc_rows, mc_rows = [], []
    for site, sub in groups:
        for cls in CLASS_NAMES:
            y = (sub["label_a"] == cls).to_numpy()
            if y.all() or not y.any():
                continue
            t = delong_test(
                y, sub[f"p_{cls}_a"].to_numpy(), sub[f"p_{cls}_b"].to_numpy(), level=level
            )
            auc_rows.append({"site": site, "class": cls, "n": len(sub), "auc_a": t.auc_a,
                             "auc_b": t.auc_b, "difference": t.difference, "ci_low": t.low,
                             "ci_high": t.high, "z": t.z, "p": t.p})  # fmt: skip
        correct_a = (sub["pred_a"] == sub["label_a"]).to_numpy()
        correct_b = (sub["pred_b"] == sub["label_a"]).to_numpy()
        m = mcnemar_test(correct_a, correct_b)
        mc_rows.append({"site": site, "n": len(sub), "top1_accuracy_a": correct_a.mean(),
                        "top1_accuracy_b": correct_b.mean(), "n01": m.n01, "n10": m.n10,
                        "statistic": m.statistic, "p": m.p, "exact": m.exact})  # fmt: skip
    return pd.DataFrame(auc_rows), pd.DataFrame(mc_rows)


def format_p(p: float) -> str:
    """A p-value for a report: '<0.0001' below that, else 4 decimals."""
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def write_comparison(
    path_a: Path | str, path_b: Path | str, out_dir: Path | str, *, level: float = 0.95
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read two predictions.csv, write compare_auc.csv, compare_mcnemar.csv, compare.json and
    report.html/.md to ``out_dir``; returns the two tables."""
    from vcfnet.report.html import Report

    auc, mc = compare_predictions(read_predictions(path_a), read_predictions(path_b), level=level)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in (("compare_auc.csv", auc), ("compare_mcnemar.csv", mc)):
        with atomic_path(out_dir / name) as tmp:
            table.to_csv(tmp, index=False)
    info = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "vcfnet_version": __version__,
            "predictions_a": str(path_a), "predictions_b": str(path_b), "level": level}  # fmt: skip
    payload = {"provenance": info, "auc_tests": auc.to_dict(orient="records"),
               "mcnemar_tests": mc.to_dict(orient="records")}  # fmt: skip
    atomic_write_text(out_dir / "compare.json", json.dumps(json_safe(payload), indent=2) + "\n")
    report = Report("vcfnet compare: model A vs model B")
    report.bullets([f"{k}: {v}" for k, v in info.items()])
    report.paragraph(
        "AUC differences (A - B): paired two-sided DeLong test of correlated ROC curves, one class "
        f"against the rest, with a {level:.0%} interval of the difference. Top-1 accuracy: McNemar's "
        "test on paired correctness (exact binomial below 25 discordant pairs); n01 = cases A got "
        "wrong and B right, n10 = the reverse."
    )
    report.table(auc.assign(p=auc["p"].map(format_p)) if len(auc) else auc,
                 caption="DeLong tests of per-class AUC", digits=4)  # fmt: skip
    report.table(mc.assign(p=mc["p"].map(format_p)), caption="McNemar tests of top-1 accuracy",
                 digits=4)  # fmt: skip
    report.write(out_dir)
    return auc, mc


# --------------------------------------------------------------------------------------------
# CLI
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvaluateConfig, skip=("data", "site"))
    parser.add_argument("--data", nargs="+", type=Path, default=None, metavar="DATASET_DIR",
                        help="dataset folder(s) made by 'vcfnet prepare'")  # fmt: skip
    parser.add_argument("--site", nargs="+", default=None, metavar="NAME",
                        help="only these sites (default: all)")  # fmt: skip


def _require(value: Any, option: str) -> Any:
    if value in (None, (), []):
        raise ConfigError(f"{option} is required")
    return value


def run_evaluate(args: argparse.Namespace) -> int:
    cfg = resolve_config(EvaluateConfig, args)
    metrics = evaluate_model(
        _require(cfg.model, "--model"), _require(cfg.data, "--data"), _require(cfg.out, "--out"),
        split=cfg.split, sites=tuple(cfg.site), ci=cfg.ci, n_boot=cfg.n_boot, level=cfg.level,
        seed=cfg.seed, n_bins=cfg.n_bins, device=cfg.device, precision=cfg.precision,
        batch_size=cfg.batch_size, workers=cfg.workers,
    )  # fmt: skip
    save_run_config(cfg, cfg.out)
    _print_summary(metrics, cfg.out)
    return 0


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", type=Path, metavar="PREDICTIONS_CSV",
                        help="predictions.csv written by 'vcfnet evaluate'")  # fmt: skip
    add_config_arguments(parser, MetricsConfig, skip=("predictions",))


def run_metrics(args: argparse.Namespace) -> int:
    cfg = resolve_config(MetricsConfig, args)
    preds = read_predictions(_require(cfg.predictions, "PREDICTIONS_CSV"))
    out = _require(cfg.out, "--out")
    metrics = write_metrics_report(
        preds, out, ci=cfg.ci, n_boot=cfg.n_boot, level=cfg.level, seed=cfg.seed,
        n_bins=cfg.n_bins, provenance={"predictions": str(cfg.predictions)},
    )  # fmt: skip
    save_run_config(cfg, out)
    _print_summary(metrics, out)
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions_a", type=Path, metavar="PREDICTIONS_A")
    parser.add_argument("predictions_b", type=Path, metavar="PREDICTIONS_B")
    add_config_arguments(parser, CompareConfig, skip=("predictions_a", "predictions_b"))


def run_compare(args: argparse.Namespace) -> int:
    cfg = resolve_config(CompareConfig, args)
    auc, mc = write_comparison(cfg.predictions_a, cfg.predictions_b, _require(cfg.out, "--out"),
                               level=cfg.level)  # fmt: skip
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(auc.round(4).to_string(index=False))
        print(mc.round(4).to_string(index=False))
    print(f"wrote {Path(cfg.out) / 'report.html'}")
    return 0


def _print_summary(metrics: pd.DataFrame, out: Path) -> None:
    overall = metrics[metrics["class"] == "overall"]
    cols = ["site", "n", "macro_auc", "top1_accuracy", "accuracy", "sensitivity", "specificity"]
    with pd.option_context("display.width", 140):
        print(overall.loc[:, cols].round(3).to_string(index=False))
    print(f"wrote {Path(out) / 'report.html'}")


def save_run_config(cfg: Any, out_dir: Path) -> None:
    """Record the resolved options next to the report."""
    atomic_write_text(
        Path(out_dir) / "config.json", json.dumps(config_to_dict(cfg), indent=2) + "\n"
    )


# --------------------------------------------------------------------------------------------
# benchmark
def add_bench_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-cases", type=int, default=1000, help="cases (default 1000)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--naive-boot", type=int, default=100,
                        help="replicates timed for the naive loop (then extrapolated)")  # fmt: skip


def bench_metrics(args: argparse.Namespace) -> dict:
    """Vectorised bootstrap AUC interval vs a loop of sklearn roc_auc_score over replicates."""
    from sklearn.metrics import roc_auc_score

    from vcfnet.stats.roc import roc_auc_ci

    n_cases = getattr(args, "n_cases", 1000)
    n_boot = getattr(args, "n_boot", 2000)
    naive_boot = max(1, min(getattr(args, "naive_boot", 100), n_boot))
    rng = np.random.default_rng(0)
    y = rng.random(n_cases) < 0.4
    y[:2] = [True, False]
    s = rng.normal(size=n_cases) + y

    t0 = time.perf_counter()
    res = roc_auc_ci(y, s, method="bootstrap", n_boot=n_boot, rng=1)
    vectorised = time.perf_counter() - t0

    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    t0 = time.perf_counter()
    for _ in range(naive_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        roc_auc_score(y[idx], s[idx])
    naive_per_rep = (time.perf_counter() - t0) / naive_boot
    naive_total = naive_per_rep * n_boot
    t0 = time.perf_counter()
    roc_auc_ci(y, s, method="delong")
    delong = time.perf_counter() - t0
    return {
        "n_cases": n_cases,
        "n_boot": n_boot,
        "bootstrap_vectorised_s": vectorised,
        "bootstrap_naive_s_extrapolated": naive_total,
        "naive_replicates_timed": naive_boot,
        "speedup_vectorised_vs_naive": naive_total / vectorised if vectorised > 0 else float("inf"),
        "delong_s": delong,
        "auc": res.auc,
    }
