"""Area under the ROC curve with confidence intervals: DeLong (as R's pROC), bootstrap, Newcombe.

Conventions (as pROC with ``direction = "<"``): a higher score means "more likely positive"; a tie
between a positive and a negative counts one half. All functions are pure: arrays in, numbers or
frozen dataclasses out; randomness only through the ``rng`` argument.

References: DeLong, DeLong & Clarke-Pearson, Biometrics 1988; Sun & Xu, IEEE Signal Process. Lett.
2014 (fast midrank algorithm, O(n log n)); Robin et al., BMC Bioinformatics 2011 (pROC); Newcombe,
Stat Med 2006;25:559-573 (method 5, small samples); Hanley & McNeil, Radiology 1982;143:29-36.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

RngLike = np.random.Generator | int | None

#: Seed used when ``rng`` is None, so reports are reproducible by default.
DEFAULT_SEED = 0

#: ``method="auto"`` uses Newcombe's interval when either class has fewer cases than this (or when
#: the AUC is 0 or 1); otherwise DeLong's.
SMALL_SAMPLE_MIN_CASES = 10

AucMethod = Literal["auto", "delong", "bootstrap", "newcombe"]


@dataclass(frozen=True)
class AucResult:
    """AUC with a two-sided confidence interval at ``level``; ``variance`` of the AUC estimate.

    ``method``: the interval used ("delong", "bootstrap" or "newcombe"); ``reason``: why (for
    ``method="auto"``) or "requested"; ``estimable``: False when a class has a single case (the AUC
    is then the placement of that one case and its interval says little; report "not estimable").
    """

    auc: float
    low: float
    high: float
    variance: float
    method: str
    level: float
    reason: str = "requested"
    estimable: bool = True
    n_positive: int = 0
    n_negative: int = 0


@dataclass(frozen=True)
class DelongTestResult:
    """Paired DeLong test of AUC(a) - AUC(b) on the same cases; CI of the difference."""

    auc_a: float
    auc_b: float
    difference: float
    z: float
    p: float
    low: float
    high: float


def as_rng(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator, an int seed, or None (-> DEFAULT_SEED)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(DEFAULT_SEED if rng is None else rng)


def check_binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (y_true bool (n,), y_score float (..., n)).

    Raises ValueError for length mismatch, NaN/inf scores, labels other than 0/1 (or bool) and a
    class that is absent (the AUC is then undefined).
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if s.shape[-1] != y.shape[0]:
        raise ValueError(
            f"y_true has {y.shape[0]} cases but the scores have {s.shape[-1]}: lengths must match"
        )
    if y.dtype != bool:
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError("y_true must contain only 0/1 (or booleans); 1 = positive class")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values; drop or impute those cases first")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"the AUC needs both classes: got {n_pos} positive and {y.size - n_pos} negative cases"
        )
    return y, s


def placement_values(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Placement values (midranks, ties one half) of positives (k, m) and negatives (k, n).

    ``y`` bool (n_cases,), ``scores`` (k, n_cases). ``v10[s, i]`` = fraction of negatives scored
    below positive i by rater s; ``v01[s, j]`` = fraction of positives scored above negative j.
    The empirical AUC is ``v10.mean(axis=1)`` (Sun & Xu 2014).
    """
    pos, neg = scores[:, y], scores[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    ranks = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (ranks[:, :m] - stats.rankdata(pos, axis=1)) / n
    v01 = 1.0 - (ranks[:, m:] - stats.rankdata(neg, axis=1)) / m
    return v10, v01


def delong_covariance(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their DeLong covariance matrix (k, k) for k score vectors ``scores`` (k, n).

    Fast midrank algorithm of Sun & Xu (2014); sample covariances with n-1 denominators as pROC.
    """
    y, s = check_binary(y_true, scores)
    s = np.atleast_2d(s)
    v10, v01 = placement_values(y, s)
    m, n = v10.shape[1], v01.shape[1]
    aucs = v10.mean(axis=1)
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((s.shape[0], s.shape[0]))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((s.shape[0], s.shape[0]))
    return aucs, s10 / m + s01 / n


def _normal_ci(estimate: float, variance: float, level: float) -> tuple[float, float]:
    half = float(stats.norm.ppf(0.5 + level / 2.0) * np.sqrt(max(variance, 0.0)))
    return float(estimate - half), float(estimate + half)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def weighted_auc(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of each row of case weights ``weights`` (B, n) (bootstrap multiplicities); (B,).

    AUC_b = sum_{i pos, j neg} w_bi w_bj [s_i > s_j] + 1/2 [s_i = s_j] / (W_pos W_neg), computed in
    O(B n) with cumulative sums over the score order. Rows lacking a class give NaN.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(y_score, dtype=float)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    w = w[:, order]
    w_neg = np.where(y_sorted, 0.0, w)
    cum_neg = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w_neg, axis=1)], axis=1)
    # tie block of each sorted position: [first, last]
    first = np.searchsorted(s_sorted, s_sorted, side="left")
    last = np.searchsorted(s_sorted, s_sorted, side="right")
    pos_idx = np.flatnonzero(y_sorted)
    below = cum_neg[:, first[pos_idx]]
    equal = cum_neg[:, last[pos_idx]] - below
    w_pos = w[:, pos_idx]
    numerator = (w_pos * (below + 0.5 * equal)).sum(axis=1)
    total_pos = w_pos.sum(axis=1)
    total_neg = cum_neg[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / (total_pos * total_neg)


def bootstrap_weights(
    strata: np.ndarray, n_boot: int, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
    """Case multiplicities (n_boot, n) of a stratified (and optionally clustered) bootstrap.

    Without ``groups``: within each stratum, as many cases as it holds are drawn with replacement.
    With ``groups`` (e.g. patient IDs): whole groups are drawn with replacement, stratified by the
    group's stratum (the highest stratum code among its cases), so a patient's vertebrae stay
    together.
    """
    strata = np.asarray(strata)
    n = strata.shape[0]
    if groups is None:
        group_index = np.arange(n)
        group_stratum = strata
    else:
        groups = np.asarray(groups)
        if groups.shape[0] != n:
            raise ValueError(f"groups has {groups.shape[0]} entries, expected {n} (one per case)")
        _, group_index = np.unique(groups, return_inverse=True)
        group_stratum = np.full(group_index.max() + 1, strata.min(), dtype=strata.dtype)
        np.maximum.at(group_stratum, group_index, strata)
    counts = np.zeros((n_boot, group_stratum.shape[0]))
    for value in np.unique(group_stratum):
        members = np.flatnonzero(group_stratum == value)
        k = members.size
        counts[:, members] = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
    return counts[:, group_index]


def percentile_ci(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, ignoring NaN replicates."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return float(low), float(high)


def newcombe_variance(auc, n_positive: int, n_negative: int):
    """Variance of the AUC under Newcombe's (2006) method 4: Hanley-McNeil with N* = (m + n)/2 - 1.

    V(A) = A (1 - A) [1 + N* (1 - A)/(2 - A) + N* A/(1 + A)] / (m n); ``auc`` scalar or array.
    """
    a = np.asarray(auc, dtype=float)
    n_star = (n_positive + n_negative) / 2.0 - 1.0
    bracket = 1.0 + n_star * (1.0 - a) / (2.0 - a) + n_star * a / (1.0 + a)
    return a * (1.0 - a) * bracket / (n_positive * n_negative)


def _newcombe_lower(auc: float, n_positive: int, n_negative: int, z: float) -> float:
    """Lower limit: the root A < auc of (auc - A) = z sqrt(V(A)), divided by sqrt(1 - A)."""
    if auc <= 0.0:
        return 0.0
    scale = n_positive * n_negative
    n_star = (n_positive + n_negative) / 2.0 - 1.0

    def gap(a: float) -> float:
        bracket = 1.0 + n_star * (1.0 - a) / (2.0 - a) + n_star * a / (1.0 + a)
        # (auc - a) / sqrt(1 - a) is sqrt(1 - a) when auc == 1; finite at a = 1 either way
        lead = np.sqrt(1.0 - a) if auc >= 1.0 else (auc - a) / np.sqrt(1.0 - a)
        return float(lead - z * np.sqrt(a * bracket / scale))

    return float(optimize.brentq(gap, 0.0, min(auc, 1.0), xtol=1e-14))


def newcombe_auc_ci(
    auc: float, n_positive: int, n_negative: int, level: float = 0.95
) -> tuple[float, float]:
    """Newcombe's (2006) method 5 score interval for an AUC from ``n_positive``/``n_negative`` cases.

    The limits are the A solving (auc - A)^2 = z^2 V(A) with V of :func:`newcombe_variance`, found
    with Brent's method. Stays inside [0, 1] and has non-zero width at AUC 0 or 1.
    """
    _check_level(level)
    if n_positive < 1 or n_negative < 1:
        raise ValueError(
            f"need at least one case per class, got {n_positive} positive and {n_negative} negative"
        )
    if not 0.0 <= auc <= 1.0:
        raise ValueError(f"auc must be in [0, 1], got {auc}")
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    low = _newcombe_lower(auc, n_positive, n_negative, z)
    high = 1.0 - _newcombe_lower(1.0 - auc, n_positive, n_negative, z)  # V(A) = V(1 - A)
    return min(low, auc), max(high, auc)


def auto_method(auc: float, n_positive: int, n_negative: int) -> tuple[str, str]:
    """(method, reason) that ``method="auto"`` picks: Newcombe for small classes or AUC 0/1."""
    smaller = min(n_positive, n_negative)
    if smaller < SMALL_SAMPLE_MIN_CASES:
        return "newcombe", (
            f"small sample: {n_positive} positive and {n_negative} negative cases "
            f"(fewer than {SMALL_SAMPLE_MIN_CASES} in a class)"
        )
    if auc in (0.0, 1.0):
        return "newcombe", f"AUC = {auc:g}: DeLong's variance is zero there"
    return "delong", f"at least {SMALL_SAMPLE_MIN_CASES} cases per class and 0 < AUC < 1"


def _bootstrap_auc(y, s, level, n_boot, groups, rng) -> tuple[float, float, float, float]:
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    auc = float(weighted_auc(y, s, np.ones((1, y.size)))[0])
    w = bootstrap_weights(y.astype(int), n_boot, as_rng(rng), groups)
    reps = weighted_auc(y, s, w)
    low, high = percentile_ci(reps, level)
    return auc, low, high, float(np.nanvar(reps, ddof=1))


def roc_auc_ci(
    y_true,
    y_score,
    *,
    level: float = 0.95,
    method: AucMethod = "auto",
    n_boot: int = 2000,
    groups=None,
    rng: RngLike = None,
) -> AucResult:
    """AUC of ``y_score`` (n,) for binary ``y_true`` (n,) with a ``level`` confidence interval.

    ``method="delong"``: auc +/- z * sqrt(DeLong variance), clipped to [0, 1] (pROC's ci.auc).
    ``method="bootstrap"``: ``n_boot`` replicates stratified by class (clustered by ``groups`` when
    given, e.g. patient IDs), percentile interval; ``variance`` is that of the replicates.
    ``method="newcombe"``: :func:`newcombe_auc_ci`; ``variance`` is Newcombe's V(auc).
    ``method="auto"`` (default): "newcombe" when a class has fewer than SMALL_SAMPLE_MIN_CASES
    cases or the AUC is 0 or 1, else "delong" (see :func:`auto_method`).
    """
    _check_level(level)
    y, s = check_binary(y_true, y_score)
    if s.ndim != 1:
        raise ValueError(f"y_score must be 1-D (n,), got shape {s.shape}")
    if method not in ("auto", "delong", "bootstrap", "newcombe"):
        raise ValueError(
            f"unknown method {method!r}: use 'auto', 'delong', 'bootstrap' or 'newcombe'"
        )
    m, n = int(y.sum()), int((~y).sum())
    counts = {"estimable": min(m, n) > 1, "n_positive": m, "n_negative": n}
    if method == "bootstrap":
        auc, low, high, var = _bootstrap_auc(y, s, level, n_boot, groups, rng)
        return AucResult(auc, low, high, var, "bootstrap", level, **counts)
    aucs, cov = delong_covariance(y, s)
    auc, var = float(aucs[0]), float(cov[0, 0])
    used, reason = auto_method(auc, m, n) if method == "auto" else (method, "requested")
    if used == "newcombe":
        low, high = newcombe_auc_ci(auc, m, n, level)
        var = float(newcombe_variance(auc, m, n))
        return AucResult(auc, low, high, var, "newcombe", level, reason, **counts)
    low, high = _normal_ci(auc, var, level)
    return AucResult(auc, max(low, 0.0), min(high, 1.0), var, "delong", level, reason, **counts)


def cases_per_class_for_half_width(auc: float, half_width: float, level: float = 0.95) -> int:
    """Cases needed in EACH class for a ``level`` CI of +/- ``half_width`` around ``auc``.

    Hanley & McNeil (1982) variance with m = n: V = [A(1-A) + (n-1)(Q1 + Q2 - 2A^2)] / n^2,
    Q1 = A/(2-A), Q2 = 2A^2/(1+A); returns the smallest n >= 2 with z sqrt(V) <= half_width.
    """
    _check_level(level)
    if not 0.0 < auc < 1.0:
        raise ValueError(f"auc must be in (0, 1) (the variance is zero at 0 and 1), got {auc}")
    if not 0.0 < half_width < 1.0:
        raise ValueError(f"half_width must be in (0, 1), e.g. 0.05, got {half_width}")
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    q = auc / (2.0 - auc) + 2.0 * auc**2 / (1.0 + auc) - 2.0 * auc**2
    c = auc * (1.0 - auc) - q  # V = (q n + c) / n^2
    a = (half_width / z) ** 2  # need a n^2 - q n - c >= 0
    n = int(np.ceil((q + np.sqrt(q * q + 4.0 * a * c)) / (2.0 * a)))
    while n > 2 and a * (n - 1) ** 2 - q * (n - 1) - c >= 0:  # guard against rounding
        n -= 1
    return max(n, 2)


def delong_test(y_true, score_a, score_b, *, level: float = 0.95) -> DelongTestResult:
    """Paired two-sided DeLong test of two correlated ROC curves on the same cases (pROC roc.test)."""
    _check_level(level)
    a = np.asarray(score_a, dtype=float)
    b = np.asarray(score_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"score_a {a.shape} and score_b {b.shape} must be 1-D arrays of the same length"
        )
    aucs, cov = delong_covariance(y_true, np.stack([a, b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 1e-15:  # identical rankings: no evidence of a difference
        z, p = (0.0, 1.0) if abs(diff) < 1e-12 else (float(np.sign(diff) * np.inf), 0.0)
    else:
        z = diff / np.sqrt(var)
        p = float(2.0 * stats.norm.sf(abs(z)))
    low, high = _normal_ci(diff, var, level)
    return DelongTestResult(float(aucs[0]), float(aucs[1]), diff, float(z), p, low, high)
