"""Wilson intervals and McNemar's test against hand-computed values."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from vcfnet.stats.proportions import mcnemar_test, wilson_ci


def wilson_by_hand(k, n, level=0.95):
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(8, 10), (0, 12), (12, 12), (157, 201)])
def test_wilson_matches_formula(k, n):
    assert wilson_ci(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)


def test_wilson_level_and_edge_cases():
    low90, high90 = wilson_ci(30, 50, level=0.90)
    low95, high95 = wilson_ci(30, 50)
    assert low95 < low90 < 0.6 < high90 < high95
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_ci(5, 3)


def test_mcnemar_exact_small():
    # A right & B wrong on 5 cases, A wrong & B right on 1: exact two-sided binomial p = 14/64
    a = [1] * 5 + [0] + [1] * 10
    b = [0] * 5 + [1] + [1] * 10
    res = mcnemar_test(a, b)
    assert (res.n01, res.n10, res.exact) == (1, 5, True)
    assert res.p == pytest.approx(2 * stats.binom.cdf(1, 6, 0.5), abs=1e-12)


def test_mcnemar_chi_square_large():
    a = [1] * 30 + [0] * 10 + [1] * 50
    b = [0] * 30 + [1] * 10 + [1] * 50
    res = mcnemar_test(a, b)
    assert not res.exact
    assert res.statistic == pytest.approx((abs(30 - 10) - 1) ** 2 / 40)
    assert res.p == pytest.approx(stats.chi2.sf(res.statistic, 1))


def test_mcnemar_no_discordant_pairs_and_bad_input():
    assert mcnemar_test([1, 0, 1], [1, 0, 1]).p == 1.0
    with pytest.raises(ValueError, match="same length"):
        mcnemar_test([1, 0], [1])
