"""Per-class (one-vs-rest) and overall classification metrics, laid out as the paper's Table 2.

The overall row follows the paper's conventions so that numbers can be put beside Table 2:
accuracy = mean of the one-vs-rest accuracies; sensitivity, specificity, PPV and NPV are
micro-averaged over the one-vs-rest tables (so sensitivity = PPV = top-1 accuracy); precision is
the support-weighted mean of the per-class precisions; F1 is the harmonic mean of that precision
and the overall sensitivity. ``top1_accuracy`` (the 3-class accuracy) and ``macro_auc`` are given
beside them. Confusion matrices have rows = true class, columns = predicted class.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix

from vcfnet.labels import CLASS_NAMES
from vcfnet.stats.proportions import wilson_ci
from vcfnet.stats.roc import (
    RngLike,
    as_rng,
    bootstrap_weights,
    percentile_ci,
    roc_auc_ci,
    weighted_auc,
)

log = logging.getLogger(__name__)

#: Columns of classification_table, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "class",
    "n",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "ppv",
    "npv",
    "top1_accuracy",
    "macro_auc",
    "auc_ci_method",
    "auc_estimable",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "sensitivity_ci_low",
    "sensitivity_ci_high",
    "specificity_ci_low",
    "specificity_ci_high",
    "ppv_ci_low",
    "ppv_ci_high",
    "npv_ci_low",
    "npv_ci_high",
)

#: Proportion metrics with a Wilson interval in proportion_table (and *_ci_low/high columns).
PROPORTIONS: tuple[str, ...] = ("accuracy", "sensitivity", "specificity", "ppv", "npv")

AucCi = Literal["auto", "delong", "bootstrap", "newcombe"]


def check_labels(y_true, y_pred, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate integer class indices (n,) in range(n_classes); raises ValueError."""
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} must be 1-D of the same length")
    if t.size == 0:
        raise ValueError("no cases: metrics need at least one case")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
                raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
            if not np.equal(np.mod(arr, 1), 0).all():
                raise ValueError(f"{name} must hold integer class indices")
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(f"{name} has class indices outside 0..{n_classes - 1}")
    return t.astype(int), p.astype(int)


def confusion_matrix(y_true, y_pred, n_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """Counts (C, C): rows = true class, columns = predicted class (sklearn's layout)."""
    t, p = check_labels(y_true, y_pred, n_classes)
    return _sk_confusion_matrix(t, p, labels=list(range(n_classes)))


def one_vs_rest_counts(cm: np.ndarray) -> pd.DataFrame:
    """TP, FN, FP, TN (C rows) of each class against the rest, from a confusion matrix (C, C)."""
    cm = np.asarray(cm)
    total = cm.sum()
    tp = np.diag(cm)
    fn = cm.sum(axis=1) - tp
    fp = cm.sum(axis=0) - tp
    tn = total - tp - fn - fp
    return pd.DataFrame({"tp": tp, "fn": fn, "fp": fp, "tn": tn})


def _ratio(num, den):
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _harmonic(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return _ratio(2.0 * a * b, a + b)


def metrics_from_confusion(cm: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Table 2's proportions (no AUC) from a confusion matrix (C, C): C class rows + 'overall'."""
    cm = np.asarray(cm)
    c = one_vs_rest_counts(cm)
    total = cm.sum()
    support = c.tp + c.fn
    sens = _ratio(c.tp, c.tp + c.fn)
    spec = _ratio(c.tn, c.tn + c.fp)
    ppv = _ratio(c.tp, c.tp + c.fp)
    npv = _ratio(c.tn, c.tn + c.fn)
    acc = _ratio(c.tp + c.tn, total)
    rows = pd.DataFrame(
        {
            "class": list(class_names),
            "n": support.to_numpy(),
            "accuracy": acc,
            "sensitivity": sens,
            "specificity": spec,
            "precision": ppv,
            "f1": _harmonic(ppv, sens),
            "ppv": ppv,
            "npv": npv,
        }
    )
    defined = np.isfinite(ppv) & (support.to_numpy() > 0)
    precision = (
        float(np.sum(ppv[defined] * support[defined]) / support[defined].sum())
        if defined.any()
        else np.nan
    )
    overall_sens = float(_ratio(c.tp.sum(), (c.tp + c.fn).sum()))
    overall = {
        "class": "overall",
        "n": int(total),
        "accuracy": float(np.mean(acc)),
        "sensitivity": overall_sens,
        "specificity": float(_ratio(c.tn.sum(), (c.tn + c.fp).sum())),
        "precision": precision,
        "f1": float(_harmonic(precision, overall_sens)),
        "ppv": float(_ratio(c.tp.sum(), (c.tp + c.fp).sum())),
        "npv": float(_ratio(c.tn.sum(), (c.tn + c.fn).sum())),
        "top1_accuracy": float(_ratio(np.trace(cm), total)),
    }
    return pd.concat([rows, pd.DataFrame([overall])], ignore_index=True)


def proportion_table(
    cm: np.ndarray, class_names: Sequence[str], level: float = 0.95
) -> pd.DataFrame:
    """Wilson intervals for every proportion: long table (class, metric, value, successes, n, low,
    high). Overall rows pool the one-vs-rest tables (as the overall Table 2 row), plus top-1."""
    c = one_vs_rest_counts(cm)
    total = int(np.asarray(cm).sum())
    fractions = {
        "accuracy": (c.tp + c.tn, pd.Series(np.full(len(c), total))),
        "sensitivity": (c.tp, c.tp + c.fn),
        "specificity": (c.tn, c.tn + c.fp),
        "ppv": (c.tp, c.tp + c.fp),
        "npv": (c.tn, c.tn + c.fn),
    }
    records = []
    for metric, (num, den) in fractions.items():
        for i, name in enumerate([*class_names, "overall"]):
            k, n = (
                (int(num.sum()), int(den.sum()))
                if name == "overall"
                else (int(num[i]), int(den[i]))
            )
            low, high = wilson_ci(k, n, level)
            value = k / n if n else np.nan
            records.append((name, metric, value, k, n, low, high))
    correct = int(np.trace(cm))
    records.append(
        (
            "overall",
            "top1_accuracy",
            correct / total,
            correct,
            total,
            *wilson_ci(correct, total, level),
        )
    )
    return pd.DataFrame(
        records, columns=["class", "metric", "value", "successes", "n", "low", "high"]
    )


def _class_auc(y_bin: np.ndarray, score: np.ndarray, ci, level, n_boot, groups, rng):
    """(auc, low, high, interval method, estimable) of one class vs rest; NaN when a side is absent."""
    if y_bin.all() or not y_bin.any():
        return np.nan, np.nan, np.nan, "", False
    auc = roc_auc_ci(
        y_bin, score, level=level, method=ci or "delong", n_boot=n_boot, groups=groups, rng=rng
    )
    if not ci:
        return auc.auc, np.nan, np.nan, "", auc.estimable
    return auc.auc, auc.low, auc.high, auc.method, auc.estimable


def wilson_columns(cm: np.ndarray, class_names: Sequence[str], level: float) -> pd.DataFrame:
    """``<metric>_ci_low``/``_ci_high`` (C + 1 rows, classes then 'overall') for PROPORTIONS.

    The overall row uses the pooled one-vs-rest counts of :func:`proportion_table`.
    """
    props = proportion_table(cm, class_names, level).set_index(["class", "metric"])
    rows = [*class_names, "overall"]
    out = {}
    for metric in PROPORTIONS:
        sub = props.xs(metric, level="metric").reindex(rows)
        out[f"{metric}_ci_low"] = sub["low"].to_numpy(float)
        out[f"{metric}_ci_high"] = sub["high"].to_numpy(float)
    return pd.DataFrame(out)


def macro_auc_bootstrap(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    groups=None,
    rng: RngLike = None,
) -> tuple[float, float, float]:
    """Macro (mean one-vs-rest) AUC of ``scores`` (n, C) with a percentile bootstrap interval.

    Cases are resampled stratified by true class (clustered by ``groups`` when given); classes
    absent from ``y_true`` are left out of the mean. Returns (macro_auc, low, high).
    """
    present = [k for k in range(scores.shape[1]) if 0 < (y_true == k).sum() < y_true.size]
    if not present:
        return np.nan, np.nan, np.nan
    point = float(
        np.mean(
            [weighted_auc(y_true == k, scores[:, k], np.ones((1, y_true.size)))[0] for k in present]
        )
    )
    w = bootstrap_weights(y_true, n_boot, as_rng(rng), groups)
    reps = np.mean([weighted_auc(y_true == k, scores[:, k], w) for k in present], axis=0)
    return (point, *percentile_ci(reps, level))


def classification_table(
    y_true,
    y_pred,
    y_score=None,
    class_names: Sequence[str] = CLASS_NAMES,
    *,
    ci: AucCi | None = None,
    level: float = 0.95,
    n_boot: int = 2000,
    groups=None,
    rng: RngLike = None,
) -> pd.DataFrame:
    """Table 2 for one data set: one row per class (one-vs-rest) plus ``overall``.

    ``y_true``, ``y_pred``: class indices (n,); ``y_score``: probabilities (n, C), or None for a
    categorical read (a radiologist's), whose AUC is the single-operating-point AUC
    (sensitivity + specificity) / 2, i.e. the AUC of the 0/1 indicator "predicted class k" (as in
    the paper's Table 3). ``ci``: None (no AUC interval), "auto" (Newcombe for small classes or
    AUC 0/1, else DeLong; see roc_auc_ci), "delong", "newcombe" or "bootstrap" (``n_boot``,
    stratified, clustered by ``groups``); ``auc_ci_method`` says which was used, ``auc_estimable``
    is False when a class has a single case (or the rest has). The overall row's AUC is the macro
    AUC, whose interval is always a stratified bootstrap (the one-vs-rest AUCs have different
    positive sets). Columns: TABLE_COLUMNS, as fractions; ``<metric>_ci_low/high`` are Wilson
    intervals at ``level`` (always given). A class absent from ``y_true`` gets NaN for its AUC.
    """
    n_classes = len(class_names)
    t, p = check_labels(y_true, y_pred, n_classes)
    scores = _check_scores(y_score, p, n_classes)
    rng = as_rng(rng)
    cm = confusion_matrix(t, p, n_classes)
    table = metrics_from_confusion(cm, class_names)
    aucs = [
        _class_auc(t == k, scores[:, k], ci, level, n_boot, groups, rng) for k in range(n_classes)
    ]
    missing = [class_names[k] for k in range(n_classes) if not np.isfinite(aucs[k][0])]
    if missing:
        log.warning(
            "AUC undefined for class(es) %s: absent (or alone) in y_true", ", ".join(missing)
        )
    if ci is None:
        macro = (
            float(np.nanmean([a[0] for a in aucs])) if len(missing) < n_classes else np.nan,
            np.nan,
            np.nan,
        )
    else:
        macro = macro_auc_bootstrap(t, scores, level=level, n_boot=n_boot, groups=groups, rng=rng)
    table = _with_auc_columns(table, aucs, macro, ci)
    table = pd.concat([table, wilson_columns(cm, class_names, level)], axis=1)
    return table.loc[:, list(TABLE_COLUMNS)]


def _check_scores(y_score, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Scores (n, C): the given probabilities, or the indicator of the predicted class."""
    if y_score is None:
        return np.eye(n_classes)[y_pred]
    scores = np.asarray(y_score, dtype=float)
    if scores.shape != (y_pred.size, n_classes):
        raise ValueError(
            f"y_score must have shape ({y_pred.size}, {n_classes}), got {scores.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("y_score contains NaN or infinite values")
    return scores


def _with_auc_columns(table: pd.DataFrame, aucs: list, macro: tuple, ci) -> pd.DataFrame:
    """Add auc, auc_ci_low/high, macro_auc, auc_ci_method, auc_estimable (class rows, overall)."""
    table = table.copy()
    auc_rows = np.array([*(a[:3] for a in aucs), macro], dtype=float)
    table["auc"], table["auc_ci_low"], table["auc_ci_high"] = auc_rows.T
    table["macro_auc"] = np.nan
    table.loc[table["class"] == "overall", "macro_auc"] = macro[0]
    defined = [a for a in aucs if np.isfinite(a[0])]
    table["auc_ci_method"] = [*(a[3] for a in aucs), "bootstrap" if ci else ""]
    table["auc_estimable"] = [*(a[4] for a in aucs), bool(defined) and all(a[4] for a in defined)]
    return table
