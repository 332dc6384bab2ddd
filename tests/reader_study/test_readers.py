"""Reader study: Table 3 from the paper's counts, a simulated study end to end, bad reads files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vcfnet.cli import main
from vcfnet.errors import InputError
from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.analysis import reader_table
from vcfnet.reader_study.reads import load_reads, load_truth
from vcfnet.reader_study.report import run_reader_study
from vcfnet.synth.readers import READER_PROFILES, simulate_reads, synth_reads_frame

NAMES = np.array(CLASS_NAMES)

# A confusion matrix (rows = true acute/chronic/pathologic: 80/57/13 cases as in the paper's
# collaboration dataset; columns = predicted) whose one-vs-rest tables give the printed
# deep-learning rows of Table 3: sensitivity 67.5/68.4/30.8 and PPV 73.0/60.9/33.3.
DL_CONFUSION = np.array([[54, 22, 4], [14, 39, 4], [6, 3, 4]])

# Table 3, "Deep learning model" rows (percent): accuracy, sensitivity, specificity, precision,
# F1, PPV, NPV.
TABLE3_DL = {
    "overall": (76.4, 64.7, 82.3, 65.0, 64.8, 64.7, 82.3),
    "acute": (69.3, 67.5, 71.4, 73.0, 70.1, 73.0, 65.8),
    "chronic": (71.3, 68.4, 73.1, 60.9, 64.5, 60.9, 79.1),
    "pathologic": (88.7, 30.8, 94.2, 33.3, 32.0, 33.3, 93.5),
}
METRICS = ("accuracy", "sensitivity", "specificity", "precision", "f1", "ppv", "npv")


def _cases_from_confusion(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, pred = [], []
    for t in range(cm.shape[0]):
        for p in range(cm.shape[1]):
            y += [t] * cm[t, p]
            pred += [p] * cm[t, p]
    return np.array(y), np.array(pred)


def _predictions(n_per_class=(16, 12, 8), seed=0, separation=1.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    logits = rng.normal(size=(y.size, 3))
    logits[np.arange(y.size), y] += separation
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return pd.DataFrame(
        {
            "case_id": [f"case{i:03d}" for i in range(y.size)],
            "patient_id": [f"pat{i // 2:03d}" for i in range(y.size)],
            "site": "synthetic",
            "label": NAMES[y],
            "pred": NAMES[p.argmax(axis=1)],
            "p_acute": p[:, 0],
            "p_chronic": p[:, 1],
            "p_pathologic": p[:, 2],
        }
    )


def test_table3_deep_learning_rows_from_counts():
    y, pred = _cases_from_confusion(DL_CONFUSION)
    assert np.bincount(y).tolist() == [80, 57, 13]
    truth_df = pd.DataFrame(
        {"case_id": [f"c{i}" for i in range(y.size)], "label": NAMES[y], "pred": NAMES[pred]}
    )
    # Two "readers" who answer as the model does, so the table has reader rows too.
    reads_df = pd.concat(
        truth_df.assign(reader=r, mode=m, label=NAMES[pred])
        for r in ("r1", "r2")
        for m in ("unaided", "aided")
    )
    truth = load_truth(truth_df)
    table = reader_table(truth, load_reads(reads_df, truth))
    for reader, mode in (("model", "model"), ("r1", "unaided"), ("r2", "aided")):
        rows = table[(table["reader"] == reader) & (table["mode"] == mode)].set_index("class")
        for cls, printed in TABLE3_DL.items():
            ours = [round(100 * rows.loc[cls, m], 1) for m in METRICS]
            assert ours == pytest.approx(printed, abs=0.051), (reader, cls)
        # A categorical read's AUC is the single-point AUC (sensitivity + specificity) / 2.
        for cls in CLASS_NAMES:
            expected = (rows.loc[cls, "sensitivity"] + rows.loc[cls, "specificity"]) / 2
            assert rows.loc[cls, "auc"] == pytest.approx(expected)


def test_simulated_readers_match_profiles():
    rng = np.random.default_rng(1)
    n = 6000
    y = rng.integers(0, 3, n)
    model = np.full((n, 3), 0.1)
    model[np.arange(n), y] = 0.8  # a model that is always right
    reads = simulate_reads(y, model, rng)
    by = {(r["reader_level"], r["mode"], r["case"]): r["label"] for r in reads}
    for profile in READER_PROFILES:
        unaided = np.array([by[(profile.level, "unaided", i)] for i in range(n)])
        aided = np.array([by[(profile.level, "aided", i)] for i in range(n)])
        for k in range(3):
            recall = (unaided[y == k] == k).mean()
            assert recall == pytest.approx(profile.recall[k], abs=0.04)
        assert (aided == y).mean() > (unaided == y).mean() + 0.1  # adopting a good model helps
    adopted = {
        p.level: np.mean(
            [
                by[(p.level, "aided", i)] == y[i]
                for i in range(n)
                if by[(p.level, "unaided", i)] != y[i]
            ]
        )
        for p in READER_PROFILES
    }
    assert adopted["trainee"] > adopted["expert"]  # weaker readers lean more on the model


def test_synth_reads_fraction_is_stratified():
    preds = _predictions((40, 30, 10))
    reads = synth_reads_frame(preds, seed=3, fraction=0.3)
    cases = reads.drop_duplicates("case_id").merge(preds[["case_id", "label"]], on="case_id")
    assert cases["label_y"].value_counts().to_dict() == {"acute": 12, "chronic": 9, "pathologic": 3}
    assert set(reads["mode"]) == {"unaided", "aided"}
    assert len(reads) == 24 * 3 * 2


def test_synthetic_study_end_to_end(tmp_path):
    preds = _predictions()
    pred_csv = tmp_path / "predictions.csv"
    preds.to_csv(pred_csv, index=False)
    reads_csv = tmp_path / "reads.csv"
    assert main(["-q", "synth-readers", "--truth", str(pred_csv), "--out", str(reads_csv)]) == 0
    assert json.loads((tmp_path / "reads.json").read_text())["simulated"] is True
    out = tmp_path / "study"
    rc = main(
        ["-q", "readers", "--truth", str(pred_csv), "--reads", str(reads_csv), "--out", str(out)]
    )
    assert rc == 0

    table = pd.read_csv(out / "readers.csv")
    assert len(table) == (1 + 3 * 2) * 4  # model + 3 readers x 2 modes, 3 classes + overall
    assert table["simulated"].all()
    assert set(table["mode"]) == {"model", "unaided", "aided"}
    model = table[(table["reader"] == "model") & (table["class"] == "overall")].iloc[0]
    assert model["top1_accuracy"] == pytest.approx((preds["label"] == preds["pred"]).mean())

    comparisons = pd.read_csv(out / "comparisons.csv")
    assert {"aided vs unaided", "model vs unaided", "model vs aided"} <= set(
        comparisons["comparison"]
    )
    assert comparisons["p"].between(0, 1).all()

    mrmc = json.loads((out / "mrmc.json").read_text())
    assert mrmc["simulated"] is True and mrmc["covariance"] == "delong"
    for cls in CLASS_NAMES:
        res = mrmc["classes"][cls]
        assert res["difference"] == pytest.approx(res["auc_aided"] - res["auc_unaided"])
        assert res["ci_low"] < res["difference"] < res["ci_high"]
        assert res["df1"] == 1 and res["df2"] > 0 and 0 <= res["p"] <= 1
        assert len(res["reader_auc_aided"]) == 3

    for name in ("figure6_roc_readers", "reader_accuracy_sensitivity"):
        for ext in ("png", "svg"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "SIMULATED" in report and "MRMC" in report
    assert "SIMULATED" in (out / "report.html").read_text()


def test_rating_and_categorical_reads(tmp_path):
    preds = _predictions()
    reads = synth_reads_frame(preds, seed=1)
    probs = reads[["p_acute", "p_chronic", "p_pathologic"]].to_numpy()
    rated = reads.drop(columns=["p_acute", "p_chronic", "p_pathologic"])
    rated["rating"] = np.clip(np.ceil(probs.max(axis=1) * 5), 1, 5)
    res = run_reader_study(preds, rated, tmp_path / "rated", cov="jackknife", figures=False)
    assert res.mrmc["score_kind"] == "rating" and res.mrmc["covariance"] == "jackknife"
    # a 5-point rating per class (rating_acute ...): the MRMC ranks the cases by each class's own
    per_class = reads.drop(columns=["p_acute", "p_chronic", "p_pathologic"])
    for k, cls in enumerate(CLASS_NAMES):
        per_class[f"rating_{cls}"] = np.clip(np.ceil(probs[:, k] * 5), 1, 5)
    loaded = load_reads(per_class, load_truth(preds))
    assert loaded.score_kind == "rating"
    assert (
        loaded.scores[0, 0, :, 1].tolist()
        == per_class["rating_chronic"].iloc[: loaded.scores.shape[2]].tolist()
    )
    with pytest.raises(InputError, match="must hold 1 to 5"):
        load_reads(per_class.assign(rating_acute=0), load_truth(preds))
    categorical = reads.drop(columns=["p_acute", "p_chronic", "p_pathologic"])
    res = run_reader_study(
        preds.drop(columns=["p_acute", "p_chronic", "p_pathologic"]),
        categorical,
        tmp_path / "cat",
        figures=False,
    )
    # a single-point ROC: AUC = (sensitivity + specificity) / 2, both counted here from the reads
    truth = preds.set_index("case_id")["label"]
    model_reads = preds.assign(reader="model", mode="model")[["case_id", "reader", "mode", "pred"]]
    all_reads = pd.concat([categorical.rename(columns={"label": "pred"}), model_reads])
    table = res.table.set_index(["reader", "mode", "class"])
    checked = 0
    for (reader, mode), sub in all_reads.groupby(["reader", "mode"]):
        y = truth.loc[sub["case_id"]].to_numpy()
        read = sub["pred"].to_numpy()
        for cls in CLASS_NAMES:
            sens, spec = (read[y == cls] == cls).mean(), (read[y != cls] != cls).mean()
            row = table.loc[(reader, mode, cls)]
            assert row["auc"] == pytest.approx((sens + spec) / 2), (reader, mode, cls)
            assert (row["sensitivity"], row["specificity"]) == pytest.approx((sens, spec))
            checked += 1
    assert checked == (1 + 3 * 2) * 3
    assert np.isfinite(res.mrmc["classes"]["acute"]["f"])
    assert not res.simulated and "SIMULATED" not in (tmp_path / "cat" / "report.md").read_text()


def test_manifest_as_truth_uses_evaluate_case_ids():
    manifest = pd.DataFrame(
        {
            "crop_path": ["crops/a1.png", "crops/b2.png"],
            "site": "dev",
            "label": ["acute", "Chronic"],
        }
    )
    truth = load_truth(manifest)
    assert truth.case_ids.tolist() == ["dev/a1", "dev/b2"]
    assert truth.y.tolist() == [0, 1] and truth.model_pred is None


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r.assign(case_id=r["case_id"].where(r.index != 0, "nope")), "not in the truth"),
        (lambda r: r[~((r["reader"] == "sim_expert") & (r["case_id"] == "case005"))], "lacks 1"),
        (lambda r: r.assign(mode=r["mode"].replace("aided", "assisted")), "unknown mode"),
        (lambda r: r.assign(label=r["label"].where(r.index != 3, "normal")), "unknown label"),
        (lambda r: pd.concat([r, r.iloc[[0]]]), "twice"),
        (lambda r: r.drop(columns=["mode"]), "lacks column"),
        (lambda r: r[r["mode"] == "aided"], "only aided"),
    ],
)
def test_bad_reads_raise_input_error(mutate, match):
    preds = _predictions((6, 5, 4))
    reads = synth_reads_frame(preds).reset_index(drop=True)
    with pytest.raises(InputError, match=match):
        load_reads(mutate(reads), load_truth(preds))


def test_cli_reports_bad_reads_file(tmp_path, capsys):
    preds = _predictions((6, 5, 4))
    preds.to_csv(tmp_path / "p.csv", index=False)
    synth_reads_frame(preds).assign(mode="alone").to_csv(tmp_path / "r.csv", index=False)
    args = ["readers", "--truth", str(tmp_path / "p.csv"), "--reads", str(tmp_path / "r.csv")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "unknown mode" in capsys.readouterr().err
    assert (
        main(
            [
                "synth-readers",
                "--truth",
                str(tmp_path / "missing.csv"),
                "--out",
                str(tmp_path / "r2.csv"),
            ]
        )
        == 2
    )


def test_a_study_of_radiologists_alone_is_analysed(tmp_path):
    """Readers without aided reads (the paper's Table 2 comparison with the model) are analysed;
    the aided-vs-unaided parts are skipped with a note."""
    preds = _predictions((6, 5, 4))
    reads = synth_reads_frame(preds)
    alone = reads[reads["mode"] == "unaided"]
    result = run_reader_study(preds, alone, tmp_path, figures=True)
    assert set(result.table["mode"]) == {"model", "unaided"}
    assert "unaided reads only" in result.mrmc["skipped"]
    assert set(result.comparisons["comparison"]) == {"model vs unaided"}  # model vs each reader
    assert (tmp_path / "report.html").is_file() and (tmp_path / "figure6_roc_readers.png").is_file()
