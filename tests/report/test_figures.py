"""Figures are written as non-empty PNG + SVG and show what they claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vcfnet.report.figures import (
    format_ci,
    plot_confusion,
    plot_forest,
    plot_reliability,
    plot_roc,
    save_figure,
)
from vcfnet.stats.calibration import reliability
from vcfnet.stats.classification import classification_table, confusion_matrix


@pytest.fixture(scope="module")
def cases():
    rng = np.random.default_rng(0)
    t = np.arange(60) % 3
    logits = np.eye(3)[t] * 1.5 + rng.normal(size=(60, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return t, p, p.argmax(axis=1)


def test_save_figure_png_and_svg(tmp_path, cases):
    t, p, pred = cases
    table = classification_table(t, pred, p, ci="delong").set_index("class")
    fig = plot_roc(t, p, auc_table=table, points={"acute": [("expert", 0.2, 0.7)]}, title="ROC")
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert any(label.startswith("acute: AUC 0.") and "(" in label for label in labels)
    assert "acute: expert" in labels
    paths = save_figure(fig, tmp_path / "sub" / "roc")
    assert [x.suffix for x in paths] == [".png", ".svg"]
    assert all(x.stat().st_size > 1000 for x in paths)


def test_confusion_cells_and_axes(tmp_path, cases):
    t, _, pred = cases
    cm = confusion_matrix(t, pred)
    fig = plot_confusion(cm)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Predicted class" and ax.get_ylabel() == "True class"
    texts = [x.get_text() for x in ax.texts]
    # row 0, column 0: share of true acute predicted acute, with its count
    assert texts[0] == f"{cm[0, 0] / cm[0].sum():.0%}\n({cm[0, 0]})"
    assert all(x.stat().st_size > 0 for x in save_figure(fig, tmp_path / "cm"))


def test_reliability_ece_and_forest(tmp_path, cases):
    t, p, pred = cases
    fig = plot_reliability(t, p, n_bins=5)
    assert f"{reliability(t, p, 5).ece:.3f}" in fig.axes[0].get_legend().get_title().get_text()
    assert all(x.stat().st_size > 0 for x in save_figure(fig, tmp_path / "rel"))
    table = classification_table(t, pred, p, ci="delong")
    table = pd.concat([table.assign(site="A"), table.assign(site="B")])
    forest = plot_forest(table[table["class"] != "overall"])
    assert len(forest.axes[0].get_yticklabels()) == 6
    assert all(x.stat().st_size > 0 for x in save_figure(forest, tmp_path / "forest"))
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_forest(table.assign(auc=np.nan))


def test_format_ci():
    assert format_ci(0.8741, 0.8412, 0.9056) == "0.874 (0.841-0.906)"
    assert format_ci(0.5, np.nan, np.nan) == "0.500"
    assert format_ci(np.nan, np.nan, np.nan) == "n/a"


def test_reliability_hand_computed_ece():
    # top probabilities 0.9 (right), 0.7 (right), 0.5 (wrong), 0.4 (right); 5 bins of width 0.2
    probs = [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.4, 0.35, 0.25]]
    rel = reliability([0, 1, 2, 0], probs, n_bins=5)
    assert rel.counts.tolist() == [0, 1, 1, 1, 1]
    assert rel.ece == pytest.approx((0.6 + 0.5 + 0.3 + 0.1) / 4)
    with pytest.raises(ValueError, match="NaN"):
        reliability([0], [[np.nan, 0.5, 0.5]])


def test_forest_hollow_rows(tmp_path):
    # one site with a single pathologic case: Newcombe intervals, pathologic not estimable
    y = np.array([0] * 5 + [1] * 4 + [2])
    probs = np.eye(3)[y] * 0.8 + 0.1
    small = classification_table(y, y, probs, ci="auto").assign(site="small")
    rng = np.random.default_rng(1)
    t = np.arange(90) % 3
    p = np.exp(np.eye(3)[t] + rng.normal(size=(90, 3)))
    p /= p.sum(axis=1, keepdims=True)
    big = classification_table(t, p.argmax(axis=1), p, ci="auto").assign(site="big")
    table = pd.concat([big, small], ignore_index=True)
    table = table[table["class"] != "overall"]

    def faces(fig):
        return [
            line.get_markerfacecolor() for line in fig.axes[0].lines if line.get_marker() == "s"
        ]

    fig = plot_forest(table)  # flags read from auc_ci_method / auc_estimable
    assert [f == "white" for f in faces(fig)] == [False] * 3 + [True] * 3
    assert "Newcombe" in fig.axes[0].get_xlabel()
    texts = [x.get_text() for x in fig.axes[0].texts]
    assert sum(text.endswith("\u2020") for text in texts) == 3
    assert all(x.stat().st_size > 0 for x in save_figure(fig, tmp_path / "forest_small"))
    # explicit flags win; the old call without the new columns draws filled markers
    explicit = plot_forest(table, hollow=[True] + [False] * 5)
    assert [f == "white" for f in faces(explicit)] == [True] + [False] * 5
    plain = plot_forest(table.drop(columns=["auc_ci_method", "auc_estimable"]))
    assert not any(f == "white" for f in faces(plain))
    assert "Newcombe" not in plain.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="one flag per table row"):
        plot_forest(table, hollow=[True])
