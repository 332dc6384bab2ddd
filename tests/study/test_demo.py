"""The demo end to end at a tiny scale: every step runs, the report has its sections, re-runs skip."""

import re

import pytest

from vcfnet.study import localiser as localiser_step
from vcfnet.study.config import DemoConfig
from vcfnet.study.demo import run_study


@pytest.fixture(scope="module", autouse=True)
def short_localiser():
    """The quick demo's localiser shortened to 2 steps for this module's runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(localiser_step.QUICK, "epochs", 1)
        patch.setitem(localiser_step.QUICK, "steps_per_epoch", 2)
        yield


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, real_samples):
    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(
        out=out,
        quick=True,
        scale=0.03,
        epochs=1,
        image_size=32,
        size="256x320",
        workers=1,
        samples=real_samples,
    )
    run_study(cfg)
    return out, cfg


def test_report_has_every_section_and_figure(demo_dir):
    out, _ = demo_dir
    html = (out / "report.html").read_text()
    for section in (
        "Table 1",
        "Table 2",
        "Figure 5",
        "Table 3",
        "Figure 6",
        "MRMC",
        "Crops",
        "Training",
        "Model card",
        "SYNTHETIC",
        "Limitations",
        "Vertebra localiser",
    ):
        assert section in html, section
    assert "Real crops" in html  # --samples: the real crops beside the synthetic ones
    assert len(re.findall(r'src="data:image/png;base64,', html)) >= 10  # self-contained figures
    for site in ("SITE1", "GZFPH", "WHTH", "HB672H", "PROSPECTIVE"):
        assert site in html
    assert (out / "report.md").is_file()
    for sub in (
        "cohort/cohort.json",
        "data/SITE1/manifest.csv",
        "run/checkpoints/best.pt",
        "evaluation/predictions.csv",
        "readers/mrmc.json",
        "readers/reads.json",
        "localiser/run/checkpoints/best.pt",
        "localiser/metrics.json",
        "localiser/overlay.png",
        "figures/crops_per_class.png",
    ):
        assert (out / sub).is_file(), sub


def _table2_rows(report_md: str) -> dict[tuple[str, str], list[str]]:
    """(site, class) -> cells of the report's own Table 2 (12 columns; the paper's has 10)."""
    rows = {}
    for line in report_md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # (the localiser's per-site table has 12 columns too: its second cell is a count)
        if len(cells) == 12 and cells[2].isdigit() and not cells[1].isdigit():
            rows[(cells[0], cells[1])] = cells
    return rows


def test_table2_numbers_match_the_predictions(demo_dir):
    """Table 2's n, top-1 and per-class AUC recomputed from evaluation/predictions.csv."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    out, _ = demo_dir
    preds = pd.read_csv(out / "evaluation" / "predictions.csv")
    probs = preds[["p_acute", "p_chronic", "p_pathologic"]].to_numpy()
    classes = np.array(["acute", "chronic", "pathologic"])
    assert (preds["pred"] == classes[probs.argmax(axis=1)]).all()
    table = _table2_rows((out / "report.md").read_text())
    assert {site for site, _ in table} == set(preds["site"])
    for site, sub in preds.groupby("site"):
        overall = table[(site, "overall")]
        assert int(overall[2]) == len(sub), site
        assert float(overall[11]) == pytest.approx(
            100 * (sub["label"] == sub["pred"]).mean(), abs=0.051
        ), site
        for c in classes:
            y = (sub["label"] == c).to_numpy()
            assert int(table[(site, c)][2]) == y.sum(), (site, c)
            cell = table[(site, c)][3]
            if cell.startswith("not estimable"):  # a single case of the class (or of the rest)
                assert min(y.sum(), len(y) - y.sum()) == 1, (site, c)
            elif 0 < y.sum() < len(y):
                auc = float(cell.split()[0])
                assert auc == pytest.approx(roc_auc_score(y, sub[f"p_{c}"]), abs=5.1e-4), (site, c)


def test_rerun_skips_finished_steps(demo_dir):
    out, cfg = demo_dir
    before = (out / "run" / "checkpoints" / "best.pt").stat().st_mtime_ns
    (out / "budget.json").write_text('{"rung": 0}')  # left by an earlier, budgeted run
    events = []
    run_study(cfg, on_step=events.append)
    assert not (out / "budget.json").exists()  # the size is given: no budget record stays
    assert (out / "run" / "checkpoints" / "best.pt").stat().st_mtime_ns == before
    assert events and {e.status for e in events} == {"skipped"}


def test_changed_localiser_sizes_retrain_it_from_scratch(demo_dir, monkeypatch):
    """A finished step run again with other parameters starts afresh (it does not resume a run
    made with the old ones); the steps before it are skipped."""
    out, cfg = demo_dir
    monkeypatch.setitem(localiser_step.QUICK, "epochs", 2)
    events = []
    run_study(cfg, on_step=events.append)
    status = {e.name: e.status for e in events if e.status != "started"}
    assert status["train"] == "skipped" and status["localiser"] == status["report"] == "done"
    history = (out / "localiser" / "run" / "metrics.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # header + the two epochs of the new run


def test_no_raw_identity_in_prepared_data(demo_dir):
    """The synthetic DICOMs carry fake names and IDs; none may reach the prepared datasets."""
    import pydicom

    out, _ = demo_dir
    dcm = next((out / "cohort" / "GZFPH" / "images").glob("*.dcm"))
    ds = pydicom.dcmread(dcm, stop_before_pixels=True)
    secrets = [str(ds.PatientName), str(ds.PatientID)]
    for path in (out / "data").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in blob, (secret, path)
            assert dcm.stem not in path.name


def test_small_samples_are_marked_and_never_shown_as_certain(demo_dir):
    """At this tiny scale every external class is small: the report marks the rows, prints no
    zero-width AUC interval, and gives percentages their Wilson intervals (issue 19)."""
    import pandas as pd

    out, _ = demo_dir
    md = (out / "report.md").read_text()
    assert "1.000 (1.000-1.000)" not in md and "0.000 (0.000-0.000)" not in md
    metrics = pd.read_csv(out / "evaluation" / "metrics.csv")
    small = metrics[(metrics["class"] != "overall") & (metrics["auc_ci_method"] == "newcombe")]
    assert len(small) and md.count("†") >= len(small)
    table3 = md[md.index("Table 3") :]
    readers = pd.read_csv(out / "readers" / "readers.csv")
    one_case = readers[(readers["class"] != "overall") & (readers["n"] == 1)]
    assert len(one_case) == 0 or "not estimable" in table3
    assert re.search(r"\| \d+\.\d \(\d+\.\d-\d+\.\d\) \|", md)  # a percentage with its interval
