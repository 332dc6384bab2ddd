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


def _multi_image_manifest(n_patients: int = 90, seed: int = 2) -> pd.DataFrame:
    """Crops of patients with 1-3 radiographs of 1-4 vertebrae each, classes mixed within a
    patient, at two sites."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        site = "A" if p % 3 else "B"
        for image in range(int(rng.integers(1, 4))):
            for _ in range(int(rng.integers(1, 5))):
                label = rng.choice(["acute", "chronic", "pathologic"], p=[0.5, 0.35, 0.15])
                rows.append(
                    {
                        "patient_id": f"{site}{p:03d}",
                        "site": site,
                        "label": label,
                        "source_image": f"{site}{p:03d}-{image}",
                    }
                )
    return pd.DataFrame(rows)


def test_assign_splits_by_patient_with_several_radiographs_each():
    from vcfnet.data.prepare import assign_splits

    manifest = _multi_image_manifest()
    images = manifest.groupby("patient_id")["source_image"].nunique()
    assert images.max() == 3 and (images > 1).mean() > 0.5  # really several per patient
    out = assign_splits(manifest, train_fraction=0.7, val=0.1, seed=0)
    pd.testing.assert_frame_equal(out.drop(columns="split"), manifest)
    assert out["split"].isin(["train", "val", "test"]).all()
    assert out.groupby("patient_id")["split"].nunique().eq(1).all()
    assert out.groupby("source_image")["split"].nunique().eq(1).all()
    # the fractions are of patients (not of crops or radiographs), per site to within a patient
    # or two
    per_patient = out.groupby("patient_id").agg(site=("site", "first"), split=("split", "first"))
    for site, group in per_patient.groupby("site"):
        share = group["split"].value_counts()
        assert share["test"] == pytest.approx(0.3 * len(group), abs=2), site
        assert share["val"] == pytest.approx(0.1 * len(group), abs=2), site
