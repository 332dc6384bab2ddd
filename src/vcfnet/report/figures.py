"""Report figures (matplotlib, Agg): ROC curves, confusion matrices, reliability and forest plots.

Each ``plot_*`` returns a Figure (or draws on a given ``ax``); ``save_figure`` writes PNG + SVG at
150 dpi. Font sizes are chosen to stay readable when a figure is printed at column width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from vcfnet.labels import CLASS_NAMES
from vcfnet.stats.calibration import reliability

DPI = 150
#: One colour per class (colour-blind safe Okabe-Ito), reused across figures.
CLASS_COLORS: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9.5,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "svg.fonttype": "none",
}


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def save_figure(fig: Figure, stem: Path | str, *, close: bool = True) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg``; returns both paths. Closes ``fig`` by default."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    with plt.rc_context(STYLE):
        for path in paths:
            fig.savefig(path, dpi=DPI)
    if close:
        plt.close(fig)
    return paths


def format_ci(value: float, low: float, high: float, digits: int = 3) -> str:
    """'0.874 (0.841-0.905)', or just the value when the interval is missing."""
    if not np.isfinite(value):
        return "n/a"
    if np.isfinite(low) and np.isfinite(high):
        return f"{value:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"
    return f"{value:.{digits}f}"


def plot_roc(
    y_true,
    y_score,
    class_names: Sequence[str] = CLASS_NAMES,
    *,
    auc_table: pd.DataFrame | None = None,
    points: Mapping[str, Sequence[tuple[str, float, float]]] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """One-vs-rest ROC curves of ``y_score`` (n, C) for class indices ``y_true`` (n,).

    ``auc_table``: rows indexed by class name with ``auc, auc_ci_low, auc_ci_high`` (as
    classification_table) for the legend. ``points``: class -> [(label, fpr, tpr)] operating points
    (e.g. radiologists' reads) drawn as markers. Classes absent from ``y_true`` are skipped.
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    fig, ax = _new_axes(ax, (5.2, 5.0))
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance (AUC 0.5)")
    markers = "osD^vP*X"
    for k, name in enumerate(class_names):
        color = CLASS_COLORS[k % len(CLASS_COLORS)]
        positives = y == k
        if positives.any() and not positives.all():
            fpr, tpr, _ = roc_curve(positives, s[:, k])
            label = name
            if auc_table is not None and name in auc_table.index:
                row = auc_table.loc[name]
                label = (
                    f"{name}: AUC {format_ci(row['auc'], row['auc_ci_low'], row['auc_ci_high'])}"
                )
            ax.plot(fpr, tpr, color=color, lw=2, label=label)
        for j, (point_label, px, py) in enumerate((points or {}).get(name, [])):
            ax.plot(
                px,
                py,
                markers[j % len(markers)],
                color=color,
                ms=7,
                mec="black",
                mew=0.6,
                label=f"{name}: {point_label}",
            )
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        aspect="equal",
        xlabel="1 - specificity (false-positive rate)",
        ylabel="Sensitivity (true-positive rate)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=True)
    if title:
        ax.set_title(title)
    return fig


def plot_confusion(
    cm,
    class_names: Sequence[str] = CLASS_NAMES,
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Row-normalised confusion matrix (rows = true class, columns = predicted); cells '72% (145)'."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(rows > 0, cm / np.where(rows > 0, rows, 1), 0.0)
    fig, ax = _new_axes(ax, (5.2, 4.6))
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{frac[i, j]:.0%}\n({cm[i, j]})",
                ha="center",
                va="center",
                color="white" if frac[i, j] > 0.6 else "black",
                fontsize=11,
            )
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names)
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if title:
        ax.set_title(title)
    return fig


def plot_reliability(
    y_true, probs, *, n_bins: int = 10, title: str | None = None, ax: Axes | None = None
) -> Figure:
    """Reliability diagram of the top-label probability with the expected calibration error."""
    rel = reliability(y_true, probs, n_bins)
    fig, ax = _new_axes(ax, (5.2, 5.0))
    centers = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = rel.edges[1] - rel.edges[0]
    filled = rel.counts > 0
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="perfect calibration")
    ax.bar(
        centers[filled],
        rel.accuracy[filled],
        width=width * 0.9,
        color=CLASS_COLORS[0],
        alpha=0.8,
        edgecolor="black",
        lw=0.5,
        label="accuracy in bin",
    )
    ax.plot(
        rel.confidence[filled],
        rel.accuracy[filled],
        "o",
        color="#D55E00",
        ms=5,
        label="(mean confidence, accuracy)",
    )
    for c, n in zip(centers[filled], rel.counts[filled], strict=True):
        ax.text(c, 0.015, f"n={n}", ha="center", fontsize=7.5, rotation=90, color="white")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
        xlabel="Top-class probability (confidence)",
        ylabel="Fraction correct",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", title=f"ECE = {rel.ece:.3f}")
    if title:
        ax.set_title(title)
    return fig


#: Legend line of a forest plot with open markers.
HOLLOW_NOTE = "open square, \u2020: small-sample (Newcombe) interval or not estimable"


def forest_hollow_rows(table: pd.DataFrame) -> np.ndarray:
    """Rows (bool (n,)) to draw hollow: small-sample (Newcombe) intervals or not-estimable AUCs.

    Read from the ``auc_ci_method`` and ``auc_estimable`` columns of classification_table when
    present; all False otherwise.
    """
    hollow = np.zeros(len(table), dtype=bool)
    if "auc_ci_method" in table:
        hollow |= (table["auc_ci_method"] == "newcombe").to_numpy()
    if "auc_estimable" in table:
        hollow |= ~table["auc_estimable"].fillna(True).astype(bool).to_numpy()
    return hollow


def plot_forest(
    table: pd.DataFrame,
    *,
    group: str = "site",
    item: str = "class",
    value: str = "auc",
    low: str = "auc_ci_low",
    high: str = "auc_ci_high",
    xlabel: str = "AUC (95% CI)",
    reference: float | None = 0.5,
    title: str | None = None,
    hollow: Sequence[bool] | str | None = None,
) -> Figure:
    """Forest plot: one line per row of ``table`` (e.g. per site and class), point +/- interval.

    Rows are grouped by ``group`` (one block per site) and coloured by ``item`` (class); the
    estimate and interval are printed to the right. ``hollow``: rows drawn with an open marker
    (small-sample interval or not estimable) as one bool per row of ``table``, the name of a bool
    column, or None to read classification_table's columns (:func:`forest_hollow_rows`).
    """
    if hollow is None:
        flags = forest_hollow_rows(table)
    elif isinstance(hollow, str):
        flags = table[hollow].to_numpy(dtype=bool)
    else:
        flags = np.asarray(hollow, dtype=bool)
    if flags.shape != (len(table),):
        raise ValueError(f"hollow needs one flag per table row ({len(table)}), got {flags.shape}")
    df = table.assign(_hollow=flags).dropna(subset=[value]).reset_index(drop=True)
    if df.empty:
        raise ValueError(f"nothing to plot: no row of the table has a finite {value!r}")
    positions, labels = _forest_positions(df, group, item)
    fig, ax = _new_axes(None, (7.0, 0.36 * len(positions) + 1.6))
    items = list(dict.fromkeys(df[item]))
    colors = {name: CLASS_COLORS[i % len(CLASS_COLORS)] for i, name in enumerate(items)}
    for idx, ypos in positions:
        row = df.loc[idx]
        color = colors[row[item]]
        if np.isfinite(row[low]) and np.isfinite(row[high]):
            ax.plot([row[low], row[high]], [ypos, ypos], color=color, lw=2)
        face = "white" if row["_hollow"] else color
        ax.plot(row[value], ypos, "s", color=color, mfc=face, mew=1.5, ms=6)
        ax.annotate(
            format_ci(row[value], row[low], row[high]) + (" \u2020" if row["_hollow"] else ""),
            (1.02, ypos),
            xycoords=("axes fraction", "data"),
            va="center",
            fontsize=9,
        )
    if reference is not None:
        ax.axvline(reference, ls="--", color="0.6", lw=1)
    ax.set_yticks([p for _, p in positions], labels)
    ax.set_xlabel(xlabel + (f"\n{HOLLOW_NOTE}" if df["_hollow"].any() else ""))
    ax.set_xlim(min(0.4, float(np.nanmin(df[low].fillna(df[value]))) - 0.05), 1.0)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


def _forest_positions(df: pd.DataFrame, group: str, item: str):
    """[(row index, y)] and tick labels, one block per ``group`` value, a gap between blocks."""
    positions, labels, y = [], [], 0.0
    for g in dict.fromkeys(df[group]):
        for idx in df.index[df[group] == g]:
            positions.append((idx, y))
            labels.append(f"{g} · {df.at[idx, item]}")
            y -= 1
        y -= 0.6  # gap between groups
    return positions, labels
