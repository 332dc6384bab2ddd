"""Patient split: disjoint, seeded, stratified by each patient's rarest class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vcfnet.data.split import check_disjoint, parse_split, patient_labels, split_patients
from vcfnet.errors import InputError


def _patients(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice(["acute", "chronic", "pathologic"], size=n, p=[0.5, 0.35, 0.15])
    return pd.DataFrame({"patient_id": [f"p{i:04d}" for i in range(n)], "label": labels})


def test_split_fractions_per_class():
    patients = _patients()
    split = split_patients(patients, test_fraction=0.2, val_fraction=0.1, seed=0)
    assert split.index.is_unique and set(split) == {"train", "val", "test"}
    joined = patients.set_index("patient_id").join(split)
    for label, group in joined.groupby("label"):
        share = group["split"].value_counts(normalize=True)
        assert share["test"] == pytest.approx(0.2, abs=1 / len(group)), label
        assert share["val"] == pytest.approx(0.1, abs=2 / len(group)), label
    assert split.value_counts().to_dict() == {"train": 280, "test": 80, "val": 40}


def test_small_strata_still_reach_test():
    patients = pd.DataFrame({"patient_id": list("abcdefghij"), "label": list("abcdefghij")})
    split = split_patients(patients, 0.2, 0.1, seed=0)
    assert split.value_counts().to_dict() == {"train": 7, "test": 2, "val": 1}


def test_split_is_seeded():
    patients = _patients()
    a = split_patients(patients, 0.2, 0.1, seed=3)
    b = split_patients(patients.sample(frac=1, random_state=5), 0.2, 0.1, seed=3)
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())
    c = split_patients(patients, 0.2, 0.1, seed=4)
    assert (a.sort_index() != c.sort_index()).any()


def test_patient_label_is_rarest_class():
    rows = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b", "b", "c", "d", "d"],
            "label": ["acute", "pathologic", "acute", "chronic", "acute", "chronic", "acute"],
        }
    )
    labels = patient_labels(rows).set_index("patient_id")["label"]
    assert labels.to_dict() == {"a": "pathologic", "b": "chronic", "c": "acute", "d": "chronic"}


def test_check_disjoint_detects_leak():
    ok = pd.DataFrame({"patient_id": ["a", "a", "b"], "split": ["train", "train", "test"]})
    check_disjoint(ok)
    with pytest.raises(InputError, match="more than one split"):
        check_disjoint(ok.assign(split=["train", "test", "test"]))


def test_parse_split():
    assert parse_split("0.8") == 0.8
    assert parse_split("none") is None and parse_split("None") is None
    for bad in ("abc", "0", "1.5"):
        with pytest.raises(InputError):
            parse_split(bad)
