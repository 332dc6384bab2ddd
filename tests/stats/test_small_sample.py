"""Small-sample AUC intervals (Newcombe 2006, method 5), the "auto" switch, sample sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vcfnet.stats.roc import (
    SMALL_SAMPLE_MIN_CASES,
    cases_per_class_for_half_width,
    newcombe_auc_ci,
    newcombe_variance,
    roc_auc_ci,
)

# Newcombe's method 5 as implemented in the R package SingleCaseES (NAP(), "the symmetrized
# score-inversion method (Method 5) proposed by Newcombe (2006)"), documented output of the
# examples on its reference page (jepusto/SingleCaseES, reference/NAP.html, version 0.7.0):
#   NAP(A, B)   -> Est 0.9166667, CI 0.5973406 to 0.9860176
#   NAP(yA, yB) -> Est 0.9636364, CI 0.7499741 to 0.9950729  (Parker & Vannest 2009 example)
# NAP is the AUC with the B phase as positives. We did not find the numbers of Newcombe's own
# worked-example table, so these published outputs stand in for them. SingleCaseES finds the roots
# with R's uniroot() at its default tolerance (.Machine$double.eps^0.25 = 1.2e-4), so its limits
# are only good to about 1e-4; we compare to 1.3e-4.
SINGLECASEES_A = [20, 20, 26, 25, 22, 23]
SINGLECASEES_B = [28, 25, 24, 27, 30, 30, 29]
PARKER_VANNEST_A = [4, 3, 4, 3, 4, 7, 5, 2, 3, 2]
PARKER_VANNEST_B = [5, 9, 7, 9, 7, 5, 9, 11, 11, 10, 9]
UNIROOT_TOL = 1.3e-4


def as_cases(negatives, positives):
    y = np.r_[np.zeros(len(negatives)), np.ones(len(positives))].astype(int)
    return y, np.r_[negatives, positives].astype(float)


@pytest.mark.parametrize(
    ("negatives", "positives", "auc", "low", "high"),
    [
        (SINGLECASEES_A, SINGLECASEES_B, 0.9166667, 0.5973406, 0.9860176),
        (PARKER_VANNEST_A, PARKER_VANNEST_B, 0.9636364, 0.7499741, 0.9950729),
    ],
)
def test_newcombe_matches_published_singlecasees(negatives, positives, auc, low, high):
    res = roc_auc_ci(*as_cases(negatives, positives), method="newcombe")
    assert res.auc == pytest.approx(auc, abs=5e-8)
    assert res.low == pytest.approx(low, abs=UNIROOT_TOL)
    assert res.high == pytest.approx(high, abs=UNIROOT_TOL)
    assert res.method == "newcombe" and res.reason == "requested"


def test_newcombe_is_not_delong():
    # Guard against the published check passing by accident: DeLong gives another interval here.
    y, s = as_cases(SINGLECASEES_A, SINGLECASEES_B)
    delong = roc_auc_ci(y, s, method="delong")
    assert abs(delong.low - 0.5973406) > 0.05


def test_auc_one_and_zero_get_non_degenerate_intervals():
    one = roc_auc_ci([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    zero = roc_auc_ci([0, 0, 0, 1, 1, 1], [0.7, 0.8, 0.9, 0.1, 0.2, 0.3])
    assert (one.auc, one.high, one.method) == (1.0, 1.0, "newcombe")
    assert (zero.auc, zero.low, zero.method) == (0.0, 0.0, "newcombe")
    assert 0.0 < one.low < 0.95 and 0.05 < zero.high < 1.0
    # V(A) = V(1 - A): the two intervals mirror each other
    assert one.low == pytest.approx(1.0 - zero.high, abs=1e-12)


def test_auc_one_interval_solves_the_score_equation():
    # At AUC 1 the lower limit L solves (1 - L)^2 = z^2 V(L) (Newcombe 2006, method 5); check the
    # equation itself with V written out, not the solver.
    m, n, z = 4, 7, 1.959963984540054
    low, high = newcombe_auc_ci(1.0, m, n)
    n_star = (m + n) / 2 - 1
    v = low * (1 - low) * (1 + n_star * (1 - low) / (2 - low) + n_star * low / (1 + low)) / (m * n)
    assert (1 - low) ** 2 == pytest.approx(z**2 * v, rel=1e-9)
    assert high == 1.0


def test_one_positive_case_is_not_estimable():
    res = roc_auc_ci([1, 0, 0, 0, 0], [0.9, 0.1, 0.2, 0.3, 0.95])
    assert res.auc == pytest.approx(0.75)  # the AUC is still returned
    assert not res.estimable and (res.n_positive, res.n_negative) == (1, 4)
    assert res.method == "newcombe" and "small sample" in res.reason
    assert 0.0 <= res.low < res.auc < res.high <= 1.0


def test_one_negative_case_is_not_estimable_even_with_delong():
    y = [0] + [1] * 30
    s = np.r_[0.5, np.linspace(0, 1, 30)]
    res = roc_auc_ci(y, s, method="delong")
    assert not res.estimable and res.n_negative == 1 and res.method == "delong"


def test_one_case_per_class_has_the_wilson_interval_of_one_in_one():
    # m = n = 1: N* = 0, V(A) = A(1 - A), so the interval is Wilson's for 1/1: 0.2065 to 1
    # (Newcombe 1998, Stat Med 17:857, score method for r = n).
    res = roc_auc_ci([0, 1], [0.1, 0.9])
    assert res.low == pytest.approx(0.2065, abs=5e-5) and res.high == 1.0


@pytest.mark.parametrize("n_small", [2, SMALL_SAMPLE_MIN_CASES - 1])
def test_auto_uses_newcombe_below_the_constant(n_small):
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(n_small), np.zeros(50)].astype(int)
    s = rng.normal(size=y.size) + y
    res = roc_auc_ci(y, s)
    assert res.method == "newcombe" and str(SMALL_SAMPLE_MIN_CASES) in res.reason
    assert res.low == pytest.approx(newcombe_auc_ci(res.auc, n_small, 50)[0], abs=1e-12)


def test_auto_is_delong_bit_for_bit_at_and_above_the_constant():
    rng = np.random.default_rng(4)
    y = np.r_[np.ones(SMALL_SAMPLE_MIN_CASES), np.zeros(40)].astype(int)
    s = rng.normal(size=y.size) + y
    auto = roc_auc_ci(y, s)
    delong = roc_auc_ci(y, s, method="delong")
    assert auto.method == "delong" and "at least" in auto.reason
    assert dataclasses.replace(auto, reason="requested") == delong  # every field identical


def test_auto_uses_newcombe_for_perfect_separation_in_large_samples():
    y = np.r_[np.ones(30), np.zeros(30)].astype(int)
    res = roc_auc_ci(y, np.r_[np.linspace(0.6, 1, 30), np.linspace(0, 0.4, 30)])
    assert res.method == "newcombe" and "AUC = 1" in res.reason
    assert 0.8 < res.low < 1.0 and res.high == 1.0


@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 9), (3, 4), (9, 9), (12, 40)])
def test_intervals_stay_in_unit_interval_with_positive_width(m, n):
    for auc in np.linspace(0, 1, 11):
        low, high = newcombe_auc_ci(float(auc), m, n)
        assert 0.0 <= low <= auc <= high <= 1.0
        assert high - low > 0.01


def test_bad_newcombe_inputs():
    with pytest.raises(ValueError, match="at least one case"):
        newcombe_auc_ci(0.5, 0, 3)
    with pytest.raises(ValueError, match="auc must be"):
        newcombe_auc_ci(1.5, 3, 3)


def test_newcombe_variance_at_half_is_the_mann_whitney_null_variance():
    # Hanley-McNeil at A = 1/2 with the same m and n gives (m + n + 1) / (12 m n), the exact null
    # variance of U/mn (Mann & Whitney 1947). Newcombe's N* keeps that when m = n.
    for k in (3, 10, 50):
        assert newcombe_variance(0.5, k, k) == pytest.approx((2 * k + 1) / (12 * k * k), rel=1e-12)


def test_sample_size_meets_the_half_width_and_is_the_smallest():
    z = 1.959963984540054
    for auc in (0.7, 0.8, 0.9):
        for h in (0.05, 0.10, 0.15):
            k = cases_per_class_for_half_width(auc, h)
            q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)

            def half(n, a=auc, q1=q1, q2=q2):  # Hanley & McNeil (1982), equal class sizes
                return z * np.sqrt((a * (1 - a) + (n - 1) * (q1 + q2 - 2 * a * a)) / n**2)

            assert half(k) <= h < half(k - 1)


def test_sample_size_rejects_degenerate_auc_and_width():
    with pytest.raises(ValueError, match="auc must be in"):
        cases_per_class_for_half_width(1.0, 0.1)
    with pytest.raises(ValueError, match="half_width"):
        cases_per_class_for_half_width(0.8, 0.0)
