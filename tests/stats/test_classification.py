"""Table 2 metrics: hand-computed cases and the paper's overall-row conventions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vcfnet.labels import CLASS_NAMES
from vcfnet.stats.classification import (
    TABLE_COLUMNS,
    classification_table,
    confusion_matrix,
    metrics_from_confusion,
    proportion_table,
)
from vcfnet.stats.proportions import wilson_ci
from vcfnet.stats.roc import roc_auc_ci

#: A confusion matrix (rows true, columns predicted) consistent with Table 2's testing-set rows:
#: 201 acute / 173 chronic / 34 pathologic; per-class sensitivity 78.1/81.5/52.9 and PPV
#: 80.5/77.9/56.3 are reproduced to rounding (the diagonal and column sums fix them).
TABLE2_TESTING_CM = np.array([[157, 37, 7], [25, 141, 7], [13, 3, 18]])


def cases_from_cm(cm):
    k = cm.shape[0]
    t = np.repeat(np.repeat(np.arange(k), k), cm.ravel())
    p = np.repeat(np.tile(np.arange(k), k), cm.ravel())
    return t, p


def pct(x):
    return np.floor(np.asarray(x, dtype=float) * 1000 + 0.5) / 10  # round half up, as printed


def test_table2_testing_set_per_class_and_overall():
    table = metrics_from_confusion(TABLE2_TESTING_CM, CLASS_NAMES).set_index("class")
    assert list(table["n"]) == [201, 173, 34, 408]
    printed = {  # Table 2, testing dataset: accuracy, sens, spec, precision, F1, PPV, NPV
        "acute": [79.9, 78.1, 81.6, 80.5, 79.3, 80.5, 79.3],
        "chronic": [82.4, 81.5, 83.0, 77.9, 79.7, 77.9, 85.9],  # printed 86.0: rounding slip
        "pathologic": [92.6, 52.9, 96.3, 56.3, 54.5, 56.3, 95.7],
        "overall": [85.0, 77.5, 88.7, 77.4, 77.4, 77.5, 88.7],
    }
    cols = ["accuracy", "sensitivity", "specificity", "precision", "f1", "ppv", "npv"]
    for cls, values in printed.items():
        np.testing.assert_allclose(pct(table.loc[cls, cols]), values, atol=1e-9, err_msg=cls)
    # top-1 accuracy is the lower 3-class accuracy: 316 / 408
    assert table.loc["overall", "top1_accuracy"] == pytest.approx(316 / 408)


def test_hand_computed_small_case():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])  # rows true
    t = classification_table(y_true, y_pred).set_index("class")
    # acute: TP 1, FN 1, FP 1, TN 3
    assert t.loc[
        "acute", ["accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"]
    ].tolist() == (pytest.approx([4 / 6, 1 / 2, 3 / 4, 1 / 2, 3 / 4, 1 / 2]))
    # single-operating-point AUC of a categorical read: (sens + spec) / 2
    assert t.loc["acute", "auc"] == pytest.approx((1 / 2 + 3 / 4) / 2)
    assert t.loc["chronic", "auc"] == pytest.approx((1 + 3 / 4) / 2)
    assert t.loc["overall", "macro_auc"] == pytest.approx(t.loc[list(CLASS_NAMES), "auc"].mean())
    assert t.loc["overall", "top1_accuracy"] == pytest.approx(4 / 6)
    assert t.loc["overall", "accuracy"] == pytest.approx(np.mean([4 / 6, 5 / 6, 5 / 6]))
    # precision: support-weighted mean of 1/2, 2/3, 1
    prec = (2 * 0.5 + 2 * 2 / 3 + 2 * 1) / 6
    assert t.loc["overall", "precision"] == pytest.approx(prec)
    assert t.loc["overall", "f1"] == pytest.approx(2 * prec * (4 / 6) / (prec + 4 / 6))
    assert list(t.reset_index().columns) == list(TABLE_COLUMNS)


def test_scores_give_one_vs_rest_auc_with_ci():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 150)
    logits = np.eye(3)[y_true] * 1.2 + rng.normal(size=(150, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = probs.argmax(axis=1)
    for ci in ("delong", "bootstrap", "auto"):
        t = classification_table(y_true, y_pred, probs, ci=ci, n_boot=300, rng=0).set_index("class")
        for k, name in enumerate(CLASS_NAMES):
            assert t.loc[name, "auc"] == pytest.approx(roc_auc_score(y_true == k, probs[:, k]))
            assert t.loc[name, "auc_ci_method"] == ("delong" if ci == "auto" else ci)
            if ci != "bootstrap":  # the interval of this class's one-vs-rest problem, not another's
                ref = roc_auc_ci(y_true == k, probs[:, k], method="delong")
                assert (t.loc[name, "auc_ci_low"], t.loc[name, "auc_ci_high"]) == (
                    ref.low,
                    ref.high,
                )
        macro = roc_auc_score(y_true, probs, multi_class="ovr", average="macro")
        assert t.loc["overall", "auc"] == pytest.approx(macro)
        assert (
            t.loc["overall", "auc_ci_low"] < macro < t.loc["overall", "auc_ci_high"]
        )  # percentile
        assert t.loc["overall", "auc_ci_method"] == "bootstrap"
    plain = classification_table(y_true, y_pred, probs)
    assert plain["auc_ci_low"].isna().all() and (plain["auc_ci_method"] == "").all()


def test_small_site_gets_newcombe_and_not_estimable_flags():
    # 5 acute, 4 chronic, 1 pathologic, all predicted correctly with confident scores
    y = np.array([0] * 5 + [1] * 4 + [2])
    probs = np.eye(3)[y] * 0.8 + 0.1
    t = classification_table(y, y, probs, ci="auto").set_index("class")
    assert t.loc[list(CLASS_NAMES), "auc_ci_method"].tolist() == ["newcombe"] * 3
    assert t.loc[list(CLASS_NAMES), "auc_estimable"].tolist() == [True, True, False]
    assert not t.loc["overall", "auc_estimable"]
    # AUC 1 with a non-degenerate interval (the DeLong interval would be 1.000-1.000)
    assert (t.loc["acute", "auc"], t.loc["acute", "auc_ci_high"]) == (1.0, 1.0)
    assert t.loc["acute", "auc_ci_low"] < 0.9


def test_wilson_columns_one_of_one_is_100_percent_with_20_7_lower():
    # one pathologic case, detected: sensitivity 1/1 = 100 % (20.7-100 %), Wilson at 95 %
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    t = classification_table(y, y).set_index("class")
    row = t.loc["pathologic"]
    assert row["sensitivity"] == 1.0
    assert row["sensitivity_ci_low"] == pytest.approx(0.2065, abs=5e-5)
    assert row["sensitivity_ci_high"] == 1.0
    assert f"{100 * row['sensitivity_ci_low']:.1f}" == "20.7"


def test_wilson_columns_use_the_counts_of_table2():
    t = classification_table(*cases_from_cm(TABLE2_TESTING_CM)).set_index("class")
    # acute: sensitivity 157/201, PPV 157/195, specificity 169/207, NPV 169/213, accuracy 326/408
    counts = {"sensitivity": (157, 201), "ppv": (157, 195), "specificity": (169, 207)}
    counts |= {"npv": (169, 213), "accuracy": (326, 408)}
    for metric, (k, n) in counts.items():
        got = (t.loc["acute", f"{metric}_ci_low"], t.loc["acute", f"{metric}_ci_high"])
        assert got == pytest.approx(wilson_ci(k, n), abs=1e-12), metric
    # overall sensitivity pools the one-vs-rest tables: 316 / 408
    got = (t.loc["overall", "sensitivity_ci_low"], t.loc["overall", "sensitivity_ci_high"])
    assert got == pytest.approx(wilson_ci(316, 408), abs=1e-12)


def test_absent_class_gives_nan_auc_not_error():
    t = classification_table([0, 1, 0, 1], [0, 1, 1, 1], np.full((4, 3), 1 / 3)).set_index("class")
    assert np.isnan(t.loc["pathologic", "auc"]) and np.isnan(t.loc["pathologic", "sensitivity"])
    assert t.loc["overall", "macro_auc"] == pytest.approx(0.5)


def test_proportion_table_wilson():
    p = proportion_table(TABLE2_TESTING_CM, CLASS_NAMES).set_index(["class", "metric"])
    row = p.loc[("acute", "sensitivity")]
    assert (row["successes"], row["n"]) == (157, 201)
    assert (row["low"], row["high"]) == pytest.approx(wilson_ci(157, 201), abs=1e-12)
    assert p.loc[("overall", "top1_accuracy"), "value"] == pytest.approx(316 / 408)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "y_score", "match"),
    [
        ([0, 1], [0], None, "same length"),
        ([0, 3], [0, 1], None, "outside"),
        ([0, 1], [0, 1], np.ones((2, 2)), "shape"),
        ([0, 1], [0, 1], np.full((2, 3), np.nan), "NaN"),
    ],
)
def test_bad_inputs(y_true, y_pred, y_score, match):
    with pytest.raises(ValueError, match=match):
        classification_table(y_true, y_pred, y_score)
