"""Wilson intervals against Newcombe (1998); McNemar's test against hand-computed values."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from vcfnet.stats.proportions import mcnemar_test, wilson_ci

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven
# methods", Stat Med 17:857-872, Table I, method 3 (score interval without continuity correction),
# 95%, printed to 4 decimals.
NEWCOMBE_1998_SCORE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), NEWCOMBE_1998_SCORE)
def test_wilson_matches_newcombe_1998(k, n, low, high):
    got = wilson_ci(k, n)
    assert got == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_wilson_one_of_one_and_mirror():
    # 1/1 at 95%: 1 / (1 + z^2) = 0.2065 to 1 (the score interval for r = n; cf. 0/20 above)
    assert wilson_ci(1, 1) == (pytest.approx(0.2065, abs=5e-5), 1.0)
    # the score interval of r/n mirrors that of (n - r)/n
    low, high = wilson_ci(81, 263)
    assert wilson_ci(182, 263) == (pytest.approx(1 - high, abs=1e-12), pytest.approx(1 - low))


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


def test_wilson_bounds_are_exactly_zero_and_one_at_the_ends():
    """No successes: the lower bound is 0, not statsmodels' 5.6e-17; all successes: upper is 1."""
    assert wilson_ci(0, 5)[0] == 0.0 and wilson_ci(5, 5)[1] == 1.0
    assert wilson_ci(1, 5)[0] > 0 and wilson_ci(4, 5)[1] < 1
