"""The analysis of a reader study: Table 3 (each reader alone and aided, and the model), paired
tests (McNemar, DeLong) and the Obuchowski-Rockette-Hillis MRMC comparison per class."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.reads import MODEL_READER, Reads, Truth
from vcfnet.report import SMALL_SAMPLE_MARK
from vcfnet.stats.classification import classification_table
from vcfnet.stats.mrmc import or_hillis
from vcfnet.stats.proportions import mcnemar_test
from vcfnet.stats.roc import SMALL_SAMPLE_MIN_CASES, delong_test

log = logging.getLogger(__name__)


@dataclass
class ReaderStudyResult:
    """Tables and MRMC results of a reader study, and the files written."""

    table: pd.DataFrame
    comparisons: pd.DataFrame
    mrmc: dict[str, Any]
    simulated: bool
    files: list[Path] = field(default_factory=list)


def reader_table(truth: Truth, reads: Reads) -> pd.DataFrame:
    """Table 3: the model (when it has predictions) and each reader x mode, overall + per class."""
    y = truth.y[reads.case_index]
    blocks = []
    if truth.model_pred is not None:
        probs = None if truth.model_probs is None else truth.model_probs[reads.case_index]
        t = classification_table(y, truth.model_pred[reads.case_index], probs)
        blocks.append(t.assign(reader=MODEL_READER, reader_level="", mode="model"))
    for i, reader in enumerate(reads.readers):
        for j, mode in enumerate(reads.modes):
            score = None if reads.score_kind == "categorical" else reads.scores[i, j]
            t = classification_table(y, reads.labels[i, j], score)
            blocks.append(t.assign(reader=reader, reader_level=reads.levels[i], mode=mode))
    table = pd.concat(blocks, ignore_index=True)
    first = ["reader", "reader_level", "mode"]
    return table[first + [c for c in table.columns if c not in first]]


def _comparison_rows(
    y: np.ndarray,
    name_a: str,
    pred_a: np.ndarray,
    score_a: np.ndarray | None,
    name_b: str,
    pred_b: np.ndarray,
    score_b: np.ndarray | None,
    reader: str,
    level: float,
) -> list[dict[str, Any]]:
    correct_a, correct_b = pred_a == y, pred_b == y
    mc = mcnemar_test(correct_a, correct_b)
    rows = [
        {
            "reader": reader,
            "comparison": f"{name_a} vs {name_b}",
            "class": "overall",
            "test": "mcnemar (exact)" if mc.exact else "mcnemar",
            "metric": "top1_accuracy",
            "estimate_a": float(correct_a.mean()),
            "estimate_b": float(correct_b.mean()),
            "difference": float(correct_a.mean() - correct_b.mean()),
            "statistic": mc.statistic,
            "p": mc.p,
            "low": np.nan,
            "high": np.nan,
        }
    ]
    for k, cls in enumerate(CLASS_NAMES):
        yk = y == k
        if yk.all() or not yk.any():
            continue
        sa = (pred_a == k).astype(float) if score_a is None else score_a[:, k]
        sb = (pred_b == k).astype(float) if score_b is None else score_b[:, k]
        dt = delong_test(yk, sa, sb, level=level)
        rows.append(
            {
                "reader": reader,
                "comparison": f"{name_a} vs {name_b}",
                "class": cls,
                "test": "delong",
                "metric": "auc",
                "estimate_a": dt.auc_a,
                "estimate_b": dt.auc_b,
                "difference": dt.difference,
                "statistic": dt.z,
                "p": dt.p,
                "low": dt.low,
                "high": dt.high,
            }
        )
    return rows


def reader_comparisons(truth: Truth, reads: Reads, level: float = 0.95) -> pd.DataFrame:
    """Per reader: aided vs unaided, and the model vs each mode (McNemar + per-class DeLong)."""
    y = truth.y[reads.case_index]
    categorical = reads.score_kind == "categorical"
    rows: list[dict[str, Any]] = []
    for i, reader in enumerate(reads.readers):
        lab = {m: reads.labels[i, j] for j, m in enumerate(reads.modes)}
        sc = {m: None if categorical else reads.scores[i, j] for j, m in enumerate(reads.modes)}
        if reads.paired:
            rows += _comparison_rows(
                y,
                "aided",
                lab["aided"],
                sc["aided"],
                "unaided",
                lab["unaided"],
                sc["unaided"],
                reader,
                level,
            )
        if truth.model_pred is not None:
            mp = truth.model_pred[reads.case_index]
            ms = None if truth.model_probs is None else truth.model_probs[reads.case_index]
            for mode in reads.modes:
                rows += _comparison_rows(
                    y, MODEL_READER, mp, ms, mode, lab[mode], sc[mode], reader, level
                )
    return pd.DataFrame(rows)


def mrmc_by_class(
    truth: Truth,
    reads: Reads,
    *,
    cov: Literal["delong", "jackknife"] = "delong",
    level: float = 0.95,
) -> dict[str, Any]:
    """OR-Hillis aided vs unaided per class (one-vs-rest); difference = aided - unaided."""
    y = truth.y[reads.case_index]
    out: dict[str, Any] = {
        "method": "Obuchowski-Rockette, Hillis df, random readers and random cases",
        "covariance": cov,
        "level": level,
        "readers": list(reads.readers),
        "n_cases": int(y.size),
        "score_kind": reads.score_kind,
        "classes": {},
    }
    if not reads.paired:
        out["skipped"] = (
            f"the study has {', '.join(reads.modes)} reads only: readers are compared with the "
            "model, and aided vs unaided (MRMC) needs both modes"
        )
        return out
    if len(reads.readers) < 2:
        out["skipped"] = "MRMC needs at least 2 readers"
        return out
    aided, unaided = reads.mode_index("aided"), reads.mode_index("unaided")
    for k, cls in enumerate(CLASS_NAMES):
        yk = (y == k).astype(int)
        if yk.all() or not yk.any():
            out["classes"][cls] = {"skipped": f"no {'negative' if yk.all() else 'positive'} cases"}
            continue
        # (modalities = [aided, unaided], readers, cases)
        x = np.stack([reads.scores[:, aided, :, k], reads.scores[:, unaided, :, k]])
        res = or_hillis(yk, x, cov=cov, level=level)
        out["classes"][cls] = {
            "n_positive": res.n_positive,
            "auc_unaided": float(res.modality_aucs[1]),
            "auc_aided": float(res.modality_aucs[0]),
            "difference": float(res.difference[0]),
            "ci_low": float(res.difference_ci_low[0]),
            "ci_high": float(res.difference_ci_high[0]),
            "f": res.f,
            "df1": res.df1,
            "df2": res.df2,
            "p": res.p,
            "reader_auc_unaided": res.reader_aucs[1].tolist(),
            "reader_auc_aided": res.reader_aucs[0].tolist(),
            "var_error": res.var_error,
            "cov1": res.cov1,
            "cov2": res.cov2,
            "cov3": res.cov3,
            "ms_t": res.ms_t,
            "ms_tr": res.ms_tr,
        }
    return out


def table3_auc_cells(table: pd.DataFrame) -> list[str]:
    """The AUC cell of each Table 3 row (``reader_table`` layout): the macro AUC on overall rows;
    a reader's single-point AUC marked † when a side of its one-vs-rest split has fewer than
    SMALL_SAMPLE_MIN_CASES cases (a single operating point has no interval), and 'not estimable'
    with one case."""
    overall = table["class"] == "overall"
    totals = table[overall].set_index(["reader", "mode"])["n"]
    cells = []
    for row in table.to_dict("records"):
        if row["class"] == "overall":
            auc = row.get("macro_auc", np.nan)
            cells.append("" if not np.isfinite(auc) else f"{auc:.3f}")
            continue
        auc, n_pos = row["auc"], int(row["n"])
        smaller = min(n_pos, int(totals.get((row["reader"], row["mode"]), n_pos)) - n_pos)
        if not np.isfinite(auc):
            cells.append("")
        elif smaller <= 1:
            cells.append(f"{auc:.3f} {SMALL_SAMPLE_MARK} not estimable")
        else:
            mark = f" {SMALL_SAMPLE_MARK}" if smaller < SMALL_SAMPLE_MIN_CASES else ""
            cells.append(f"{auc:.3f}{mark}")
    return cells
