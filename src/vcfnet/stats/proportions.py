"""Confidence intervals for proportions (Wilson) and McNemar's test for paired accuracies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

#: Below this many discordant pairs McNemar's test uses the exact binomial distribution.
MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test of paired correctness. n01: A wrong and B right; n10: A right and B wrong."""

    statistic: float
    p: float
    n01: int
    n10: int
    exact: bool


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes / n``; (nan, nan) when n == 0 (proportion undefined)."""
    if successes < 0 or n < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n == 0:
        return float("nan"), float("nan")
    low, high = proportion_confint(successes, n, alpha=1.0 - level, method="wilson")
    # the bounds are exactly 0 with no successes and 1 with no failures (statsmodels' rounding
    # leaves ~1e-17 there)
    return (0.0 if successes == 0 else float(low)), (1.0 if successes == n else float(high))


def mcnemar_test(correct_a, correct_b) -> McNemarResult:
    """McNemar's test on paired per-case correctness (bool arrays (n,)) of two classifiers.

    Exact binomial test when fewer than 25 discordant pairs, else the chi-square test with
    continuity correction (statsmodels).
    """
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a {a.shape} and correct_b {b.shape} must be 1-D, same length")
    if a.size == 0:
        raise ValueError("McNemar's test needs at least one paired case")
    a, b = a.astype(bool), b.astype(bool)
    n00 = int((~a & ~b).sum())
    n01 = int((~a & b).sum())
    n10 = int((a & ~b).sum())
    n11 = int((a & b).sum())
    exact = n01 + n10 < MCNEMAR_EXACT_BELOW
    if n01 + n10 == 0:
        return McNemarResult(0.0, 1.0, n01, n10, exact)
    res = mcnemar([[n11, n10], [n01, n00]], exact=exact, correction=True)
    return McNemarResult(float(res.statistic), float(res.pvalue), n01, n10, exact)
