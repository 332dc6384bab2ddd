"""The demo's single report: Tables 1-3, Figures 5-6, training curves and the model card."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from vcfnet import __version__
from vcfnet.data.manifest import read_manifest
from vcfnet.data.summary import cohort_table
from vcfnet.evaluation.report import auc_cell, pct_ci
from vcfnet.reader_study.analysis import table3_auc_cells
from vcfnet.report import SMALL_SAMPLE_MARK
from vcfnet.report.figures import save_figure
from vcfnet.report.html import Report
from vcfnet.stats.roc import SMALL_SAMPLE_MIN_CASES
from vcfnet.study import paper
from vcfnet.study.budget import read_choice
from vcfnet.study.config import PAPER_DATASETS, SYNTHETIC_NOTICE, DemoConfig, DemoPaths
from vcfnet.study.localiser import localiser_section
from vcfnet.synth.figures import class_figure

_PCT_COLUMNS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "ppv", "npv")
_ROLE_ORDER = {"development": 0, "external": 1, "prospective": 2}


def _pct(value: float) -> str:
    return "" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def _pct_with_ci(row: Mapping, column: str) -> str:
    """'83.3 (43.6-97.0)' where the table has the Wilson interval of ``column``, else '83.3'."""
    if f"{column}_ci_low" not in row:
        return _pct(row[column])
    return pct_ci(row[column], row[f"{column}_ci_low"], row[f"{column}_ci_high"])


def _header(column: str) -> str:
    return column.upper() if column in ("f1", "ppv", "npv") else column.capitalize()


def metrics_as_table2(metrics: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv rows -> the paper's Table 2 layout (AUC with 95% CI, percentages, top-1)."""
    rows = []
    for r in metrics.to_dict("records"):
        overall = r["class"] == "overall"
        auc = r["macro_auc"] if overall else r["auc"]
        row = {
            "site": r["site"],
            "class": r["class"],
            "n": int(r["n"]),
            "AUC (95% CI)": ""
            if not np.isfinite(auc)
            else auc_cell(
                auc,
                r["auc_ci_low"],
                r["auc_ci_high"],
                str(r.get("auc_ci_method", "")),
                bool(r.get("auc_estimable", True)),
            ),
        }
        row.update({_header(c): _pct_with_ci(r, c) for c in _PCT_COLUMNS})
        row["Top-1"] = _pct(r["top1_accuracy"]) if overall else ""
        rows.append(row)
    return pd.DataFrame(rows)


def paper_table2_for(sites: list[str]) -> pd.DataFrame:
    """The paper's Table 2 rows for the datasets matching our ``sites``, same layout as ours."""
    t2 = paper.table2()
    rows = []
    for site in sites:
        dataset = PAPER_DATASETS.get(site, site)
        for r in t2[t2["dataset"] == dataset].to_dict("records"):
            row = {
                "paper dataset": dataset,
                "class": r["class"],
                "AUC": "" if pd.isna(r["auc"]) else f"{r['auc']:.3f}",
            }
            row.update({_header(c): _pct(r[c]) for c in _PCT_COLUMNS})
            rows.append(row)
    return pd.DataFrame(rows)


def plot_training_curves(metrics_csv: Path, stem: Path) -> Path:
    """Loss and validation macro AUC per epoch; returns the PNG path."""
    import matplotlib.pyplot as plt

    m = pd.read_csv(metrics_csv)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax1.plot(m["epoch"], m["train_loss"], "o-", label="train")
    ax1.plot(m["epoch"], m["val_loss"], "s-", label="validation")
    ax1.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax1.legend()
    ax2.plot(m["epoch"], m["val_macro_auc"], "o-", color="C2", label="macro AUC")
    ax2.plot(m["epoch"], m["val_acc"], "s-", color="C3", label="top-1 accuracy")
    ax2.set(xlabel="epoch", ylim=(0, 1), title="Validation split")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, stem)[0]


def _num(value) -> float:
    """JSON number or null (strict JSON has no NaN) -> float."""
    return float("nan") if value is None else float(value)


def _mrmc_table(mrmc: dict) -> pd.DataFrame:
    rows = []
    for cls, r in mrmc.get("classes", {}).items():
        rows.append(
            {
                "class": cls,
                "AUC unaided": _num(r.get("auc_unaided")),
                "AUC aided": _num(r.get("auc_aided")),
                "difference": _num(r.get("difference")),
                "95% CI": f"{_num(r.get('ci_low')):.3f} to {_num(r.get('ci_high')):.3f}",
                "F": _num(r.get("f")),
                "df": f"{_num(r.get('df1')):.0f}, {_num(r.get('df2')):.1f}",
                "p": _num(r.get("p")),
            }
        )
    return pd.DataFrame(rows)


def _reader_table(readers_csv: Path) -> pd.DataFrame:
    """Table 3: per reader, mode and class the AUC (marked where small) and percentages with
    their Wilson intervals."""
    t = pd.read_csv(readers_csv, keep_default_na=False, na_values=[""])
    out = t.loc[:, ["reader", "mode", "class", "n"]].copy()
    out["AUC"] = table3_auc_cells(t)
    for c in _PCT_COLUMNS:
        out[_header(c)] = [_pct_with_ci(r, c) for r in t.to_dict("records")]
    return out


def _header_section(report: Report, paths: DemoPaths, cfg: DemoConfig) -> None:
    """The synthetic-data warning and what made this report."""
    report.paragraph("⚠ " + SYNTHETIC_NOTICE)
    model_hash = ""
    eval_cfg = paths.evaluation / "metrics.json"
    if eval_cfg.is_file():
        model_hash = json.loads(eval_cfg.read_text()).get("provenance", {}).get("model_hash", "")
    report.bullets(
        [
            f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} by vcfnet {__version__}",
            f"Cohort: preset paper, scale {cfg.scale}, radiographs {cfg.size}, seed {cfg.seed}",
            f"Model: ResNet-18, {cfg.epochs} epochs, input {cfg.image_size} px, backbone weights "
            f"{cfg.weights}" + (f", weights hash {model_hash[:16]}" if model_hash else ""),
            f"Training size: {_rung_text(paths, cfg)}",
            "Paper: Xu et al., Front. Endocrinol. 2023;14:1025749 (doi:10.3389/fendo.2023.1025749)",
        ]
    )


def _rung_text(paths: DemoPaths, cfg: DemoConfig) -> str:
    """Which rung of the training ladder ran, and why (budget.json) or that it was pinned."""
    if cfg.rung is None:
        return "set by --epochs and --image-size (no ladder rung)"
    choice = read_choice(paths.budget, None)
    if choice is not None and choice.rung == cfg.rung:
        return choice.describe()
    return f"rung {cfg.rung} of the ladder, pinned (--rung)"


def _table1_section(
    report: Report, paths: DemoPaths, sites: list[str], roles: Mapping[str, str]
) -> None:
    """Table 1: our cohort per site and split beside the paper's."""
    report.heading("Table 1. Cohorts")
    manifests = {s: read_manifest(paths.data / s, check_files=False) for s in sites}
    t1 = cohort_table(manifests)
    t1.insert(1, "role", [roles[c.split("/")[0]] for c in t1["cohort"]])
    report.table(
        t1,
        caption="Our synthetic cohort: vertebrae per class, patients, age and sex per site and split",
        digits=1,
    )
    report.table(paper.table1(), caption="The paper's Table 1", digits=2)


def _crops_section(report: Report, paths: DemoPaths, cfg: DemoConfig) -> None:
    """Synthetic development-site crops per class, beside real ones when ``cfg.samples`` has them."""
    site = "SITE1"
    if not (paths.cohort / site / "truth.csv").is_file():
        return
    samples = cfg.samples if cfg.samples is not None and Path(cfg.samples).is_dir() else None
    png = class_figure(paths.cohort, samples, paths.root / "figures" / "crops_per_class.png", n=5)
    report.heading("Crops")
    report.figure(
        png,
        f"{'Real crops (' + str(samples) + ') beside synthetic' if samples else 'Synthetic'} "
        f"{site} crops per class, cut as 'vcfnet prepare' cuts them",
        wide=True,
    )


def _training_section(report: Report, paths: DemoPaths) -> None:
    """Training curves and the model card."""
    card_path = paths.run / "model_card.md"
    card = card_path.read_text() if card_path.is_file() else ""
    report.heading("Training")
    if (paths.run / "metrics.csv").is_file():
        png = plot_training_curves(
            paths.run / "metrics.csv", paths.root / "figures" / "training_curves"
        )
        report.figure(
            png, "Training curves: the epoch is selected on the validation split, never on test"
        )
    if card:
        report.heading("Model card", level=3)
        report.code(card)


def _table2_section(
    report: Report, paths: DemoPaths, sites: list[str], roles: Mapping[str, str]
) -> None:
    """Table 2 beside the paper's, Figure 5 per site and the forest plot."""
    metrics = pd.read_csv(paths.evaluation / "metrics.csv")
    metrics = (
        metrics.set_index("site").loc[[s for s in sites if s in set(metrics["site"])]].reset_index()
    )
    report.heading("Table 2. Performance per validation set")
    report.paragraph(
        "Per class: one-vs-rest. Overall rows follow the paper's conventions so they can be put "
        "beside its Table 2: accuracy = mean of the three one-vs-rest accuracies; sensitivity, "
        "specificity, PPV and NPV micro-averaged over the three one-vs-rest tables (sensitivity = "
        "PPV = top-1 accuracy); precision = support-weighted mean of per-class precisions; F1 = "
        "harmonic mean of that precision and the overall sensitivity. Top-1 accuracy (the plain "
        "3-class accuracy) is shown next to them. AUC 95% CIs by DeLong's method, or, where a "
        f"class has fewer than {SMALL_SAMPLE_MIN_CASES} cases or the AUC is 0 or 1, by Newcombe's "
        f"score interval (marked {SMALL_SAMPLE_MARK}; 'not estimable' with a single case); the "
        "overall AUC is the macro average with a patient-level bootstrap CI. SITE1 = the development site's "
        "held-out test split (patients never seen in training or model selection)."
    )
    report.table(
        metrics_as_table2(metrics),
        caption="vcfnet on the synthetic cohort (percent with 95% Wilson CI; AUC as fraction)",
    )
    report.table(paper_table2_for(sites), caption="The paper's Table 2 (percent)")
    report.heading("Figure 5. ROC curves and normalised confusion matrices per site")
    for site in sites:
        for kind, what in (
            ("roc", "ROC curves (one-vs-rest) with AUC and 95% CI"),
            ("confusion", "confusion matrix, rows = true class, normalised per row"),
        ):
            png = paths.evaluation / "figures" / f"{site}_{kind}.png"
            if png.is_file():
                report.figure(png, f"{site} ({roles[site]}): {what}")
    forest = paths.evaluation / "figures" / "forest_auc.png"
    if forest.is_file():
        report.figure(forest, "Per-class AUC with 95% CI across sites")


def _table3_section(report: Report, paths: DemoPaths, cfg: DemoConfig) -> None:
    """Table 3, Figure 6 and the MRMC analysis of the simulated reader study."""
    report.heading("Table 3. Model versus radiologists, alone and aided (SIMULATED readers)")
    report.paragraph(
        f"A {cfg.reader_fraction:.0%} class-stratified sample of the external sites (the paper's "
        "'collaboration dataset') was read by three simulated radiologists (trainee, competent, "
        "expert), first alone, then knowing the model's output. The readers are simulated by "
        "vcfnet synth-readers; AUC of a categorical read = (sensitivity + specificity) / 2 as in "
        "the paper, AUC from confidence scores where they exist."
    )
    if (paths.readers / "readers.csv").is_file():
        report.table(
            _reader_table(paths.readers / "readers.csv"),
            caption=f"Table 3 (percent with 95% Wilson CI; AUC as fraction; "
            f"{SMALL_SAMPLE_MARK} fewer than {SMALL_SAMPLE_MIN_CASES} cases on one side of the "
            "one-vs-rest split: a single operating point has no interval, read it with care)",
        )
    for png, caption, wide in (
        (
            "figure6_roc_readers.png",
            "Figure 6: model ROC per class with each reader's operating point, unaided → aided",
            True,
        ),
        ("reader_accuracy_sensitivity.png", "Accuracy and sensitivity per reader and mode", False),
    ):
        if (paths.readers / png).is_file():
            report.figure(paths.readers / png, caption, wide=wide)
    if (paths.readers / "mrmc.json").is_file():
        mrmc = json.loads((paths.readers / "mrmc.json").read_text())
        report.heading("Is the aided improvement real? MRMC analysis", level=3)
        report.paragraph(
            "Obuchowski-Rockette with Hillis' denominator degrees of freedom, random readers and "
            "random cases, DeLong covariance: the reader-averaged AUC difference (aided minus "
            "unaided) per class, one-vs-rest. The paper reports no such test."
        )
        report.table(_mrmc_table(mrmc), caption="MRMC per class", digits=3)


def build_demo_report(paths: DemoPaths, cfg: DemoConfig, roles: Mapping[str, str]) -> Report:
    """Assemble the demo's report from the step outputs under ``paths.root``."""
    sites = sorted(roles, key=lambda s: (_ROLE_ORDER.get(roles[s], 9), s))
    report = Report("vcfnet: the multicenter VCF study, reproduced on a synthetic cohort")
    _header_section(report, paths, cfg)
    _table1_section(report, paths, sites, roles)
    _crops_section(report, paths, cfg)
    _training_section(report, paths)
    _table2_section(report, paths, sites, roles)
    _table3_section(report, paths, cfg)
    dev = [s for s, r in roles.items() if r == "development"]
    localiser_section(report, paths.localiser, dev[0] if dev else "development")
    report.heading("Limitations and intended use")
    report.bullets(
        [
            SYNTHETIC_NOTICE,
            "vcfnet is research software, not a medical device; it classifies boxed vertebrae that a "
            "radiologist already judged fractured and does not detect fractures.",
            "To reproduce the study on real data, see the README: 'Reproduce the study on your "
            "hospital's data'.",
        ]
    )
    return report
