"""Realism features (vcfnet.synth.realism) on constructed images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from vcfnet.synth.realism import (
    FEATURE_NAMES,
    classify_real_vs_synthetic,
    feature_matrix,
    image_features,
    intensity_histogram,
    pair_auc_ci,
    preprocess_crop,
    radial_power_spectrum,
    spectrum_slope,
    standardized_mean_differences,
)

N = 128


def power_law_noise(exponent: float, rng: np.random.Generator, n: int = N) -> np.ndarray:
    """[0, 1] image whose power spectrum falls as 1/f^exponent (0: white noise)."""
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    img = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * f ** (-exponent / 2)))
    return (img - img.min()) / (img.max() - img.min())


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0, 3.0])
def test_power_spectrum_slope_of_power_law_noise(exponent):
    rng = np.random.default_rng(int(exponent))
    slopes = [image_features(power_law_noise(exponent, rng))["ps_slope"] for _ in range(3)]
    assert np.mean(slopes) == pytest.approx(-exponent, abs=0.15)


def test_radial_spectrum_rings_and_slope_of_a_known_power_law():
    freq, power = radial_power_spectrum(np.random.default_rng(0).random((N, N)))
    assert freq[0] == pytest.approx(1 / N) and freq[-1] == pytest.approx(0.5)
    assert power.shape == freq.shape and (power > 0).all()
    assert spectrum_slope(freq, 3.0 * freq**-2.5, 0.01, 0.5) == pytest.approx(-2.5)
    assert spectrum_slope(freq, np.zeros_like(freq), 0.01, 0.5) == 0.0


def test_flat_image_has_no_edges_no_contrast_and_finite_features():
    f = image_features(np.full((N, N), 0.4))
    assert tuple(f) == FEATURE_NAMES
    assert all(np.isfinite(v) for v in f.values())
    for name in ("edge_density", "edge_density_fine", "grad_mean", "std", "local_std_mean"):
        assert f[name] == pytest.approx(0.0, abs=1e-6), name
    assert f["mean"] == pytest.approx(0.4) and f["q50"] == pytest.approx(0.4)
    assert f["entropy"] == 0.0 and f["glcm_energy_d1"] == pytest.approx(1.0)


def test_horizontal_edges_are_vertical_gradients_and_edges():
    img = np.zeros((N, N))
    img[N // 3 : 2 * N // 3] = 0.8  # a bright horizontal band ("endplates" at its borders)
    f = image_features(img)
    assert f["edge_density"] == pytest.approx(2 * N / N**2, rel=0.2)  # two edge lines
    assert f["grad_vertical_share"] > 0.99
    assert f["glcm_contrast_v_over_h"] > 100  # contrast only across the band (vertically)
    rotated = image_features(img.T)
    assert rotated["grad_vertical_share"] < 0.01
    assert rotated["glcm_contrast_v_over_h"] < 0.01


def test_intensity_statistics_of_known_distributions():
    rng = np.random.default_rng(1)
    uniform = image_features(rng.random((N, N)))
    assert uniform["mean"] == pytest.approx(0.5, abs=0.01)
    assert uniform["q25"] == pytest.approx(0.25, abs=0.01)
    assert uniform["iqr"] == pytest.approx(0.5, abs=0.02)
    assert uniform["kurtosis"] == pytest.approx(-1.2, abs=0.05)  # excess kurtosis of U(0, 1)
    assert uniform["entropy"] == pytest.approx(6.0, abs=0.01)  # log2 of 64 equal bins
    assert intensity_histogram(rng.random((N, N))).sum() == pytest.approx(1.0)
    skewed = image_features(rng.exponential(0.1, (N, N)).clip(0, 1))
    assert skewed["skewness"] > 1.5


def test_blur_lowers_sharpness_features():
    from scipy.ndimage import gaussian_filter

    img = power_law_noise(1.0, np.random.default_rng(2))
    sharp, blurred = image_features(img), image_features(gaussian_filter(img, 2.0))
    for name in ("ps_high_fraction", "grad_mean", "local_std_mean", "glcm_contrast_d1"):
        assert blurred[name] < sharp[name], name
    assert blurred["ps_slope_high"] < sharp["ps_slope_high"] - 1


def test_preprocess_crop_is_the_models_view():
    rgba = np.zeros((100, 300, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 7  # alpha is dropped
    out = preprocess_crop(rgba, image_size=64)
    assert out.shape == (64, 64) and out.dtype == np.float64
    assert out == pytest.approx(200 / 255)
    table = feature_matrix([rgba, np.zeros((50, 40), np.uint8)], image_size=64)
    assert table.values.shape == (2, len(FEATURE_NAMES))
    assert table.column("mean") == pytest.approx([200 / 255, 0.0])


def test_standardized_mean_differences():
    rng = np.random.default_rng(3)
    real = rng.normal(0, 1, (4000, 3))
    synth = rng.normal(0, 1, (4000, 3)) + np.array([0.0, 1.0, -2.0])
    real[:, 2] = synth[:, 2] = 5.0  # constant column: 0, not a division by zero
    d = standardized_mean_differences(real, synth)
    assert d[:2] == pytest.approx([0.0, 1.0], abs=0.06)
    assert d[2] == 0.0


def _textures(exponent: float, n: int, rng) -> np.ndarray:
    return feature_matrix(
        [(power_law_noise(exponent, rng, 64) * 255).astype(np.uint8) for _ in range(n)],
        cache_size=64,
        image_size=64,
    ).values


def test_classifier_auc_is_chance_for_one_generator_and_one_for_two():
    rng = np.random.default_rng(4)
    a, b, white = _textures(2.0, 30, rng), _textures(2.0, 30, rng), _textures(0.0, 30, rng)
    same = classify_real_vs_synthetic(a, b, n_repeats=5)
    assert same.pair_wins.shape == (30, 30)  # (synthetic, real)
    assert 0.3 < same.auc.auc < 0.7 and same.auc.low < 0.5 < same.auc.high
    assert same.auc.method == "delong" and same.repeat_aucs.shape == (5,)
    different = classify_real_vs_synthetic(a, white, n_repeats=3)
    assert different.auc.auc > 0.95 and different.auc.low > 0.8 and different.n_splits == 5
    with pytest.raises(ValueError, match="at least 2"):
        classify_real_vs_synthetic(a[:1], b)


@pytest.mark.slow  # one draw at chance: test_classifier_auc_is_chance_for_one_generator_and_one_for_two
def test_null_auc_over_many_draws_is_unbiased():
    # few images, many features: pooling out-of-fold scores would sit below 0.5 here
    rng = np.random.default_rng(5)
    aucs = [
        classify_real_vs_synthetic(
            rng.normal(size=(15, 40)), rng.normal(size=(40, 40)), n_repeats=4, seed=s
        ).auc.auc
        for s in range(12)
    ]
    assert np.mean(aucs) == pytest.approx(0.5, abs=0.06)


def test_crops_of_one_radiograph_stay_in_one_fold():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(20, 5))
    # synthetic: 10 radiographs x 2 identical crops, otherwise the same distribution as real
    synth = np.repeat(rng.normal(size=(10, 5)), 2, axis=0)
    groups = np.repeat(np.arange(10), 2)
    grouped = classify_real_vs_synthetic(real, synth, synthetic_groups=groups, n_repeats=5)
    leaky = classify_real_vs_synthetic(real, synth, n_repeats=5)
    assert grouped.auc.auc < leaky.auc.auc  # a twin in training gives a crop away
    assert grouped.auc.auc < 0.75
    with pytest.raises(ValueError, match="one group per crop"):
        classify_real_vs_synthetic(real, synth, synthetic_groups=groups[:5])


def test_pair_auc_ci_matches_roc_auc_ci_when_every_pair_is_tested():
    from vcfnet.stats.roc import roc_auc_ci

    rng = np.random.default_rng(7)
    pos, neg = rng.normal(0.5, 1, 25), rng.normal(0, 1, 30)
    diff = pos[:, None] - neg[None, :]
    wins = (diff > 0) + 0.5 * (diff == 0)
    ours = pair_auc_ci(wins)
    ref = roc_auc_ci(np.r_[np.ones(25), np.zeros(30)], np.r_[pos, neg], method="delong")
    assert (ours.auc, ours.low, ours.high) == pytest.approx((ref.auc, ref.low, ref.high))
    wins[0, :] = np.nan  # an untested positive is left out
    assert pair_auc_ci(wins).n_positive == 24
    small = pair_auc_ci(np.ones((5, 5)))  # perfect separation, few cases: Newcombe
    assert small.auc == 1.0 and small.method == "newcombe" and small.low < 1.0
