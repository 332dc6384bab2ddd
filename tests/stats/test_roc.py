"""AUC, DeLong and bootstrap: hand-computed cases, pROC on aSAH, an O(n^2) reference, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from tests.stats.reference import slow_delong
from vcfnet.stats.roc import (
    bootstrap_weights,
    delong_covariance,
    delong_test,
    roc_auc_ci,
    weighted_auc,
)


@pytest.fixture(scope="module")
def asah(shared_data):
    df = pd.read_csv(shared_data / "asah" / "asah.csv")
    return df.assign(poor=(df["outcome"] == "Poor").astype(int))


def test_hand_computed_auc_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5), (0.9>0.1), (0.5=0.5 -> 1/2), (0.5>0.1)
    res = roc_auc_ci([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], method="delong")
    assert res.auc == pytest.approx(3.5 / 4)
    assert res.method == "delong" and res.level == 0.95 and res.reason == "requested"


def test_hand_computed_delong_variance():
    # positives (3, 2), negatives (1, 2.5): V10 = (1, 1/2), V01 = (1, 1/2) -> var = 1/8/2 + 1/8/2
    res = roc_auc_ci([1, 1, 0, 0], [3.0, 2.0, 1.0, 2.5], method="delong")
    assert res.auc == pytest.approx(0.75)
    assert res.variance == pytest.approx(0.125 / 2 + 0.125 / 2)


def test_perfect_separation_delong_is_degenerate():
    # the failure this package's small-sample interval exists for: "AUC 1.000 (1.000-1.000)"
    res = roc_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], method="delong")
    assert (res.auc, res.low, res.high, res.variance) == (1.0, 1.0, 1.0, 0.0)


def test_asah_s100b_matches_proc(asah):
    res = roc_auc_ci(asah["poor"], asah["s100b"])  # 41 Poor, 72 Good: "auto" is DeLong
    assert res.method == "delong" and res.estimable
    assert res.auc == pytest.approx(0.731368563685637, abs=1e-12)
    assert res.variance == pytest.approx(0.00266868245717244, abs=1e-14)
    assert res.low == pytest.approx(0.630118, abs=1e-6)
    assert res.high == pytest.approx(0.832619, abs=1e-6)


@pytest.mark.parametrize("predictor", ["s100b", "ndka", "wfns"])
def test_asah_agrees_with_slow_delong_and_sklearn(asah, predictor):
    y, s = asah["poor"].to_numpy(), asah[predictor].to_numpy()
    res = roc_auc_ci(y, s)
    aucs, cov = slow_delong(y, s)
    assert res.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert res.auc == pytest.approx(aucs[0], abs=1e-12)
    assert res.variance == pytest.approx(cov[0, 0], rel=1e-10)
    half = stats.norm.ppf(0.975) * np.sqrt(cov[0, 0])
    assert (res.low, res.high) == pytest.approx((aucs[0] - half, aucs[0] + half), abs=1e-9)


def test_delong_covariance_and_test_match_slow_reference(asah):
    y = asah["poor"].to_numpy()
    scores = asah[["s100b", "wfns", "ndka"]].to_numpy().T
    aucs, cov = delong_covariance(y, scores)
    ref_aucs, ref_cov = slow_delong(y, scores)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10, atol=1e-15)


# pROC's own tests (xrobin/pROC, tests/testthat/test-roc.test.R, "roc.test statistic and p are as
# expected with defaults"): roc.test(roc(aSAH$outcome, a), roc(aSAH$outcome, b)), paired DeLong,
# two-sided, 95% CI of AUC(a) - AUC(b). (first, second, Z, p, CI low, CI high)
PROC_ROC_TEST = [
    ("wfns", "s100b", 2.20898359144091, 0.0271757822291882, 0.0104061769564846, 0.174214419249478),
    ("wfns", "ndka", 2.79777591868904, 0.00514557970691098, 0.0634011709339876, 0.3600405634833566),
    (
        "ndka",
        "s100b",
        -1.39077002573558,
        0.164295175223054,
        -0.2876917446341914,
        0.0488706064228094,
    ),
]


@pytest.mark.parametrize(("a", "b", "z", "p", "low", "high"), PROC_ROC_TEST)
def test_delong_test_matches_proc_published(asah, a, b, z, p, low, high):
    res = delong_test(asah["poor"], asah[a], asah[b])
    assert res.z == pytest.approx(z, rel=1e-9)
    assert res.p == pytest.approx(p, rel=1e-9)
    assert (res.low, res.high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    swapped = delong_test(asah["poor"], asah[b], asah[a])
    assert (swapped.z, swapped.p) == (pytest.approx(-z, rel=1e-9), pytest.approx(p, rel=1e-9))


def test_delong_test_identical_scores():
    res = delong_test([0, 1, 0, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.2], [0.1, 0.4, 0.35, 0.8, 0.2])
    assert res.difference == 0.0 and res.p == 1.0


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
        ([0, 1, 0], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1, 0], [0.1, 0.2], "lengths must match"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "0/1"),
    ],
)
def test_degenerate_inputs_raise(y, s, match):
    with pytest.raises(ValueError, match=match):
        roc_auc_ci(y, s)


def test_unknown_method_and_level():
    with pytest.raises(ValueError, match="unknown method"):
        roc_auc_ci([0, 1], [0.1, 0.2], method="hanley")
    with pytest.raises(ValueError, match="level"):
        roc_auc_ci([0, 1], [0.1, 0.2], level=95)


def test_weighted_auc_equals_resampled_auc():
    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.4
    s = np.round(rng.normal(size=60) + y, 1)  # rounding makes ties
    w = bootstrap_weights(y.astype(int), 5, rng)
    got = weighted_auc(y, s, w)
    for b in range(5):
        idx = np.repeat(np.arange(60), w[b].astype(int))
        assert got[b] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)


def test_bootstrap_is_stratified_seeded_and_clustered():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(30), np.zeros(50)].astype(int)
    s = rng.normal(size=80) + y
    w = bootstrap_weights(y, 100, np.random.default_rng(0))
    assert (w[:, y == 1].sum(axis=1) == 30).all() and (w[:, y == 0].sum(axis=1) == 50).all()
    a = roc_auc_ci(y, s, method="bootstrap", n_boot=300, rng=7)
    b = roc_auc_ci(y, s, method="bootstrap", n_boot=300, rng=7)
    assert a == b and a.low < a.auc < a.high
    groups = np.arange(80) // 2  # two vertebrae per patient
    wg = bootstrap_weights(y, 50, np.random.default_rng(0), groups)
    assert (wg[:, 0::2] == wg[:, 1::2]).all()  # a patient's cases move together
    c = roc_auc_ci(y, s, method="bootstrap", n_boot=300, groups=groups, rng=7)
    assert c.auc == a.auc and c.method == "bootstrap"


def _coverage(method: str, n_sims: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    d = 1.0
    true_auc = stats.norm.cdf(d / np.sqrt(2))
    y = np.r_[np.ones(40), np.zeros(60)].astype(int)
    hits = 0
    for _ in range(n_sims):
        s = rng.normal(size=100) + d * y
        res = roc_auc_ci(y, s, method=method, n_boot=400, rng=rng)
        hits += res.low <= true_auc <= res.high
    return hits / n_sims


@pytest.mark.parametrize("method", ["delong", "bootstrap"])
def test_ci_coverage_binormal(method):
    assert 0.90 <= _coverage(method, 200, seed=11) <= 0.99


@pytest.mark.slow
@pytest.mark.parametrize("method", ["delong", "bootstrap"])
def test_ci_coverage_binormal_large(method):
    assert 0.93 <= _coverage(method, 2000, seed=12) <= 0.97
