"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis' degrees of freedom.

Random readers and random cases. The figure of merit is the empirical (Mann-Whitney) AUC of each
modality x reader; the covariance of these AUCs over cases is estimated by DeLong's method or by
the case jackknife. Formulas follow Obuchowski & Rockette (1995), Hillis (2007, Stat Med 26:596)
and Hillis (2008, Stat Med 27:5165), as implemented in the University of Iowa OR-DBM MRMC software
and the R package MRMCaov; the Van Dyke (1993) data reproduce their published results.

    F   = MS(T) / [MS(T:R) + r * max(Cov2 - Cov3, 0)]
    df2 = [MS(T:R) + r * max(Cov2 - Cov3, 0)]^2 / [MS(T:R)^2 / ((t-1)(r-1))]
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from vcfnet.stats.roc import delong_covariance, placement_values

CovarianceMethod = Literal["delong", "jackknife"]


@dataclass(frozen=True)
class ORHillisResult:
    """Obuchowski-Rockette-Hillis analysis of ``t`` modalities read by ``r`` readers.

    Arrays: ``modality_aucs`` (t,), ``reader_aucs`` (t, r), per-modality CI (t,); the pairwise
    modality comparisons ``pairs`` (i, j) with ``difference`` = AUC_i - AUC_j and its CI and
    t-test p (one entry per pair, in ``itertools.combinations`` order; for two modalities the
    single entry is modality 0 minus modality 1). ``f``, ``df1``, ``df2``, ``p`` test equality
    of all modality means.
    """

    modality_aucs: np.ndarray
    reader_aucs: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    difference: np.ndarray
    difference_se: np.ndarray
    difference_ci_low: np.ndarray
    difference_ci_high: np.ndarray
    difference_p: np.ndarray
    f: float
    df1: int
    df2: float
    p: float
    var_error: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_tr: float
    modality_ci_low: np.ndarray
    modality_ci_high: np.ndarray
    modality_df: np.ndarray
    auc_covariance: np.ndarray
    n_readers: int
    n_cases: int
    n_positive: int
    cov_method: str
    level: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (arrays as lists, the (t*r, t*r) covariance matrix left out)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "auc_covariance":
                continue
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = [list(v) for v in value]
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        return out


def _check_inputs(truth: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(truth)
    x = np.asarray(scores, dtype=float)
    if x.ndim != 3:
        raise ValueError(f"scores must be shaped (modalities, readers, cases), got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[2]:
        raise ValueError(
            f"truth must be 1-D with one entry per case ({x.shape[2]}), got shape {y.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("truth must hold only 0 (negative) and 1 (positive)")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("truth needs both positive and negative cases to compute an AUC")
    if not np.isfinite(x).all():
        raise ValueError("scores contain NaN or infinite values")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(
            f"OR-Hillis needs at least 2 modalities and 2 readers, got {x.shape[0]} x {x.shape[1]}"
        )
    return y, x


def jackknife_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical AUCs (k,) and their case-jackknife covariance (k, k) of ``scores`` (k, cases).

    Leave-one-out AUCs come in closed form from the placement values; the covariance is
    ``(N-1)/N * sum_c (A_(c) - mean)(A_(c) - mean)^T`` over the N cases (Efron 1982).
    """
    y = np.asarray(y).astype(bool)
    v10, v01 = placement_values(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    aucs = v10.mean(axis=1)
    loo = np.empty((scores.shape[1], scores.shape[0]))
    loo[np.flatnonzero(y)] = ((m * aucs[:, None] - v10) / (m - 1)).T
    loo[np.flatnonzero(~y)] = ((n * aucs[:, None] - v01) / (n - 1)).T
    n_cases = loo.shape[0]
    centred = loo - loo.mean(axis=0)
    return aucs, (n_cases - 1) / n_cases * centred.T @ centred


def _auc_covariance(y: np.ndarray, flat: np.ndarray, cov: str) -> tuple[np.ndarray, np.ndarray]:
    if cov == "jackknife":
        return jackknife_covariance(y, flat)
    if cov == "delong":
        aucs, matrix = delong_covariance(y.astype(int), flat)
        return np.asarray(aucs, dtype=float), np.atleast_2d(np.asarray(matrix, dtype=float))
    raise ValueError(f"cov must be 'delong' or 'jackknife', got {cov!r}")


def _covariance_components(c: np.ndarray, t: int, r: int) -> tuple[float, float, float, float]:
    """Var, Cov1 (same reader), Cov2 (same modality), Cov3 (neither) of a (t*r, t*r) matrix."""
    c4 = c.reshape(t, r, t, r)
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]
    var = c4[same_t & same_r].mean()
    cov1 = c4[~same_t & same_r].mean()
    cov2 = c4[same_t & ~same_r].mean()
    cov3 = c4[~same_t & ~same_r].mean()
    return float(var), float(cov1), float(cov2), float(cov3)


def _modality_cis(
    theta: np.ndarray, c: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-modality CIs (Hillis 2007): each modality alone, its own MS(R) and Cov2.

    ``theta`` (modalities, readers) AUCs, ``c`` their (t*r, t*r) covariance. Returns the
    lower bounds, upper bounds and degrees of freedom, each (modalities,).
    """
    t, r = theta.shape
    c4 = c.reshape(t, r, t, r)
    off_reader = ~np.eye(r, dtype=bool)
    lows, highs, dfs = [], [], []
    for i in range(t):
        mean_i = float(theta[i].mean())
        ms_r = float(((theta[i] - mean_i) ** 2).sum()) / (r - 1)
        cov2_i = max(float(c4[i, :, i, :][off_reader].mean()), 0.0)
        se_i = np.sqrt(ms_r / r + cov2_i)
        df_i = (ms_r + r * cov2_i) ** 2 / (ms_r**2 / (r - 1)) if ms_r > 0 else np.inf
        half = float(stats.t.ppf((1 + level) / 2, df_i)) * se_i
        lows.append(max(mean_i - half, 0.0))
        highs.append(min(mean_i + half, 1.0))
        dfs.append(df_i)
    return np.array(lows), np.array(highs), np.array(dfs, dtype=float)


def _mean_squares(theta: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-modality mean AUCs (t,) of reader AUCs ``theta`` (t, r), the modality mean square
    and the modality x reader interaction mean square."""
    t, r = theta.shape
    mod_mean = theta.mean(axis=1)
    grand = theta.mean()
    ms_t = r * float(((mod_mean - grand) ** 2).sum()) / (t - 1)
    interaction = theta - mod_mean[:, None] - theta.mean(axis=0)[None, :] + grand
    ms_tr = float((interaction**2).sum()) / ((t - 1) * (r - 1))
    return mod_mean, ms_t, ms_tr


def _f_test(
    ms_t: float, ms_tr: float, cov2: float, cov3: float, t: int, r: int
) -> tuple[float, int, float, float, float]:
    """The OR-Hillis F test of equal modality AUCs: (denominator, df1, df2, F, p)."""
    denominator = ms_tr + r * max(cov2 - cov3, 0.0)
    df1 = t - 1
    df2 = denominator**2 / (ms_tr**2 / ((t - 1) * (r - 1))) if ms_tr > 0 else np.inf
    f_stat = ms_t / denominator if denominator > 0 else np.nan
    p = (
        float(stats.f.sf(f_stat, df1, df2))
        if np.isfinite(df2)
        else float(stats.chi2.sf(f_stat * df1, df1))
    )
    return denominator, df1, df2, f_stat, p


def _pairwise_differences(
    mod_mean: np.ndarray, denominator: float, r: int, df2: float, level: float
) -> dict[str, Any]:
    """Per pair of modalities (i < j): AUC difference i - j, its standard error, CI and p."""
    quantile = float(stats.t.ppf((1 + level) / 2, df2))
    pairs = tuple(itertools.combinations(range(len(mod_mean)), 2))
    diff = np.array([mod_mean[i] - mod_mean[j] for i, j in pairs])
    se = np.full(len(pairs), np.sqrt(2.0 / r * denominator))
    with np.errstate(divide="ignore", invalid="ignore"):
        diff_p = 2 * stats.t.sf(np.abs(diff / se), df2)
    return {
        "pairs": pairs,
        "difference": diff,
        "difference_se": se,
        "difference_ci_low": diff - quantile * se,
        "difference_ci_high": diff + quantile * se,
        "difference_p": np.asarray(diff_p, dtype=float),
    }


def or_hillis(
    truth: Any, scores: Any, *, cov: CovarianceMethod = "delong", level: float = 0.95
) -> ORHillisResult:
    """Obuchowski-Rockette-Hillis test, random readers and random cases.

    ``truth`` (cases,) 0/1; ``scores`` (modalities, readers, cases), higher = more likely
    positive (ratings or probabilities; ties count one half). ``cov`` picks the AUC covariance
    estimator: ``"delong"`` (default) or ``"jackknife"``. Returns an :class:`ORHillisResult`.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    y, x = _check_inputs(truth, scores)
    t, r, n_cases = x.shape
    aucs, c = _auc_covariance(y, x.reshape(t * r, n_cases), cov)
    theta = aucs.reshape(t, r)
    var, cov1, cov2, cov3 = _covariance_components(c, t, r)
    mod_mean, ms_t, ms_tr = _mean_squares(theta)
    denominator, df1, df2, f_stat, p = _f_test(ms_t, ms_tr, cov2, cov3, t, r)
    lows, highs, dfs = _modality_cis(theta, c, level)
    return ORHillisResult(
        modality_aucs=mod_mean,
        reader_aucs=theta,
        **_pairwise_differences(mod_mean, denominator, r, df2, level),
        f=float(f_stat),
        df1=df1,
        df2=float(df2),
        p=p,
        var_error=var,
        cov1=cov1,
        cov2=cov2,
        cov3=cov3,
        ms_t=ms_t,
        ms_tr=ms_tr,
        modality_ci_low=lows,
        modality_ci_high=highs,
        modality_df=dfs,
        auc_covariance=c,
        n_readers=r,
        n_cases=n_cases,
        n_positive=int(y.sum()),
        cov_method=cov,
        level=level,
    )
