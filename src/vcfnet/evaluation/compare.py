"""Paired comparison of two models' predictions on the same cases: DeLong per class, McNemar on
top-1 correctness."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from vcfnet import __version__
from vcfnet.errors import InputError
from vcfnet.evaluation.predictions import (
    read_predictions,
    validate_predictions,
)
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import write_csv
from vcfnet.labels import CLASS_NAMES
from vcfnet.report import json_safe
from vcfnet.report.html import Report
from vcfnet.stats.proportions import mcnemar_test
from vcfnet.stats.roc import delong_test

log = logging.getLogger(__name__)


def compare_predictions(
    a: pd.DataFrame, b: pd.DataFrame, *, level: float = 0.95
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired tests of two validated predictions tables on the same cases (matched by case_id).

    Returns (auc_tests, mcnemar_tests): per site (plus ``all`` when several sites) and class, the
    DeLong test of AUC(A) - AUC(B); per site, McNemar's test of top-1 correctness.
    """
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
            auc_rows.append(
                {
                    "site": site,
                    "class": cls,
                    "n": len(sub),
                    "auc_a": t.auc_a,
                    "auc_b": t.auc_b,
                    "difference": t.difference,
                    "ci_low": t.low,
                    "ci_high": t.high,
                    "z": t.z,
                    "p": t.p,
                }
            )
        correct_a = (sub["pred_a"] == sub["label_a"]).to_numpy()
        correct_b = (sub["pred_b"] == sub["label_a"]).to_numpy()
        m = mcnemar_test(correct_a, correct_b)
        mc_rows.append(
            {
                "site": site,
                "n": len(sub),
                "top1_accuracy_a": correct_a.mean(),
                "top1_accuracy_b": correct_b.mean(),
                "n01": m.n01,
                "n10": m.n10,
                "statistic": m.statistic,
                "p": m.p,
                "exact": m.exact,
            }
        )
    return pd.DataFrame(auc_rows), pd.DataFrame(mc_rows)


def format_p(p: float) -> str:
    """A p-value for a report: '<0.0001' below that, else 4 decimals."""
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def write_comparison(
    path_a: Path | str, path_b: Path | str, out_dir: Path | str, *, level: float = 0.95
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read two predictions.csv, write compare_auc.csv, compare_mcnemar.csv, compare.json and
    report.html/.md to ``out_dir``; returns the two tables."""
    auc, mc = compare_predictions(read_predictions(path_a), read_predictions(path_b), level=level)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, table in (("compare_auc.csv", auc), ("compare_mcnemar.csv", mc)):
        write_csv(table, out_dir / name)
    info = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "vcfnet_version": __version__,
        "predictions_a": str(path_a),
        "predictions_b": str(path_b),
        "level": level,
    }
    payload = {
        "provenance": info,
        "auc_tests": auc.to_dict(orient="records"),
        "mcnemar_tests": mc.to_dict(orient="records"),
    }
    atomic_write_text(out_dir / "compare.json", json.dumps(json_safe(payload), indent=2) + "\n")
    report = Report("vcfnet compare: model A vs model B")
    report.bullets([f"{k}: {v}" for k, v in info.items()])
    report.paragraph(
        "AUC differences (A - B): paired two-sided DeLong test of correlated ROC curves, one class "
        f"against the rest, with a {level:.0%} interval of the difference. Top-1 accuracy: McNemar's "
        "test on paired correctness (exact binomial below 25 discordant pairs); n01 = cases A got "
        "wrong and B right, n10 = the reverse."
    )
    report.table(
        auc.assign(p=auc["p"].map(format_p)) if len(auc) else auc,
        caption="DeLong tests of per-class AUC",
        digits=4,
    )
    report.table(
        mc.assign(p=mc["p"].map(format_p)), caption="McNemar tests of top-1 accuracy", digits=4
    )
    report.write(out_dir)
    return auc, mc
