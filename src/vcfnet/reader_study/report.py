"""Figure 6 (the model's ROC with each reader's point, unaided -> aided), the accuracy and
sensitivity bars, the report, and ``run_reader_study`` which writes them all."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from vcfnet.errors import ConfigError
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import write_csv
from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.analysis import (
    ReaderStudyResult,
    mrmc_by_class,
    reader_comparisons,
    reader_table,
)
from vcfnet.reader_study.reads import (
    MODEL_READER,
    SIMULATED_NOTE,
    Reads,
    Truth,
    load_reads,
    load_truth,
)
from vcfnet.report import json_safe
from vcfnet.report.figures import CLASS_COLORS, STYLE, format_ci, save_figure
from vcfnet.report.html import Report
from vcfnet.stats.classification import TABLE_COLUMNS

log = logging.getLogger(__name__)


def plot_figure6(truth: Truth, reads: Reads, table: pd.DataFrame, stem: Path) -> list[Path]:
    """Figure 6: per class, the model's ROC with each reader's operating point, unaided -> aided.

    Operating points are (1 - specificity, sensitivity) of each read from ``table``.
    """
    import matplotlib.pyplot as plt

    y = truth.y[reads.case_index]
    rows = table.set_index(["reader", "mode", "class"])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(CLASS_NAMES), figsize=(4.6 * len(CLASS_NAMES), 5.0), layout="constrained"
        )
    for k, (ax, cls) in enumerate(zip(axes, CLASS_NAMES, strict=True)):
        yk = y == k
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
        if truth.model_probs is not None and yk.any() and not yk.all():
            fpr, tpr, _ = roc_curve(yk, truth.model_probs[reads.case_index, k])
            m = rows.loc[(MODEL_READER, "model", cls)]
            ax.plot(
                fpr,
                tpr,
                color="#D55E00",
                lw=2,
                label=f"model: AUC {format_ci(m['auc'], m['auc_ci_low'], m['auc_ci_high'])}",
            )
        if truth.model_pred is not None:
            m = rows.loc[(MODEL_READER, "model", cls)]
            ax.plot(
                1 - m["specificity"],
                m["sensitivity"],
                "o",
                color="#D55E00",
                ms=8,
                mec="black",
                label="model (predicted class)",
            )
        for i, reader in enumerate(reads.readers):
            color = CLASS_COLORS[i % len(CLASS_COLORS)]
            pts = {
                mode: (
                    1 - rows.loc[(reader, mode, cls), "specificity"],
                    rows.loc[(reader, mode, cls), "sensitivity"],
                )
                for mode in reads.modes
            }
            if "unaided" in pts:
                ax.plot(*pts["unaided"], "^", color=color, ms=8, mec="black", label=f"{reader}")
            if "aided" in pts:
                ax.plot(
                    *pts["aided"], "*", color=color, ms=13, mec="black", label=f"{reader} + model"
                )
            if reads.paired:
                ax.annotate(
                    "",
                    xy=pts["aided"],
                    xytext=pts["unaided"],
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1.3},
                )
        ax.set(
            xlim=(-0.01, 1.01),
            ylim=(-0.01, 1.01),
            aspect="equal",
            title=cls,
            xlabel="1 - specificity",
            ylabel="sensitivity",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7.5)
    return save_figure(fig, stem)


def plot_reader_bars(table: pd.DataFrame, stem: Path) -> list[Path]:
    """Overall accuracy and sensitivity of the model and of each reader x mode."""
    import matplotlib.pyplot as plt

    overall = table[table["class"] == "overall"]
    names = [
        r if m == "model" else f"{r}\n{m}"
        for r, m in zip(overall["reader"], overall["mode"], strict=True)
    ]
    x = np.arange(len(names))
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names)), 4.2), layout="constrained")
    ax.bar(x - 0.2, overall["accuracy"], 0.4, label="accuracy", color="#0072B2")
    ax.bar(x + 0.2, overall["sensitivity"], 0.4, label="sensitivity", color="#E69F00")
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="fraction", title="Accuracy and sensitivity per reader and mode")
    ax.legend(loc="lower right")
    return save_figure(fig, stem)


def build_report(result: ReaderStudyResult, figure_paths: list[Path]):
    """The study's Report (Table 3, paired tests, MRMC, figures); simulated reads say so first."""
    report = Report("Reader study: Table 3, Figure 6 and MRMC")
    if result.simulated:
        report.paragraph(SIMULATED_NOTE)
    hidden = ("n", "auc_ci_low", "auc_ci_high", "macro_auc")
    cols = ["reader", "mode", *(c for c in TABLE_COLUMNS if c not in hidden)]
    report.heading("Table 3: model and readers")
    report.paragraph(
        "Overall rows follow the paper's conventions (accuracy = mean one-vs-rest accuracy; "
        "sensitivity, specificity, PPV, NPV micro-averaged; precision support-weighted); "
        "top1_accuracy is the 3-class accuracy. A categorical read's AUC is the single-point AUC "
        "(sensitivity + specificity) / 2; with confidence scores or ratings, the empirical AUC. "
        "The overall AUC is the macro (mean one-vs-rest) AUC."
    )
    report.table(result.table[cols], caption="Table 3")
    report.heading("Paired tests per reader")
    report.paragraph(
        "McNemar's test on per-case correctness (overall) and DeLong's test of correlated "
        "per-class AUCs; estimate_a and estimate_b belong to the first and second named reads."
    )
    report.table(result.comparisons.drop(columns=["metric"]), digits=4)
    report.heading("MRMC: aided vs unaided (Obuchowski-Rockette-Hillis)")
    m = result.mrmc
    if "skipped" in m:
        report.paragraph(m["skipped"])
    else:
        report.paragraph(
            f"Random readers and random cases, {m['covariance']} covariance of the empirical "
            f"AUCs, Hillis denominator degrees of freedom; {len(m['readers'])} readers, "
            f"{m['n_cases']} cases, one-vs-rest per class; difference = aided - unaided "
            f"reader-averaged AUC with its {100 * m['level']:.0f}% CI."
        )
        keys = (
            "auc_unaided",
            "auc_aided",
            "difference",
            "ci_low",
            "ci_high",
            "f",
            "df1",
            "df2",
            "p",
        )
        rows = [
            {"class": c, **{k: v.get(k, np.nan) for k in keys}} for c, v in m["classes"].items()
        ]
        report.table(pd.DataFrame(rows), caption="MRMC per class", digits=4)
    if figure_paths:
        report.heading("Figures")
        pngs = [p for p in figure_paths if p.suffix == ".png"]
        captions = (
            "Figure 6: the model's ROC per class with each reader's operating point unaided "
            "(triangle) and aided (star)",
            "Overall accuracy and sensitivity per reader and mode",
        )
        for i, (path, caption) in enumerate(zip(pngs, captions, strict=False)):
            report.figure(path, caption, wide=i == 0)
    return report


def run_reader_study(
    truth_df: pd.DataFrame,
    reads_df: pd.DataFrame,
    out_dir: Path | str,
    *,
    cov: Literal["delong", "jackknife"] = "delong",
    level: float = 0.95,
    simulated: bool = False,
    figures: bool = True,
) -> ReaderStudyResult:
    """Analyse a reader study; write readers.csv, comparisons.csv, mrmc.json, figures, report.

    ``truth_df``: predictions.csv-like table (case_id, label, [pred, p_*]); ``reads_df``: reads.
    ``simulated`` stamps every output as simulated.
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = load_truth(truth_df)
    reads = load_reads(reads_df, truth)
    table = reader_table(truth, reads)
    comparisons = reader_comparisons(truth, reads, level)
    mrmc = mrmc_by_class(truth, reads, cov=cov, level=level)
    mrmc["simulated"] = simulated
    result = ReaderStudyResult(table, comparisons, mrmc, simulated)

    for name, df in (("readers.csv", table), ("comparisons.csv", comparisons)):
        write_csv(df.assign(simulated=simulated), out_dir / name)
        result.files.append(out_dir / name)
    atomic_write_text(out_dir / "mrmc.json", json.dumps(json_safe(mrmc), indent=2) + "\n")
    result.files.append(out_dir / "mrmc.json")

    figure_paths: list[Path] = []
    if figures:
        figure_paths += plot_figure6(truth, reads, table, out_dir / "figure6_roc_readers")
        figure_paths += plot_reader_bars(table, out_dir / "reader_accuracy_sensitivity")
    result.files += figure_paths
    result.files += build_report(result, figure_paths).write(out_dir)
    log.info(
        "reader study: %d readers, %d cases -> %s",
        len(reads.readers),
        reads.case_index.size,
        out_dir,
    )
    return result
