import pandas as pd

from vcfnet.data.summary import cohort_table


def test_cohort_table_counts_patients_once():
    df = pd.DataFrame(
        {
            "label": ["acute", "acute", "chronic", "pathologic"],
            "patient_id": ["c", "a", "a", "b"],
            "split": ["test", "train", "train", "train"],
            "age": [80, 70, 70, 50],
            "sex": ["F", "F", "F", "M"],
        }
    )
    t = cohort_table({"SITE1": df})
    assert list(t["cohort"]) == ["SITE1/train", "SITE1/test"]
    t = t.set_index("cohort")
    assert t.loc["SITE1/train", "vertebrae"] == 3 and t.loc["SITE1/train", "patients"] == 2
    assert t.loc["SITE1/train", "male"] == 1 and t.loc["SITE1/train", "age_mean"] == 60
    assert t.loc["SITE1/test", "acute"] == 1
    assert cohort_table({"X": df}, by_split=False).iloc[0]["vertebrae"] == 4
