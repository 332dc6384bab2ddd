"""Interpretable image statistics of vertebra crops, to measure how real synthetic crops look.

Every crop goes through the model's own preprocessing first (:func:`preprocess_crop`: gray, long
side resized to the dataset's cache size as ``prepare`` stores it, then the plain square resize of
the model input), and is then described by a few dozen numbers a radiologist or physicist can read:

* intensity: histogram moments, quantiles, entropy, clipped fractions, RMS contrast;
* spectrum: slope of the radial power spectrum (log power vs log frequency; white noise 0,
  natural images and radiographs about -2 to -3) over the whole band, its low and high halves,
  and the fraction of power at high frequency (sharpness vs blur);
* gradients: Sobel magnitude statistics, the share of vertical gradients (horizontal edges such as
  endplates), Canny edge density at two scales;
* local contrast: local standard deviation in a 9 px window, and of a coarse (blurred) image;
* texture: grey-level co-occurrence (GLCM) contrast, dissimilarity, homogeneity, energy and
  correlation at 1, 4 and 16 px, averaged over the horizontal and vertical directions, and the
  vertical/horizontal contrast ratio (anisotropy).

Then :func:`classify_real_vs_synthetic` fits a logistic regression on the standardised features,
cross-validated by image, whose ROC AUC says how easily synthetic crops are told from real ones
(0.5: indistinguishable), and :func:`standardized_mean_differences` names the features that give
them away. Pure functions: arrays in, arrays or dataclasses out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

from vcfnet.preprocess import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_IMAGE_SIZE,
    resize_long_side,
    resize_square,
    to_gray_uint8,
)
from vcfnet.stats.roc import AucResult

#: intensity quantiles reported (percent)
QUANTILES: tuple[int, ...] = (1, 5, 25, 50, 75, 95, 99)
#: GLCM offsets in pixels (of the model-size image) and grey levels
GLCM_DISTANCES: tuple[int, ...] = (1, 4, 16)
GLCM_LEVELS = 32
GLCM_PROPS: tuple[str, ...] = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
#: window of the local contrast, pixels
LOCAL_WINDOW = 9
#: absolute Canny thresholds on the [0, 1] image (fixed, so low-contrast images have fewer edges)
CANNY_LOW, CANNY_HIGH = 0.04, 0.10
HIST_BINS = 64


def preprocess_crop(
    crop: np.ndarray,
    *,
    cache_size: int = DEFAULT_CACHE_SIZE,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> np.ndarray:
    """float64 (image_size, image_size) in [0, 1]: a crop as the model sees it (before mean/std).

    Gray (luminance, alpha dropped) -> long side ``cache_size`` (as ``prepare`` stores crops; a
    prepared crop is unchanged) -> plain square resize to ``image_size``.
    """
    gray = to_gray_uint8(np.asarray(crop))
    if max(gray.shape) != cache_size:
        gray = resize_long_side(gray, cache_size)
    return resize_square(gray, image_size).astype(np.float64) / 255.0


def radial_power_spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in cycles/pixel, mean power) over rings of width 1/N, DC excluded.

    The image is mean-subtracted and Hann-windowed (so its borders add no spurious high-frequency
    power); rings run from 1/N to the Nyquist frequency 0.5.
    """
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((img - img.mean()) * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    n = min(h, w)
    ring = np.rint(np.hypot(fy, fx) * n).astype(int)
    n_rings = n // 2
    keep = (ring >= 1) & (ring <= n_rings)
    sums = np.bincount(ring[keep], weights=power[keep], minlength=n_rings + 1)[1:]
    counts = np.bincount(ring[keep], minlength=n_rings + 1)[1:]
    freq = np.arange(1, n_rings + 1) / n
    return freq, sums / np.maximum(counts, 1)


def spectrum_slope(freq: np.ndarray, power: np.ndarray, f_low: float, f_high: float) -> float:
    """Least-squares slope of log10(power) vs log10(freq) over ``f_low <= freq <= f_high``.

    0 for white noise, -2 for a 1/f^2 (Brownian) power spectrum; 0 when the band has no power.
    """
    sel = (freq >= f_low) & (freq <= f_high) & (power > 0)
    if sel.sum() < 3:
        return 0.0
    return float(np.polyfit(np.log10(freq[sel]), np.log10(power[sel]), 1)[0])


def intensity_histogram(image: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Normalised histogram (bins,) of a [0, 1] image (sums to 1)."""
    counts, _ = np.histogram(np.clip(image, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts / max(counts.sum(), 1)


def _intensity(img: np.ndarray) -> dict[str, float]:
    v = img.ravel()
    mean, std = float(v.mean()), float(v.std())
    flat = std < 1e-12
    hist = intensity_histogram(img)
    nz = hist[hist > 0]
    out = {
        "mean": mean,
        "std": std,
        "skewness": 0.0 if flat else float(stats.skew(v)),
        "kurtosis": 0.0 if flat else float(stats.kurtosis(v)),
        "rms_contrast": std / mean if mean > 0 else 0.0,
        "entropy": max(0.0, float(-(nz * np.log2(nz)).sum())),
        "frac_dark": float((v <= 0.02).mean()),
        "frac_bright": float((v >= 0.98).mean()),
    }
    q = np.percentile(v, QUANTILES)
    out.update({f"q{p:02d}": float(x) for p, x in zip(QUANTILES, q, strict=True)})
    out["iqr"] = float(q[QUANTILES.index(75)] - q[QUANTILES.index(25)])
    return out


def _spectrum(img: np.ndarray) -> dict[str, float]:
    freq, power = radial_power_spectrum(img)
    total = power.sum()
    return {
        "ps_slope": spectrum_slope(freq, power, 4 / img.shape[0], 0.45),
        "ps_slope_low": spectrum_slope(freq, power, 2 / img.shape[0], 0.06),
        "ps_slope_high": spectrum_slope(freq, power, 0.06, 0.45),
        "ps_high_fraction": float(power[freq > 0.125].sum() / total) if total > 0 else 0.0,
    }


def _gradients(img: np.ndarray) -> dict[str, float]:
    from skimage.feature import canny
    from skimage.filters import sobel_h, sobel_v

    gy, gx = sobel_h(img), sobel_v(img)  # sobel_h: response to horizontal edges (d/dy)
    mag = np.hypot(gx, gy)
    energy = float((gx**2 + gy**2).sum())
    return {
        "grad_mean": float(mag.mean()),
        "grad_std": float(mag.std()),
        "grad_p90": float(np.percentile(mag, 90)),
        "grad_p99": float(np.percentile(mag, 99)),
        "grad_vertical_share": float((gy**2).sum() / energy) if energy > 0 else 0.5,
        "edge_density": float(
            canny(img, sigma=2.0, low_threshold=CANNY_LOW, high_threshold=CANNY_HIGH).mean()
        ),
        "edge_density_fine": float(
            canny(img, sigma=1.0, low_threshold=CANNY_LOW, high_threshold=CANNY_HIGH).mean()
        ),
    }


def _local_contrast(img: np.ndarray) -> dict[str, float]:
    mean = ndimage.uniform_filter(img, LOCAL_WINDOW, mode="reflect")
    sq = ndimage.uniform_filter(img**2, LOCAL_WINDOW, mode="reflect")
    local_std = np.sqrt(np.maximum(sq - mean**2, 0.0))
    coarse = ndimage.gaussian_filter(img, 8.0, mode="reflect")
    global_std = float(img.std())
    return {
        "local_std_mean": float(local_std.mean()),
        "local_std_p90": float(np.percentile(local_std, 90)),
        "local_cv_mean": float((local_std / np.maximum(mean, 1e-3)).mean()),
        "local_to_global_std": float(local_std.mean() / global_std) if global_std > 0 else 0.0,
        "coarse_std": float(coarse.std()),
    }


def _texture(img: np.ndarray) -> dict[str, float]:
    from skimage.feature import graycomatrix, graycoprops

    q = np.clip(np.floor(img * GLCM_LEVELS), 0, GLCM_LEVELS - 1).astype(np.uint8)
    glcm = graycomatrix(
        q, GLCM_DISTANCES, [0.0, np.pi / 2], levels=GLCM_LEVELS, symmetric=True, normed=True
    )
    out = {}
    for prop in GLCM_PROPS:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.nan_to_num(graycoprops(glcm, prop), nan=1.0 if prop == "correlation" else 0)
        for i, d in enumerate(GLCM_DISTANCES):
            out[f"glcm_{prop}_d{d}"] = float(values[i].mean())
    contrast = graycoprops(glcm, "contrast")[GLCM_DISTANCES.index(4)]  # angles: 0 (x), pi/2 (y)
    out["glcm_contrast_v_over_h"] = float((contrast[1] + 1e-6) / (contrast[0] + 1e-6))
    return out


def image_features(image: np.ndarray) -> dict[str, float]:
    """All features of one preprocessed [0, 1] image, in :data:`FEATURE_NAMES` order."""
    img = np.asarray(image, dtype=np.float64)
    out: dict[str, float] = {}
    for part in (_intensity, _spectrum, _gradients, _local_contrast, _texture):
        out.update(part(img))
    return {k: float(np.nan_to_num(v)) for k, v in out.items()}


#: names of the features, in column order of :func:`feature_matrix`
FEATURE_NAMES: tuple[str, ...] = tuple(image_features(np.full((32, 32), 0.5)))


@dataclass(frozen=True)
class FeatureTable:
    """Features of a set of crops: ``values`` (n, len(names))."""

    names: tuple[str, ...]
    values: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def feature_matrix(
    crops: Sequence[np.ndarray],
    *,
    cache_size: int = DEFAULT_CACHE_SIZE,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> FeatureTable:
    """Features (n, k) of raw crops (any size, gray or colour), each through :func:`preprocess_crop`."""
    rows = [
        list(
            image_features(
                preprocess_crop(c, cache_size=cache_size, image_size=image_size)
            ).values()
        )
        for c in crops
    ]
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return FeatureTable(FEATURE_NAMES, values)


def standardized_mean_differences(real: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """Per column: (mean synthetic - mean real) / pooled SD (Cohen's d); 0 where both are constant."""
    real, synthetic = np.asarray(real, float), np.asarray(synthetic, float)
    n1, n2 = len(real), len(synthetic)
    v1 = real.var(axis=0, ddof=1) if n1 > 1 else np.zeros(real.shape[1])
    v2 = synthetic.var(axis=0, ddof=1) if n2 > 1 else np.zeros(real.shape[1])
    pooled = np.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / max(n1 + n2 - 2, 1))
    diff = synthetic.mean(axis=0) - real.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(pooled > 1e-12, diff / pooled, 0.0)
    return d


@dataclass(frozen=True)
class RealismClassifier:
    """Cross-validated result of the real-vs-synthetic classifier.

    ``pair_wins`` (n_synthetic, n_real): for each synthetic-real pair that fell in the same test
    fold, the fraction of those folds in which the synthetic crop scored higher (ties 1/2); NaN for
    pairs never tested together. ``auc``: the mean over tested pairs, with its CI (0.5: the two sets
    are indistinguishable on these features, 1: fully separable). ``repeat_aucs``: the same from
    each repeat alone.

    Only pairs scored by one model count: every fold's model saw neither crop of the pair, so under
    the null (one distribution) the estimate is unbiased. Pooling out-of-fold scores of different
    folds into one ROC instead is biased towards AUC < 0.5 with many features and few images.
    """

    auc: AucResult
    pair_wins: np.ndarray
    repeat_aucs: np.ndarray
    n_splits: int
    n_repeats: int

    def subset_auc(self, synthetic: np.ndarray, real: np.ndarray, level: float = 0.95) -> AucResult:
        """AUC with CI over the pairs of the boolean masks ``synthetic`` and ``real`` (e.g. one class)."""
        return pair_auc_ci(self.pair_wins[np.ix_(synthetic, real)], level)


def pair_auc_ci(wins: np.ndarray, level: float = 0.95) -> AucResult:
    """AUC = mean of the tested pairs of ``wins`` (n_pos, n_neg; NaN = untested), with a CI.

    DeLong's variance from the structural components (row and column means of ``wins``), or
    Newcombe's interval where :func:`vcfnet.stats.roc.auto_method` picks it (a class with fewer
    than 10 cases, or an AUC of 0 or 1), as :func:`vcfnet.stats.roc.roc_auc_ci` does.
    """
    from vcfnet.stats.roc import auto_method, newcombe_auc_ci, newcombe_variance

    wins = np.asarray(wins, dtype=float)
    rows = ~np.isnan(wins).all(axis=1)
    cols = ~np.isnan(wins).all(axis=0)
    wins = wins[np.ix_(rows, cols)]
    m, n = wins.shape
    if m == 0 or n == 0:
        raise ValueError("no tested pairs")
    auc = float(np.nanmean(wins))
    v10, v01 = np.nanmean(wins, axis=1), np.nanmean(wins, axis=0)
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    method, reason = auto_method(auc, m, n)
    counts = {"estimable": min(m, n) > 1, "n_positive": m, "n_negative": n}
    if method == "newcombe":
        low, high = newcombe_auc_ci(auc, m, n, level)
        var = float(newcombe_variance(auc, m, n))
    else:
        z = stats.norm.ppf(0.5 + level / 2)
        low, high = max(auc - z * np.sqrt(var), 0.0), min(auc + z * np.sqrt(var), 1.0)
    return AucResult(auc, float(low), float(high), float(var), method, level, reason, **counts)


def classify_real_vs_synthetic(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    n_splits: int = 5,
    n_repeats: int = 20,
    C: float = 1.0,
    seed: int = 0,
    level: float = 0.95,
    real_groups: Sequence | None = None,
    synthetic_groups: Sequence | None = None,
) -> RealismClassifier:
    """Logistic regression (L2, balanced class weights) on standardised features, cross-validated
    by image with stratified k-fold repeated ``n_repeats`` times (folds capped by the smaller set's
    size); the AUC counts synthetic-real pairs scored by the same fold's model (see
    :class:`RealismClassifier`).

    ``*_groups``: the radiograph each crop was cut from (default: each crop its own); crops of one
    radiograph are kept in one fold, so that a sibling crop in training does not give them away.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real, synthetic = np.asarray(real, float), np.asarray(synthetic, float)
    n_real, n_synth = len(real), len(synthetic)
    x = np.vstack([real, synthetic])
    y = np.r_[np.zeros(n_real, int), np.ones(n_synth, int)]
    k = min(n_splits, n_real, n_synth)
    if k < 2:
        raise ValueError("need at least 2 real and 2 synthetic crops")
    groups = np.array(
        [f"r{g}" for g in (range(n_real) if real_groups is None else real_groups)]
        + [f"s{g}" for g in (range(n_synth) if synthetic_groups is None else synthetic_groups)]
    )
    if groups.size != y.size:
        raise ValueError("one group per crop, please")
    k = min(k, len(set(groups[y == 0])), len(set(groups[y == 1])))
    if k < 2:
        raise ValueError("need crops of at least 2 real and 2 synthetic radiographs")
    folds = [
        (r, train, test)
        for r in range(n_repeats)
        for train, test in StratifiedGroupKFold(k, shuffle=True, random_state=seed + r).split(
            x, y, groups
        )
    ]
    wins = np.zeros((n_repeats, n_synth, n_real))
    tested = np.zeros((n_repeats, n_synth, n_real))
    for r, train, test in folds:
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
        )
        model.fit(x[train], y[train])
        score = model.decision_function(x[test])
        pos, neg = test[y[test] == 1], test[y[test] == 0]
        s_pos, s_neg = score[y[test] == 1], score[y[test] == 0]
        diff = s_pos[:, None] - s_neg[None, :]
        cell = np.ix_(pos - n_real, neg)
        wins[r][cell] += (diff > 0) + 0.5 * (diff == 0)
        tested[r][cell] += 1
    repeat_aucs = wins.sum(axis=(1, 2)) / np.maximum(tested.sum(axis=(1, 2)), 1)
    with np.errstate(invalid="ignore"):
        pair_wins = wins.sum(axis=0) / tested.sum(axis=0)
    return RealismClassifier(
        auc=pair_auc_ci(pair_wins, level),
        pair_wins=pair_wins,
        repeat_aucs=repeat_aucs,
        n_splits=k,
        n_repeats=n_repeats,
    )
