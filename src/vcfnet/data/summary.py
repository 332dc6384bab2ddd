"""Table 1 of a prepared cohort: vertebrae per class, patients, age and sex per site and split."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from vcfnet.data.manifest import SPLITS
from vcfnet.labels import CLASS_NAMES


def cohort_table(manifests: Mapping[str, pd.DataFrame], *, by_split: bool = True) -> pd.DataFrame:
    """One row per cohort (``name`` or ``name/split``): vertebrae, patients, age, sex, classes.

    ``manifests`` maps a cohort name to its manifest (columns label, patient_id, split, age, sex).
    Age and sex are summarised over patients (first row of each patient), classes over vertebrae.
    """
    rows = []
    for name, df in manifests.items():
        if by_split and df["split"].nunique() > 1:
            order = {split: i for i, split in enumerate(SPLITS)}
            groups = sorted(df.groupby("split"), key=lambda g: order.get(g[0], len(order)))
        else:
            groups = [(None, df)]
        for split, part in groups:
            patients = part.drop_duplicates("patient_id")
            age = pd.to_numeric(patients["age"], errors="coerce")
            sex = patients["sex"].astype(str).str.upper()
            row = {
                "cohort": name if split is None else f"{name}/{split}",
                "vertebrae": len(part),
                "patients": len(patients),
                "age_mean": float(np.nanmean(age)) if age.notna().any() else float("nan"),
                "age_sd": float(np.nanstd(age, ddof=1)) if age.notna().sum() > 1 else float("nan"),
                "male": int((sex == "M").sum()),
                "female": int((sex == "F").sum()),
            }
            counts = part["label"].value_counts()
            row.update({c: int(counts.get(c, 0)) for c in CLASS_NAMES})
            rows.append(row)
    return pd.DataFrame(rows)
