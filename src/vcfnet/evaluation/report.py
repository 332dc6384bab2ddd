"""The Table 2 / Figure 5 report of a predictions table: metrics.csv, metrics.json, figures per
site (ROC, confusion, reliability), a forest plot across sites, report.html and report.md."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from vcfnet import __version__
from vcfnet.evaluation.predictions import PROB_COLUMNS, label_indices, validate_predictions
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import write_csv
from vcfnet.labels import CLASS_NAMES
from vcfnet.report import SMALL_SAMPLE_MARK, json_safe
from vcfnet.report.figures import (
    format_ci,
    plot_confusion,
    plot_forest,
    plot_reliability,
    plot_roc,
    save_figure,
)
from vcfnet.report.html import Report
from vcfnet.stats.calibration import reliability
from vcfnet.stats.classification import (
    TABLE_COLUMNS,
    classification_table,
    confusion_matrix,
    proportion_table,
)
from vcfnet.stats.roc import SMALL_SAMPLE_MIN_CASES

log = logging.getLogger(__name__)

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
    ci: Literal["auto", "delong", "bootstrap", "newcombe"] = "auto",
    n_boot: int = 2000,
    level: float = 0.95,
    n_bins: int = 10,
    rng: np.random.Generator | int | None = 0,
) -> SiteResult:
    """Metrics of one site's validated predictions ``df``."""
    y_true = label_indices(df["label"])
    y_pred = label_indices(df["pred"])
    probs = df.loc[:, list(PROB_COLUMNS)].to_numpy(float)
    groups = df["patient_id"].to_numpy()
    table = classification_table(
        y_true,
        y_pred,
        probs,
        CLASS_NAMES,
        ci=ci,
        level=level,
        n_boot=n_boot,
        groups=groups,
        rng=rng,
    )
    cm = confusion_matrix(y_true, y_pred, len(CLASS_NAMES))
    props = proportion_table(cm, CLASS_NAMES, level)
    ece = reliability(y_true, probs, n_bins).ece
    return SiteResult(site, table.assign(site=site), props.assign(site=site), cm, ece)


def auc_cell(auc: float, low: float, high: float, method: str = "", estimable: bool = True) -> str:
    """'AUC (CI)', marked when the interval is Newcombe's small-sample one; 'not estimable' alone
    for a class with a single case (its AUC is that case's rank, its interval has no width)."""
    if estimable is False:
        return f"not estimable {SMALL_SAMPLE_MARK}"
    text = format_ci(auc, low, high)
    if method == "newcombe":
        return f"{text} {SMALL_SAMPLE_MARK}"
    return text


def pct_ci(value: float, low: float, high: float) -> str:
    """'100.0 (20.7-100.0)': a percentage with its Wilson interval."""
    if not np.isfinite(value):
        return ""
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} ({100 * low:.1f}-{100 * high:.1f})"


def _report_table(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """Table 2 layout for the report: AUC (CI) and percentages with their Wilson intervals."""
    out = pd.DataFrame({"class": table["class"], "n": table["n"]})
    out[f"AUC ({level:.0%} CI)"] = [
        auc_cell(r.auc, r.auc_ci_low, r.auc_ci_high, r.auc_ci_method, r.auc_estimable)
        for r in table.itertuples()
    ]
    for col in ("accuracy", "sensitivity", "specificity", "precision", "f1", "ppv", "npv"):
        if f"{col}_ci_low" in table:
            cells = [
                pct_ci(v, lo, hi)
                for v, lo, hi in zip(
                    table[col], table[f"{col}_ci_low"], table[f"{col}_ci_high"], strict=True
                )
            ]
            out[f"{col} % ({level:.0%} CI)"] = cells
        else:
            out[f"{col} (%)"] = [f"{100 * v:.1f}" if np.isfinite(v) else "" for v in table[col]]
    out["top-1 accuracy (%)"] = [
        f"{100 * v:.1f}" if np.isfinite(v) else "" for v in table["top1_accuracy"]
    ]
    return out


def small_sample_warnings(df: pd.DataFrame, min_cases: int = SMALL_SAMPLE_MIN_CASES) -> list[str]:
    """One line per site where a true class has fewer than ``min_cases`` cases."""
    lines = []
    for site, sub in df.groupby("site", sort=False):
        counts = sub["label"].value_counts()
        small = [
            f"{c} {int(counts.get(c, 0))}" for c in CLASS_NAMES if counts.get(c, 0) < min_cases
        ]
        if small:
            lines.append(
                f"site {site}: fewer than {min_cases} cases of {', '.join(small)}; their AUC "
                f"intervals are Newcombe's small-sample ones ({SMALL_SAMPLE_MARK} in the report) "
                "and wide"
            )
    return lines


def _provenance(df: pd.DataFrame, sites: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """Date, version, case counts per site and class, and the caller's options."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "vcfnet_version": __version__,
        "n_cases": len(df),
        "n_patients": int(df["patient_id"].nunique()),
        "cases_per_site_and_class": {
            s: {c: int(((df["site"] == s) & (df["label"] == c)).sum()) for c in CLASS_NAMES}
            for s in sites
        },
        **extra,
    }


def _report_header(
    report: Report, prov: dict[str, Any], ci: str, n_boot: int, level: float
) -> None:
    """Provenance, cases per site and class, and the definitions of every number."""
    report.heading("Provenance")
    report.bullets([f"{k}: {v}" for k, v in prov.items() if k != "cases_per_site_and_class"])
    counts = pd.DataFrame(prov["cases_per_site_and_class"]).T.rename_axis("site").reset_index()
    report.table(counts, caption="Cases per site and true class")
    report.heading("Definitions")
    method = {
        "auto": f"DeLong, or Newcombe's score interval ({SMALL_SAMPLE_MARK}) where a class has "
        f"< {SMALL_SAMPLE_MIN_CASES} cases on one side or an AUC of 0 or 1",
        "delong": "DeLong",
        "newcombe": f"Newcombe's score interval ({SMALL_SAMPLE_MARK})",
        "bootstrap": f"bootstrap ({n_boot} replicates, resampling patients, stratified)",
    }[ci]
    report.bullets(
        [
            *OVERALL_DEFINITIONS,
            f"Per-class AUC intervals: {method}; proportions have "
            f"Wilson intervals in metrics.json; level {level:.0%}.",
        ]
    )


def _site_section(
    report: Report, r: SiteResult, sub: pd.DataFrame, out_dir: Path, level: float, n_bins: int
) -> dict[str, Any]:
    """One site's figures and table in the report; returns its entry of metrics.json."""
    stem = out_dir / "figures" / _slug(r.site)
    y_true = label_indices(sub["label"])
    probs = sub.loc[:, list(PROB_COLUMNS)].to_numpy(float)
    roc = save_figure(
        plot_roc(
            y_true,
            probs,
            CLASS_NAMES,
            auc_table=r.table.set_index("class"),
            title=f"ROC, {r.site} (n={len(sub)})",
        ),
        stem.with_name(stem.name + "_roc"),
    )
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
    report.figure(rel[0], f"Reliability of the top-class probability, {r.site}; ECE {r.ece:.3f}")
    return {
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


def _forest_section(report: Report, metrics: pd.DataFrame, out_dir: Path, level: float) -> None:
    """The forest plot of per-class AUCs across sites (when any AUC is defined)."""
    per_class = metrics[metrics["class"] != "overall"]
    if not per_class["auc"].notna().any():
        return
    forest = save_figure(
        plot_forest(per_class, title="Per-class AUC across sites", xlabel=f"AUC ({level:.0%} CI)"),
        out_dir / "figures" / "forest_auc",
    )
    report.heading("Across sites")
    report.figure(forest[0], "Per-class AUC with confidence intervals, by site")


def write_metrics_report(
    predictions: pd.DataFrame,
    out_dir: Path | str,
    *,
    ci: str = "auto",
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
    df = validate_predictions(predictions)
    for line in small_sample_warnings(df):
        log.warning(line)
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
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
    write_csv(metrics, out_dir / "metrics.csv")
    options = {"ci": ci, "n_boot": n_boot, "level": level, "seed": seed}
    prov = _provenance(df, sites, {**options, **(provenance or {})})
    report = Report(title)
    _report_header(report, prov, ci, n_boot, level)
    site_json = {
        r.site: _site_section(report, r, df[df["site"] == r.site], out_dir, level, n_bins)
        for r in results
    }
    _forest_section(report, metrics, out_dir, level)
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
