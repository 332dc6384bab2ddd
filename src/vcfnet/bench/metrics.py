"""``vcfnet bench metrics``: the vectorised bootstrap AUC interval vs a loop of sklearn calls."""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from vcfnet.stats.roc import roc_auc_ci


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-cases", type=int, default=1000, help="cases (default 1000)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument(
        "--naive-boot",
        type=int,
        default=100,
        help="replicates timed for the naive loop (then extrapolated)",
    )


def run(args: argparse.Namespace) -> dict:
    """Vectorised bootstrap AUC interval vs a loop of sklearn roc_auc_score over replicates."""
    n_cases = getattr(args, "n_cases", 1000)
    n_boot = getattr(args, "n_boot", 2000)
    naive_boot = max(1, min(getattr(args, "naive_boot", 100), n_boot))
    rng = np.random.default_rng(0)
    y = rng.random(n_cases) < 0.4
    y[:2] = [True, False]
    s = rng.normal(size=n_cases) + y

    t0 = time.perf_counter()
    res = roc_auc_ci(y, s, method="bootstrap", n_boot=n_boot, rng=1)
    vectorised = time.perf_counter() - t0

    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    t0 = time.perf_counter()
    for _ in range(naive_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        roc_auc_score(y[idx], s[idx])
    naive_per_rep = (time.perf_counter() - t0) / naive_boot
    naive_total = naive_per_rep * n_boot
    t0 = time.perf_counter()
    roc_auc_ci(y, s, method="delong")
    delong = time.perf_counter() - t0
    return {
        "n_cases": n_cases,
        "n_boot": n_boot,
        "bootstrap_vectorised_s": vectorised,
        "bootstrap_naive_s_extrapolated": naive_total,
        "naive_replicates_timed": naive_boot,
        "speedup_vectorised_vs_naive": naive_total / vectorised if vectorised > 0 else float("inf"),
        "delong_s": delong,
        "auc": res.auc,
    }
