"""Simulated radiologists (trainee, competent, expert) reading cases alone and aided by the model;
every output is labelled SIMULATED."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vcfnet.errors import ConfigError, InputError
from vcfnet.evaluation.predictions import PROB_COLUMNS
from vcfnet.io.atomic import atomic_write_text
from vcfnet.io.tables import write_csv
from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.reads import READS_COLUMNS, SIMULATED_NOTE, load_truth, simulated_note_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderProfile:
    """A simulated reader: per-class recall when unaided and the weight given to the model."""

    level: str
    recall: tuple[float, float, float]  # acute, chronic, pathologic
    model_weight: float  # mean weight of the model's probabilities in the aided read
    #: log-odds of calling each class when unsure: readers rarely call "pathologic".
    call_bias: tuple[float, float, float] = (0.0, 0.0, -1.5)


#: Unaided recalls close to the paper's Table 3 (trainee ~0.56 overall sensitivity, competent
#: ~0.65, expert ~0.67); weaker readers lean more on the model when aided.
READER_PROFILES: tuple[ReaderProfile, ...] = (
    ReaderProfile("trainee", (0.65, 0.53, 0.15), 0.55),
    ReaderProfile("competent", (0.59, 0.79, 0.46), 0.45),
    ReaderProfile("expert", (0.70, 0.70, 0.38), 0.35),
)


def simulate_reads(
    y_true: np.ndarray,
    model_probs: np.ndarray,
    rng: np.random.Generator,
    profiles: tuple[ReaderProfile, ...] = READER_PROFILES,
) -> list[dict[str, Any]]:
    """Unaided and aided reads of ``y_true`` (n,) class indices by each profile.

    A reader's evidence is ``call_bias + b_true + Gumbel noise`` per class, with ``b`` chosen so
    that the recall of class k is exactly ``recall[k]`` (a softmax choice); the read is the
    arg-max and the confidence scores the softmax. Aided, the reader blends these scores with
    the model's probabilities ``model_probs`` (n, 3) with a per-case weight around
    ``model_weight`` and reads the arg-max, so they partly adopt the model's answer when it
    differs. Returns one dict per read: reader, reader_level, mode, case index, label index, p.
    """
    n, k = model_probs.shape
    reads: list[dict[str, Any]] = []
    for profile in profiles:
        recall = np.clip(np.asarray(profile.recall, dtype=float), 1e-3, 1 - 1e-3)
        bias = np.asarray(profile.call_bias, dtype=float)
        others = np.exp(bias).sum() - np.exp(bias)  # sum over the other classes of e^bias
        # P(correct | class c) = e^(b_c + a_c) / (e^(b_c + a_c) + others_c) = recall_c
        boost = np.log(recall / (1 - recall) * others) - bias
        evidence = rng.gumbel(size=(n, k)) + bias
        evidence[np.arange(n), y_true] += boost[y_true]
        unaided = np.exp(evidence - evidence.max(axis=1, keepdims=True))
        unaided /= unaided.sum(axis=1, keepdims=True)
        concentration = 8.0
        w = rng.beta(
            profile.model_weight * concentration, (1 - profile.model_weight) * concentration, n
        )[:, None]
        aided = (1 - w) * unaided + w * model_probs
        for mode, probs in (("unaided", unaided), ("aided", aided)):
            labels = probs.argmax(axis=1)
            for i in range(n):
                reads.append(
                    {
                        "reader": f"sim_{profile.level}",
                        "reader_level": profile.level,
                        "mode": mode,
                        "case": i,
                        "label": int(labels[i]),
                        "p": probs[i],
                    }
                )
    return reads


def stratified_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-stratified random ``fraction`` of the cases (the paper's 30%)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(labels.size)
    keep = []
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        keep.append(rng.choice(idx, size=max(1, round(fraction * idx.size)), replace=False))
    return np.sort(np.concatenate(keep))


def synth_reads_frame(
    truth_df: pd.DataFrame, *, seed: int = 0, fraction: float = 1.0
) -> pd.DataFrame:
    """Simulated reads (READS_COLUMNS) of a predictions table holding the model's p_*."""
    truth = load_truth(truth_df)
    if truth.model_probs is None:
        raise InputError(
            "synth-readers needs the model's probabilities (p_acute, p_chronic, p_pathologic) "
            "in the truth file: give the predictions.csv written by 'vcfnet evaluate'"
        )
    rng = np.random.default_rng(seed)
    keep = stratified_subset(truth.y, fraction, rng)
    reads = simulate_reads(truth.y[keep], truth.model_probs[keep], rng)
    return pd.DataFrame(
        {
            "case_id": [truth.case_ids[keep[r["case"]]] for r in reads],
            "reader": [r["reader"] for r in reads],
            "reader_level": [r["reader_level"] for r in reads],
            "mode": [r["mode"] for r in reads],
            "label": [CLASS_NAMES[r["label"]] for r in reads],
            **{col: [float(r["p"][k]) for r in reads] for k, col in enumerate(PROB_COLUMNS)},
        },
        columns=list(READS_COLUMNS),
    )


def write_simulated_reads(
    truth_df: pd.DataFrame, out_csv: Path | str, *, seed: int = 0, fraction: float = 1.0
) -> pd.DataFrame:
    """Simulate reads (see :func:`synth_reads_frame`), write ``out_csv`` and, beside it, the
    ``simulated: true`` JSON note (``reads.csv`` -> ``reads.json``); returns the reads."""
    reads = synth_reads_frame(truth_df, seed=seed, fraction=fraction)
    write_csv(reads, out_csv)
    note = {
        "simulated": True,
        "note": SIMULATED_NOTE,
        "seed": seed,
        "fraction": fraction,
        "profiles": [
            {
                "reader": f"sim_{p.level}",
                "level": p.level,
                "unaided_recall": list(p.recall),
                "model_weight": p.model_weight,
                "call_bias": list(p.call_bias),
            }
            for p in READER_PROFILES
        ],
        "n_cases": int(reads["case_id"].nunique()),
    }
    atomic_write_text(simulated_note_path(out_csv), json.dumps(note, indent=2) + "\n")
    log.info("wrote %d simulated reads of %d cases to %s", len(reads), note["n_cases"], out_csv)
    return reads
