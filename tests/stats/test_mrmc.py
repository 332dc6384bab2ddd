"""Obuchowski-Rockette-Hillis MRMC against the published Van Dyke (1993) results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vcfnet.stats.mrmc import jackknife_covariance, or_hillis
from vcfnet.stats.roc import delong_covariance, placement_values

# University of Iowa OR-DBM MRMC 2.5 / MRMCaov, empirical AUC, jackknife covariance, RRRC.
VANDYKE_JACKKNIFE = {
    "modality_aucs": (0.89703704, 0.94083736),
    "difference": -0.04380032,
    "f": 4.456319,
    "df2": 15.25967,
    "p": 0.05166569,
    "ci": (-0.0879594986, 0.0003588544),
}


@pytest.fixture(scope="module")
def vandyke(shared_data):
    d = pd.read_csv(shared_data / "vandyke" / "vandyke.csv")
    wide = d.pivot_table(index=["treatment", "reader"], columns="case", values="rating")
    truth = d.drop_duplicates("case").set_index("case")["truth"].loc[wide.columns].to_numpy()
    return truth, wide.to_numpy().reshape(2, 5, -1)


def test_vandyke_jackknife_matches_published(vandyke):
    truth, scores = vandyke
    res = or_hillis(truth, scores, cov="jackknife")
    ref = VANDYKE_JACKKNIFE
    rel = 1e-6
    assert res.modality_aucs == pytest.approx(ref["modality_aucs"], rel=rel)
    assert res.difference[0] == pytest.approx(ref["difference"], rel=rel)
    assert res.f == pytest.approx(ref["f"], rel=rel)
    assert res.df1 == 1
    assert res.df2 == pytest.approx(ref["df2"], rel=rel)
    assert res.p == pytest.approx(ref["p"], rel=rel)
    assert res.difference_ci_low[0] == pytest.approx(ref["ci"][0], rel=rel)
    assert res.difference_ci_high[0] == pytest.approx(ref["ci"][1], rel=rel)
    assert res.pairs == ((0, 1),)
    assert res.reader_aucs.shape == (2, 5)
    assert res.n_cases == 114 and res.n_positive == 45
    # The two-sided t-test of the single difference is the F test (t^2 = F).
    assert res.difference_p[0] == pytest.approx(res.p, rel=1e-9)
    json.dumps(res.to_dict())  # JSON-safe


def test_vandyke_delong_close_to_jackknife(vandyke):
    # No published DeLong-covariance result for Van Dyke was found to test against; the DeLong
    # and jackknife covariances of the empirical AUC differ only by O(1/n) factors.
    truth, scores = vandyke
    jk = or_hillis(truth, scores, cov="jackknife")
    dl = or_hillis(truth, scores)
    assert dl.cov_method == "delong"
    np.testing.assert_allclose(dl.reader_aucs, jk.reader_aucs, rtol=1e-12)
    assert dl.difference[0] == pytest.approx(jk.difference[0], rel=1e-12)
    for name in ("var_error", "cov1", "cov2", "cov3"):
        assert getattr(dl, name) == pytest.approx(getattr(jk, name), rel=0.03)
    assert dl.f == pytest.approx(jk.f, rel=0.02)
    assert dl.df2 == pytest.approx(jk.df2, rel=0.03)
    assert 0.04 < dl.p < 0.07
    assert dl.difference_ci_low[0] < dl.difference[0] < dl.difference_ci_high[0]


def test_jackknife_covariance_is_leave_one_out(vandyke):
    truth, scores = vandyke
    flat = scores.reshape(10, -1)[:3]
    aucs, cov = jackknife_covariance(truth, flat)
    y = truth.astype(bool)
    loo = []
    for c in range(y.size):
        keep = np.arange(y.size) != c
        v10, _ = placement_values(y[keep], flat[:, keep])
        loo.append(v10.mean(axis=1))
    loo = np.array(loo)
    n = y.size
    expected = (n - 1) / n * (loo - loo.mean(0)).T @ (loo - loo.mean(0))
    np.testing.assert_allclose(cov, expected, rtol=1e-10)
    np.testing.assert_allclose(aucs, delong_covariance(truth, flat)[0], rtol=1e-12)


def test_delong_covariance_from_placement_values(vandyke):
    truth, scores = vandyke
    flat = scores.reshape(10, -1)
    v10, v01 = placement_values(truth.astype(bool), flat)
    expected = np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]
    np.testing.assert_allclose(or_hillis(truth, scores).auc_covariance, expected, rtol=1e-10)


def test_more_modalities_and_no_difference():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    base = rng.normal(size=(1, 4, 80)) + y
    scores = np.concatenate([base, base + 0.01 * rng.normal(size=(2, 4, 80))])
    res = or_hillis(y, scores, cov="jackknife")
    assert res.modality_aucs.shape == (3,)
    assert res.df1 == 2
    assert len(res.pairs) == 3 and res.difference.shape == (3,)
    assert np.all(res.difference_ci_low <= res.difference) and res.p > 0.05
    assert np.all((res.modality_ci_low <= res.modality_aucs) & (res.modality_aucs <= 1))


@pytest.mark.parametrize(
    ("truth", "scores", "match"),
    [
        (np.array([0, 1, 0]), np.zeros((2, 2)), "modalities, readers, cases"),
        (np.array([0, 1]), np.zeros((2, 2, 3)), "one entry per case"),
        (np.array([0, 2, 1]), np.zeros((2, 2, 3)), "only 0"),
        (np.array([1, 1, 1]), np.zeros((2, 2, 3)), "both positive and negative"),
        (np.array([0, 1, 1]), np.zeros((2, 1, 3)), "at least 2 modalities and 2 readers"),
        (np.array([0, 1, 1]), np.full((2, 2, 3), np.nan), "NaN"),
    ],
)
def test_bad_input(truth, scores, match):
    with pytest.raises(ValueError, match=match):
        or_hillis(truth, scores, cov="jackknife")


def test_bad_cov_method(vandyke):
    with pytest.raises(ValueError, match="delong"):
        or_hillis(*vandyke, cov="bootstrap")
