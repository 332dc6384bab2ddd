"""Obuchowski-Rockette-Hillis MRMC against the published Van Dyke (1993) results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.stats.reference import slow_delong, slow_jackknife
from vcfnet.stats.mrmc import jackknife_covariance, or_hillis

# University of Iowa OR-DBM MRMC 2.5 / MRMCaov, empirical AUC, jackknife covariance, RRRC.
VANDYKE_JACKKNIFE = {
    "modality_aucs": (0.89703704, 0.94083736),
    "difference": -0.04380032,
    "f": 4.456319,
    "df2": 15.25967,
    "p": 0.05166569,
    "ci": (-0.0879594986, 0.0003588544),
}

# MRMCaov (Smith & Hillis), mrmc(empirical_auc(truth, rating), treatment, reader, case,
# data = VanDyke, cov = DeLong); summary(est) as printed in the package's user guide
# (brian-j-smith/MRMCaov, docs/jss/MRMCaov.tex, "Covariance Estimation", DeLong method).
VANDYKE_DELONG = {
    "var_error": 0.0007921325,
    "cov1": 0.0003420090,
    "cov2": 0.0003395265,
    "cov3": 0.0002358497,
    "ms_t": 0.004796171,
    "ms_tr": 0.0005510306,
    "f": 4.484854,
    "df2": 15.06611,
    "p": 0.05123303,
    "se": 0.0206825,
    "ci": (-0.0878671960, 0.0002665519),
    "modality_ci": ((0.8253461, 0.9687280), (0.8942155, 0.9874592)),
    "modality_df": (12.59597, 12.56530),
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


def test_vandyke_delong_matches_mrmcaov(vandyke):
    truth, scores = vandyke
    res = or_hillis(truth, scores)
    ref = VANDYKE_DELONG
    assert res.cov_method == "delong"
    for name in ("var_error", "cov1", "cov2", "cov3", "ms_t", "ms_tr", "f", "df2", "p"):
        assert getattr(res, name) == pytest.approx(ref[name], rel=5e-7), name
    assert res.difference[0] == pytest.approx(-0.04380032, rel=5e-7)
    assert res.difference_se[0] == pytest.approx(ref["se"], rel=5e-6)
    assert res.difference_ci_low[0] == pytest.approx(ref["ci"][0], rel=5e-7)
    assert res.difference_ci_high[0] == pytest.approx(ref["ci"][1], rel=5e-6)
    np.testing.assert_allclose(res.modality_ci_low, [c[0] for c in ref["modality_ci"]], rtol=5e-7)
    np.testing.assert_allclose(res.modality_ci_high, [c[1] for c in ref["modality_ci"]], rtol=5e-7)
    np.testing.assert_allclose(res.modality_df, ref["modality_df"], rtol=5e-7)


def test_jackknife_covariance_is_leave_one_out(vandyke):
    truth, scores = vandyke
    flat = scores.reshape(10, -1)[:3]
    aucs, cov = jackknife_covariance(truth, flat)
    ref_aucs, ref_cov = slow_jackknife(truth, flat)  # deletes kernel rows/columns, O(N m n)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-10)
    np.testing.assert_allclose(aucs, ref_aucs, rtol=1e-12)


def test_delong_covariance_matches_kernel_reference(vandyke):
    truth, scores = vandyke
    _, expected = slow_delong(truth, scores.reshape(10, -1))
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
    assert res.p > 0.05
    # pairs in itertools.combinations order: (0, 1), (0, 2), (1, 2)
    means = res.modality_aucs
    np.testing.assert_allclose(
        res.difference, [means[0] - means[1], means[0] - means[2], means[1] - means[2]], atol=1e-15
    )


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
