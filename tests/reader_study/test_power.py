"""mrmc_power: alpha at no effect, more readers and cases give more power, Monte Carlo agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from vcfnet.reader_study.power import mrmc_power

PILOT = {"var_error": 2e-3, "cov1": 1e-3, "cov2": 6e-4, "cov3": 4e-4, "ms_tr": 3e-3}


def test_no_effect_gives_alpha():
    assert mrmc_power(PILOT, 5, 100, 0.0, n_pilot_cases=100) == pytest.approx(0.05)


def test_power_grows_with_readers_cases_and_effect():
    base = mrmc_power(PILOT, 3, 100, 0.05, n_pilot_cases=100)
    assert mrmc_power(PILOT, 6, 100, 0.05, n_pilot_cases=100) > base
    assert mrmc_power(PILOT, 3, 300, 0.05, n_pilot_cases=100) > base
    assert mrmc_power(PILOT, 3, 100, 0.10, n_pilot_cases=100) > base


def test_power_matches_a_simulation_of_the_or_statistic():
    """Simulate the OR model's reader AUCs (t=2) and the Hillis F test with known components."""
    rng = np.random.default_rng(0)
    r, delta, s_tr = 6, 0.06, 5e-4
    var, cov1, cov2, cov3 = 2e-3, 1e-3, 6e-4, 4e-4
    # AUC errors per (modality, reader): Cov over the 2r entries with the OR structure
    idx = [(i, j) for i in range(2) for j in range(r)]
    cov = np.array(
        [
            [
                var if a == b else cov1 if a[1] == b[1] else cov2 if a[0] == b[0] else cov3
                for b in idx
            ]
            for a in idx
        ]
    )
    n_sim = 20000
    errors = rng.multivariate_normal(np.zeros(2 * r), cov, n_sim).reshape(n_sim, 2, r)
    tr = rng.normal(0, np.sqrt(s_tr), (n_sim, 2, r))  # reader x modality effects
    aucs = errors + tr + np.array([delta, 0.0])[None, :, None]
    mod_mean = aucs.mean(axis=2)
    ms_t = r * ((mod_mean - mod_mean.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    interaction = aucs - mod_mean[:, :, None] - aucs.mean(axis=1, keepdims=True)
    interaction += aucs.mean(axis=(1, 2))[:, None, None]
    ms_tr = (interaction**2).sum(axis=(1, 2)) / (r - 1)
    denominator = ms_tr + r * max(cov2 - cov3, 0)
    ddf = denominator**2 / (ms_tr**2 / (r - 1))
    rejected = (ms_t / denominator > stats.f.ppf(0.95, 1, ddf)).mean()
    # the pilot: its MS(T:R) expectation, so that s_TR comes back as s_tr
    pilot = {
        "var_error": var,
        "cov1": cov1,
        "cov2": cov2,
        "cov3": cov3,
        "ms_tr": s_tr + var - cov1 - cov2 + cov3,
    }
    predicted = mrmc_power(pilot, r, 100, delta, n_pilot_cases=100)
    assert 0.2 < predicted < 0.9  # a non-trivial point of the power curve
    assert rejected == pytest.approx(predicted, abs=0.03)
