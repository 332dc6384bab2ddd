"""Independent O(m*n) reference implementations, written from the papers' formulas.

They use the explicit pairwise kernel psi(x, z) = [x > z] + 1/2 [x = z] and share no code with
vcfnet.stats (no midranks, no placement_values), so a bug there cannot cancel out here.
"""

from __future__ import annotations

import numpy as np


def kernel(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """psi matrix (positives, negatives) of one score vector ``s`` (n,), ``y`` bool (n,)."""
    x, z = s[y], s[~y]
    return (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])


def slow_delong(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and DeLong et al. (1988) covariance (k, k), n - 1 denominators as pROC."""
    y = np.asarray(y, dtype=bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    psis = [kernel(y, s) for s in scores]
    v10 = np.array([p.mean(axis=1) for p in psis])
    v01 = np.array([p.mean(axis=0) for p in psis])
    aucs = np.array([p.mean() for p in psis])
    m, n = v10.shape[1], v01.shape[1]
    return aucs, np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def slow_jackknife(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and case-jackknife covariance (k, k): every case left out in turn (Efron 1982).

    Each leave-one-out AUC is the mean of the kernel matrix with that case's row (positive) or
    column (negative) deleted: O(N * m * n).
    """
    y = np.asarray(y, dtype=bool)
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    psis = [kernel(y, s) for s in scores]
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    loo = []
    for case in range(y.size):
        if y[case]:
            i = int(np.searchsorted(pos, case))
            loo.append([np.delete(p, i, axis=0).mean() for p in psis])
        else:
            j = int(np.searchsorted(neg, case))
            loo.append([np.delete(p, j, axis=1).mean() for p in psis])
    loo = np.array(loo)
    n_cases = y.size
    centred = loo - loo.mean(axis=0)
    return np.array([p.mean() for p in psis]), (n_cases - 1) / n_cases * centred.T @ centred
