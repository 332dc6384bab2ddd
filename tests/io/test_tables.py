"""CSV files vcfnet writes are safe to open in a spreadsheet."""

from __future__ import annotations

import pandas as pd

from tests.data.test_prepare import make_cohort
from vcfnet.data.config import PrepareConfig
from vcfnet.data.prepare import prepare_dataset
from vcfnet.io.tables import write_csv

ATTACK = '=HYPERLINK("http://x","click")'


def test_formula_cells_are_neutralised_numbers_are_not(tmp_path):
    df = pd.DataFrame({"site": [ATTACK, "+1", "@SUM(A1)", "-x", "ok"], "p": [-0.5, 1, 2, 3, 4]})
    write_csv(df, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["site"].tolist() == ["'" + ATTACK, "'+1", "'@SUM(A1)", "'-x", "ok"]
    assert back["p"].tolist() == [-0.5, 1, 2, 3, 4]


def test_a_site_named_like_a_formula_does_not_reach_the_manifest_raw(tmp_path):
    images, xml = make_cohort(tmp_path, n_patients=2)
    out = tmp_path / "ds"
    prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, site=ATTACK))
    sites = pd.read_csv(out / "manifest.csv")["site"]
    assert len(sites) == 4 and (sites == "'" + ATTACK).all()
