"""Patient-level train/val/test split, stratified by each patient's rarest class, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vcfnet.errors import InputError

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def patient_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: ``patient_id`` and ``label`` = the rarest class among their vertebrae.

    Rarity is counted over all vertebrae in ``rows`` (columns ``patient_id``, ``label``); ties
    break by class name so the result is deterministic.
    """
    counts = rows["label"].value_counts()
    rarity = {label: (int(n), label) for label, n in counts.items()}
    labels = rows.groupby("patient_id", sort=True)["label"].agg(
        lambda s: min(set(s), key=rarity.__getitem__)
    )
    return labels.rename("label").reset_index()


def parse_split(value: str | float | None) -> float | None:
    """``--split``: the train fraction (0 < x < 1, e.g. 0.8), or None for 'none' (all test)."""
    if value is None or str(value).strip().lower() in {"none", ""}:
        return None
    try:
        train = float(value)
    except ValueError as exc:
        raise InputError(
            f"--split {value!r}: give the train fraction (e.g. 0.8) or 'none'"
        ) from exc
    if not 0.0 < train <= 1.0:
        raise InputError(f"--split {value}: the train fraction must be in (0, 1], e.g. 0.8")
    return train


def _systematic_pick(n: int, fraction: float, offset: float) -> np.ndarray:
    """Boolean mask picking ``fraction`` of ``n`` ordered items evenly (systematic sampling)."""
    k = np.arange(n + 1) * fraction + offset
    return np.diff(np.floor(k)) > 0


def split_patients(
    patients: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int = 0
) -> pd.Series:
    """Assign each patient to train, val or test; returns a Series indexed by ``patient_id``.

    ``patients`` has columns ``patient_id`` (unique) and ``label`` (the stratum). Patients are
    ordered stratum by stratum (shuffled with ``seed`` within each) and picked by systematic
    sampling with a seeded random start: test gets ``test_fraction`` of all patients and every
    stratum its share to within one patient (small strata included, since the remainder carries
    over from one stratum to the next); val takes ``val_fraction`` of all patients the same way from
    the rest. A patient therefore never appears in two splits.
    """
    if patients["patient_id"].duplicated().any():
        raise ValueError("split_patients needs one row per patient_id")
    if not (
        0 <= test_fraction <= 1 and 0 <= val_fraction <= 1 and test_fraction + val_fraction <= 1
    ):
        raise InputError(
            f"test fraction {test_fraction} + val fraction {val_fraction} must lie in [0, 1]"
        )
    rng = np.random.default_rng(seed)
    ordered = []
    for label in sorted(patients["label"].unique()):
        ids = np.sort(patients.loc[patients["label"] == label, "patient_id"].to_numpy())
        ordered.append(ids[rng.permutation(len(ids))])
    ids = np.concatenate(ordered) if ordered else np.array([], dtype=object)
    split = np.full(len(ids), "train", dtype=object)
    is_test = _systematic_pick(len(ids), test_fraction, rng.random())
    split[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    val_of_rest = val_fraction / (1 - test_fraction) if test_fraction < 1 else 0.0
    split[rest[_systematic_pick(len(rest), val_of_rest, rng.random())]] = "val"
    out = pd.Series(split, index=pd.Index(ids, name="patient_id"), name="split")
    return out.reindex(patients["patient_id"])


def check_disjoint(manifest: pd.DataFrame, what: str = "the split") -> None:
    """Raise InputError if any patient has rows in more than one split of ``manifest``."""
    n_splits = manifest.groupby("patient_id")["split"].nunique()
    leaking = n_splits[n_splits > 1]
    if len(leaking):
        raise InputError(
            f"{what}: {len(leaking)} patient(s) appear in more than one split (e.g. "
            f"{leaking.index[0]}); re-run 'vcfnet prepare' to split by patient"
        )
