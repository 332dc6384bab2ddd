"""Bootstrap CIs clustered by patient, with patients whose vertebrae span several classes.

Two independent references:

* Obuchowski's clustered AUC variance (Biometrics 1997; 53: 567-578), written out here: a patient
  bootstrap must reproduce it, while a case bootstrap (patients split apart) must not;
* a brute-force resampling with the documented draw (whole patients, with replacement, stratified
  by the patient's highest class, one multinomial per stratum in increasing order from the same
  seed) whose AUCs come from scikit-learn on the explicitly resampled cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vcfnet.stats.classification import macro_auc_bootstrap
from vcfnet.stats.roc import bootstrap_weights, roc_auc_ci


def obuchowski_variance(y, scores, groups) -> tuple[float, float]:
    """(AUC, variance) of Obuchowski (1997) for clustered data: V10/V01 placement values summed
    per cluster; S10, S01 over clusters holding positives / negatives, S11 their covariance."""
    y = np.asarray(y, dtype=bool)
    pos, neg = scores[y], scores[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    n_pos, n_neg = psi.shape
    theta = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    ids = np.unique(groups)
    m = np.array([np.sum(groups[y] == i) for i in ids])
    n = np.array([np.sum(groups[~y] == i) for i in ids])
    d10 = np.array([v10[groups[y] == i].sum() for i in ids]) - m * theta
    d01 = np.array([v01[groups[~y] == i].sum() for i in ids]) - n * theta
    n_clusters, i10, i01 = ids.size, np.sum(m > 0), np.sum(n > 0)
    s10 = i10 / ((i10 - 1) * n_pos) * np.sum(d10**2)
    s01 = i01 / ((i01 - 1) * n_neg) * np.sum(d01**2)
    s11 = n_clusters / (n_clusters - 1) * np.sum(d10 * d01)
    return float(theta), float(s10 / n_pos + s01 / n_neg + 2 * s11 / (n_pos * n_neg))


def paired_patients(n_patients: int = 60, seed: int = 0):
    """Every patient: one positive and one negative vertebra whose scores share the patient's
    level (perfectly correlated), the positive 0.8 higher."""
    u = np.random.default_rng(seed).normal(0, 1, n_patients)
    y = np.tile([1, 0], n_patients)
    scores = np.repeat(u, 2) + np.tile([0.8, 0.0], n_patients)
    groups = np.repeat([f"p{i:03d}" for i in range(n_patients)], 2)
    return y, scores, groups


def test_obuchowski_reference_reduces_to_delong_for_one_case_per_patient():
    y, s, _ = paired_patients()
    auc, var = obuchowski_variance(y, s, np.arange(y.size))
    delong = roc_auc_ci(y, s, method="delong")
    assert auc == pytest.approx(delong.auc, abs=1e-12)
    assert var == pytest.approx(delong.variance, rel=1e-9)


def test_patient_bootstrap_matches_clustered_variance_and_case_bootstrap_does_not():
    y, s, groups = paired_patients()
    auc, var = obuchowski_variance(y, s, groups)
    clustered = roc_auc_ci(y, s, method="bootstrap", n_boot=2000, groups=groups, rng=1)
    by_case = roc_auc_ci(y, s, method="bootstrap", n_boot=2000, rng=1)
    assert clustered.auc == pytest.approx(auc, abs=1e-12)
    # within-patient correlation shrinks the variance about 5-fold here (S11 < 0)
    assert var < roc_auc_ci(y, s, method="delong").variance / 4
    assert clustered.variance / var == pytest.approx(1.0, abs=0.2)
    assert (clustered.high - clustered.low) / (2 * 1.959964 * np.sqrt(var)) == pytest.approx(
        1.0, abs=0.2
    )
    assert by_case.variance / var > 3  # splitting patients apart: far too wide


def mixed_cohort(seed: int = 3):
    """30 patients with 2-4 vertebrae each, classes 0/1/2 mixed within patients, scores (n, 3)
    with a patient effect."""
    rng = np.random.default_rng(seed)
    labels, groups, scores = [], [], []
    for p in range(30):
        k = int(rng.integers(2, 5))
        cls = rng.integers(0, 3, k)
        if p < 3:
            cls[:] = p  # a few single-class patients in each stratum
        effect = rng.normal(0, 1, 3)
        for c in cls:
            logits = effect + 1.2 * np.eye(3)[c] + rng.normal(0, 0.7, 3)
            scores.append(np.exp(logits) / np.exp(logits).sum())
            labels.append(c)
            groups.append(f"pt{p:02d}")
    return np.array(labels), np.array(scores), np.array(groups)


def brute_force_replicates(strata, groups, n_boot: int, seed: int):
    """Case index arrays of ``n_boot`` patient-bootstrap replicates, drawn as documented."""
    rng = np.random.default_rng(seed)
    ids, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(ids.size)]
    patient_stratum = np.array([strata[m].max() for m in members])
    draws = np.zeros((n_boot, ids.size), dtype=int)
    for value in np.unique(patient_stratum):
        chosen = np.flatnonzero(patient_stratum == value)
        draws[:, chosen] = rng.multinomial(
            chosen.size, np.full(chosen.size, 1 / chosen.size), n_boot
        )
    return [
        np.concatenate([np.tile(members[p], draws[b, p]) for p in range(ids.size)])
        for b in range(n_boot)
    ]


def _auc_or_nan(y, s) -> float:
    return float(roc_auc_score(y, s)) if 0 < np.sum(y) < len(y) else np.nan


def _percentile(reps, level=0.95):
    reps = np.asarray(reps)
    return tuple(np.quantile(reps[np.isfinite(reps)], [0.5 - level / 2, 0.5 + level / 2]))


def test_cohort_has_patients_spanning_classes():
    labels, _, groups = mixed_cohort()
    spans = [np.unique(labels[groups == g]).size for g in np.unique(groups)]
    assert max(spans) == 3 and sum(n > 1 for n in spans) >= 15 and 1 in spans


def test_bootstrap_weights_keep_patients_whole():
    labels, _, groups = mixed_cohort()
    w = bootstrap_weights(labels, 50, np.random.default_rng(0), groups)
    for g in np.unique(groups):
        cols = w[:, groups == g]
        assert (cols == cols[:, :1]).all(), f"{g}'s vertebrae were drawn separately"
    # the number of patients drawn per stratum (highest class) is fixed in every replicate
    ids, first = np.unique(groups, return_index=True)
    per_patient = w[:, first]
    top = np.array([labels[groups == g].max() for g in ids])
    for value in np.unique(top):
        assert (per_patient[:, top == value].sum(axis=1) == np.sum(top == value)).all()


@pytest.mark.parametrize("cls", [0, 1, 2])
def test_one_vs_rest_auc_ci_equals_brute_force_patient_resampling(cls):
    labels, scores, groups = mixed_cohort()
    y, s = (labels == cls).astype(int), scores[:, cls]
    got = roc_auc_ci(y, s, method="bootstrap", n_boot=200, groups=groups, rng=11)
    reps = [_auc_or_nan(y[i], s[i]) for i in brute_force_replicates(y, groups, 200, 11)]
    assert got.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert (got.low, got.high) == pytest.approx(_percentile(reps), abs=1e-12)
    assert got.variance == pytest.approx(np.nanvar(reps, ddof=1), rel=1e-9)


def test_macro_auc_ci_equals_brute_force_patient_resampling():
    labels, scores, groups = mixed_cohort()
    point, low, high = macro_auc_bootstrap(labels, scores, n_boot=120, groups=groups, rng=5)
    reps = [
        np.mean([_auc_or_nan(labels[i] == k, scores[i, k]) for k in range(3)])
        for i in brute_force_replicates(labels, groups, 120, 5)
    ]
    assert point == pytest.approx(
        np.mean([roc_auc_score(labels == k, scores[:, k]) for k in range(3)]), abs=1e-12
    )
    assert (low, high) == pytest.approx(_percentile(reps), abs=1e-12)
