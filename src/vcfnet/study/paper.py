"""Published numbers of Xu et al., Front. Endocrinol. 2023 (Tables 1-3), for side-by-side reports.

Percentages as printed, converted to fractions. Two printed values fit no confusion matrix (testing
set chronic NPV 86.0, HB672H overall PPV 68.9): rounding slips, kept as printed.
"""

from __future__ import annotations

import pandas as pd

#: Table 1: vertebrae per class and patients per cohort.
TABLE1: dict[str, dict[str, float]] = {
    "Training": {
        "acute": 802,
        "chronic": 688,
        "pathologic": 133,
        "patients": 1168,
        "male": 365,
        "female": 803,
        "age_mean": 72.93,
        "age_sd": 13.56,
    },
    "Testing": {
        "acute": 201,
        "chronic": 173,
        "pathologic": 34,
        "patients": 292,
        "male": 92,
        "female": 200,
        "age_mean": 74.10,
        "age_sd": 12.82,
    },
    "GZFPH": {
        "acute": 62,
        "chronic": 40,
        "pathologic": 9,
        "patients": 97,
        "male": 32,
        "female": 65,
        "age_mean": 71.86,
        "age_sd": 12.29,
    },
    "WHTH": {
        "acute": 113,
        "chronic": 95,
        "pathologic": 9,
        "patients": 147,
        "male": 65,
        "female": 82,
        "age_mean": 71.41,
        "age_sd": 15.31,
    },
    "HB672H": {
        "acute": 94,
        "chronic": 57,
        "pathologic": 25,
        "patients": 143,
        "male": 61,
        "female": 83,
        "age_mean": 71.98,
        "age_sd": 13.87,
    },
    "Prospective": {
        "acute": 38,
        "chronic": 31,
        "pathologic": 5,
        "patients": 57,
        "male": 13,
        "female": 44,
        "age_mean": 73.84,
        "age_sd": 15.87,
    },
}

_T2_COLUMNS = ("auc", "accuracy", "sensitivity", "specificity", "precision", "f1", "ppv", "npv")

# dataset -> class -> (AUC, Acc, Sens, Spec, Prec, F1, PPV, NPV); AUC None for the overall rows.
_TABLE2_RAW: dict[str, dict[str, tuple]] = {
    "Testing": {
        "overall": (None, 85.0, 77.5, 88.7, 77.4, 77.4, 77.5, 88.7),
        "acute": (0.874, 79.9, 78.1, 81.6, 80.5, 79.3, 80.5, 79.3),
        "chronic": (0.899, 82.4, 81.5, 83.0, 77.9, 79.7, 77.9, 86.0),
        "pathologic": (0.935, 92.6, 52.9, 96.3, 56.3, 54.5, 56.3, 95.7),
    },
    "GZFPH": {
        "overall": (None, 83.2, 74.8, 87.4, 75.7, 75.2, 74.8, 87.4),
        "acute": (0.803, 75.7, 75.8, 75.5, 79.7, 77.7, 79.7, 71.2),
        "chronic": (0.906, 86.5, 82.5, 88.7, 80.5, 81.5, 80.5, 90.0),
        "pathologic": (0.769, 87.4, 33.3, 92.2, 27.3, 30.0, 27.3, 94.0),
    },
    "WHTH": {
        "overall": (None, 75.7, 63.6, 81.8, 66.8, 65.2, 63.6, 81.8),
        "acute": (0.779, 64.5, 47.8, 82.7, 75.0, 58.4, 75.0, 59.3),
        "chronic": (0.798, 67.7, 83.2, 55.7, 59.4, 69.3, 59.4, 81.0),
        "pathologic": (0.903, 94.9, 55.6, 96.6, 41.7, 47.6, 41.7, 98.0),
    },
    "HB672H": {
        "overall": (None, 79.2, 68.8, 84.4, 68.6, 68.7, 68.9, 84.4),
        "acute": (0.807, 73.9, 75.5, 72.0, 75.5, 75.5, 75.5, 72.0),
        "chronic": (0.836, 76.1, 70.2, 79.0, 61.5, 65.6, 61.5, 84.7),
        "pathologic": (0.796, 87.5, 40.0, 95.4, 58.8, 47.6, 58.8, 90.6),
    },
    "Prospective": {
        "overall": (None, 82.9, 74.3, 87.2, 76.9, 75.6, 74.3, 87.2),
        "acute": (0.833, 77.0, 65.8, 88.9, 86.2, 74.6, 86.2, 71.1),
        "chronic": (0.857, 79.7, 87.1, 74.4, 71.1, 78.3, 71.1, 88.9),
        "pathologic": (0.757, 91.9, 60.0, 94.2, 42.9, 50.0, 42.9, 97.0),
    },
}


def table2() -> pd.DataFrame:
    """Table 2 as fractions: columns dataset, class, auc, accuracy, ..., npv."""
    rows = []
    for dataset, classes in _TABLE2_RAW.items():
        for cls in ("acute", "chronic", "pathologic", "overall"):
            auc, *pct = classes[cls]
            row = {"dataset": dataset, "class": cls, "auc": auc}
            row.update({k: v / 100 for k, v in zip(_T2_COLUMNS[1:], pct, strict=True)})
            rows.append(row)
    return pd.DataFrame(rows)


def table1() -> pd.DataFrame:
    """Table 1: one row per cohort."""
    return pd.DataFrame([{"dataset": k, **v} for k, v in TABLE1.items()])
