"""Calibration of predicted probabilities: top-label reliability bins and expected calibration error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins (n_bins): mean confidence, accuracy and count per bin; ECE.

    Empty bins have NaN confidence and accuracy and count 0.
    """

    edges: np.ndarray  # (n_bins + 1,)
    confidence: np.ndarray  # (n_bins,)
    accuracy: np.ndarray  # (n_bins,)
    counts: np.ndarray  # (n_bins,)
    ece: float


def reliability(y_true, probs, n_bins: int = 10) -> Reliability:
    """Top-label reliability of class probabilities ``probs`` (n, C) for true indices ``y_true`` (n,).

    ECE = sum_b (n_b / n) |accuracy_b - confidence_b| over equal-width bins of the top probability.
    """
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError(f"need y_true (n,) and probs (n, C); got {y.shape} and {p.shape}")
    if y.size == 0:
        raise ValueError("no cases: calibration needs at least one case")
    if not np.isfinite(p).all():
        raise ValueError("probs contain NaN or infinite values")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(bins, confidence, n_bins) / counts
        acc = np.bincount(bins, correct.astype(float), n_bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] / y.size * np.abs(acc[filled] - conf[filled])))
    return Reliability(edges, conf, acc, counts, ece)
