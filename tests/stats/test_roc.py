"""AUC, DeLong and bootstrap: hand-computed cases, pROC on aSAH, an O(n^2) reference, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from vcfnet.stats.roc import (
    bootstrap_weights,
    delong_covariance,
    delong_test,
    roc_auc_ci,
    weighted_auc,
)


def slow_delong(y, scores):
    """DeLong et al. (1988) written out with the O(m n) kernel matrix, as an independent check."""
    y = np.asarray(y, dtype=bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    v10, v01, aucs = [], [], []
    for s in scores:
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    m, n = v10.shape[1], v01.shape[1]
    return np.array(aucs), np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


@pytest.fixture(scope="module")
def asah(shared_data):
    df = pd.read_csv(shared_data / "asah" / "asah.csv")
    return df.assign(poor=(df["outcome"] == "Poor").astype(int))


def test_hand_computed_auc_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5), (0.9>0.1), (0.5=0.5 -> 1/2), (0.5>0.1)
    res = roc_auc_ci([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    assert res.auc == pytest.approx(3.5 / 4)
    assert res.method == "delong" and res.level == 0.95


def test_hand_computed_delong_variance():
    # positives (3, 2), negatives (1, 2.5): V10 = (1, 1/2), V01 = (1, 1/2) -> var = 1/8/2 + 1/8/2
    res = roc_auc_ci([1, 1, 0, 0], [3.0, 2.0, 1.0, 2.5])
    assert res.auc == pytest.approx(0.75)
    assert res.variance == pytest.approx(0.125 / 2 + 0.125 / 2)


def test_perfect_separation_ci_clipped():
    res = roc_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert res.auc == 1.0 and res.variance == 0.0 and res.high == 1.0


def test_asah_s100b_matches_proc(asah):
    res = roc_auc_ci(asah["poor"], asah["s100b"])
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
    res = delong_test(y, asah["s100b"], asah["wfns"])
    var = ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1]
    z = (ref_aucs[0] - ref_aucs[1]) / np.sqrt(var)
    assert res.difference == pytest.approx(ref_aucs[0] - ref_aucs[1], abs=1e-12)
    assert res.z == pytest.approx(z, rel=1e-9)
    assert res.p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert res.low < res.difference < res.high


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
