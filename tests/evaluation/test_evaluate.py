"""vcfnet evaluate / metrics / compare: files written, numbers consistent, clear input errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest, chi2
from sklearn.metrics import roc_auc_score

from tests.factories import make_tiny_dataset
from vcfnet.bench.metrics import run as bench_metrics
from vcfnet.cli import main
from vcfnet.errors import InputError
from vcfnet.evaluation.compare import compare_predictions
from vcfnet.evaluation.evaluate import evaluate_model
from vcfnet.evaluation.predictions import PREDICTION_COLUMNS, read_predictions
from vcfnet.evaluation.report import write_metrics_report
from vcfnet.labels import CLASS_NAMES
from vcfnet.models.artifact import save_checkpoint
from vcfnet.models.classifier import build_model
from vcfnet.preprocess import InputSpec, Preprocessing


def fake_predictions(n=90, seed=0, strength=1.5, sites=("test", "GZFPH")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n) % 3
    logits = np.eye(3)[t] * strength + np.random.default_rng(seed + 1).normal(size=(n, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    site = np.array(sites)[rng.permutation(n) % len(sites)]
    return pd.DataFrame(
        {
            "case_id": [f"{s}/{i:05d}" for i, s in enumerate(site)],
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "site": site,
            "label": np.array(CLASS_NAMES)[t],
            "pred": np.array(CLASS_NAMES)[p.argmax(axis=1)],
            "p_acute": p[:, 0],
            "p_chronic": p[:, 1],
            "p_pathologic": p[:, 2],
            "level": "L1",
            "crop_path": "crops/x.png",
        }
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = build_model(len(CLASS_NAMES), weights="none")
    save_checkpoint(
        run / "checkpoints" / "best.pt",
        model,
        preprocessing=Preprocessing(input=InputSpec(image_size=32)),
        config={"epochs": 0},
    )
    return run


def test_metrics_report_files_and_numbers(tmp_path):
    preds = fake_predictions()
    metrics = write_metrics_report(preds, tmp_path, n_boot=200)
    for name in ("metrics.csv", "metrics.json", "report.html", "report.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    csv = pd.read_csv(tmp_path / "metrics.csv")
    assert list(csv.columns[:3]) == ["site", "class", "n"]
    assert set(csv["site"]) == {"test", "GZFPH"}
    assert len(csv) == 8 and set(csv["class"]) == {*CLASS_NAMES, "overall"}
    props = csv.drop(columns=["site", "class", "n", "auc_ci_method", "auc_estimable"]).to_numpy(
        float
    )
    assert np.nanmin(props) >= 0 and np.nanmax(props) <= 1
    overall = metrics[(metrics["site"] == "test") & (metrics["class"] == "overall")].iloc[0]
    sub = preds[preds["site"] == "test"]
    assert overall["top1_accuracy"] == pytest.approx((sub["label"] == sub["pred"]).mean())
    assert overall["n"] == len(sub)
    info = json.loads((tmp_path / "metrics.json").read_text())
    cm = np.array(info["sites"]["test"]["confusion_matrix"]["counts"])
    assert cm.sum() == len(sub) and cm.sum(axis=1).tolist() == [
        int((sub["label"] == c).sum()) for c in CLASS_NAMES
    ]
    wilson = info["sites"]["test"]["wilson_intervals"]
    assert {w["metric"] for w in wilson} >= {"sensitivity", "specificity", "ppv", "npv", "accuracy"}
    for site in ("test", "GZFPH"):
        for kind in ("roc", "confusion", "reliability"):
            for ext in ("png", "svg"):
                assert (tmp_path / "figures" / f"{site}_{kind}.{ext}").stat().st_size > 0
    assert (tmp_path / "figures" / "forest_auc.png").stat().st_size > 0
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "top-1" in html and "mean of the three" in html
    definitions = (tmp_path / "report.md").read_text()
    assert "intervals: DeLong, or Newcombe's score interval" in definitions  # ci="auto"
    assert "bootstrap (" not in definitions


def test_metrics_cli_round_trip(tmp_path, capsys):
    fake_predictions().to_csv(tmp_path / "p.csv", index=False)
    assert (
        main(
            [
                "metrics",
                str(tmp_path / "p.csv"),
                "--out",
                str(tmp_path / "r"),
                "--ci",
                "bootstrap",
                "--n-boot",
                "200",
            ]
        )
        == 0
    )
    assert "intervals: bootstrap (200 replicates" in (tmp_path / "r" / "report.md").read_text()
    assert "report.html" in capsys.readouterr().out
    # every number below recomputed from the predictions with sklearn / numpy
    preds = fake_predictions()
    table = pd.read_csv(tmp_path / "r" / "metrics.csv").set_index(["site", "class"])
    for site, sub in preds.groupby("site"):
        aucs = [roc_auc_score(sub["label"] == c, sub[f"p_{c}"]) for c in CLASS_NAMES]
        for c, auc in zip(CLASS_NAMES, aucs, strict=True):
            assert table.loc[(site, c), "auc"] == pytest.approx(auc, abs=1e-12), (site, c)
            assert table.loc[(site, c), "n"] == (sub["label"] == c).sum()
        overall = table.loc[(site, "overall")]
        assert overall["macro_auc"] == pytest.approx(np.mean(aucs), abs=1e-12)
        assert overall["top1_accuracy"] == pytest.approx((sub["label"] == sub["pred"]).mean())


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.drop(columns="p_chronic"), "lacks column"),
        (lambda d: d.assign(p_acute=d["p_acute"] * 0.5), "sum to 1"),
        (lambda d: d.assign(label=["fresh", *list(d["label"][1:])]), "unknown label"),
        (lambda d: d.assign(p_acute=[np.nan, *list(d["p_acute"][1:])]), "probabilities"),
        (lambda d: d.assign(case_id="same"), "more than once"),
        (lambda d: d.iloc[:0], "no rows"),
    ],
)
def test_bad_predictions_files(tmp_path, mutate, match):
    path = tmp_path / "bad.csv"
    mutate(fake_predictions()).to_csv(path, index=False)
    with pytest.raises(InputError, match=match):
        read_predictions(path)


def test_bad_predictions_cli_exit_2(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("case_id,label\nx,acute\n")
    assert main(["metrics", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "r")]) == 2
    assert "lacks column" in capsys.readouterr().err


def test_compare_matched_by_case_id(tmp_path):
    a = fake_predictions(strength=2.0)
    b = fake_predictions(strength=0.5).sample(frac=1.0, random_state=0)  # other row order
    auc, mc = compare_predictions(a, b)
    assert set(auc["site"]) == {"test", "GZFPH", "all"}
    assert (auc["difference"] > 0).all() and set(auc["class"]) == set(CLASS_NAMES)
    row = mc[mc["site"] == "all"].iloc[0]
    assert row["top1_accuracy_a"] > row["top1_accuracy_b"]
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    assert (
        main(
            [
                "compare",
                str(tmp_path / "a.csv"),
                str(tmp_path / "b.csv"),
                "--out",
                str(tmp_path / "cmp"),
            ]
        )
        == 0
    )
    assert (tmp_path / "cmp" / "report.html").is_file()
    # the CLI's tables against sklearn AUCs and McNemar counts recounted with numpy
    auc_csv = pd.read_csv(tmp_path / "cmp" / "compare_auc.csv").set_index(["site", "class"])
    mc_csv = pd.read_csv(tmp_path / "cmp" / "compare_mcnemar.csv").set_index("site")
    b = b.set_index("case_id").loc[a["case_id"]].reset_index()  # a's row order
    for site in ("test", "GZFPH", "all"):
        keep = np.ones(len(a), bool) if site == "all" else (a["site"] == site).to_numpy()
        sa, sb = a[keep], b[keep]
        for c in CLASS_NAMES:
            row = auc_csv.loc[(site, c)]
            auc_a = roc_auc_score(sa["label"] == c, sa[f"p_{c}"])
            auc_b = roc_auc_score(sb["label"] == c, sb[f"p_{c}"])
            assert row["auc_a"] == pytest.approx(auc_a) and row["auc_b"] == pytest.approx(auc_b)
            assert row["difference"] == pytest.approx(auc_a - auc_b)
        right_a = (sa["label"] == sa["pred"]).to_numpy()
        right_b = (sb["label"] == sb["pred"]).to_numpy()
        n01, n10 = int((~right_a & right_b).sum()), int((right_a & ~right_b).sum())
        row = mc_csv.loc[site]
        assert (row["n"], row["n01"], row["n10"]) == (keep.sum(), n01, n10), site
        assert row["top1_accuracy_a"] == pytest.approx(right_a.mean())
        if row["exact"]:
            expected_p = binomtest(n01, n01 + n10, 0.5).pvalue
        else:  # chi-square with continuity correction
            stat = (abs(n01 - n10) - 1) ** 2 / (n01 + n10)
            assert row["statistic"] == pytest.approx(stat)
            expected_p = chi2.sf(stat, 1)
        assert row["p"] == pytest.approx(expected_p, rel=1e-6), site


def test_compare_rejects_different_cases():
    a = fake_predictions()
    with pytest.raises(InputError, match="same cases"):
        compare_predictions(a, a.iloc[1:])


def test_evaluate_model_end_to_end(tmp_path, tiny_model):
    internal = make_tiny_dataset(tmp_path / "internal", n_per_class=3, size=32, sites=("dev",))
    external = make_tiny_dataset(
        tmp_path / "ext", n_per_class=2, size=32, sites=("GZFPH",), splits=("test",), seed=1
    )
    out = tmp_path / "report"
    metrics = evaluate_model(
        tiny_model, [internal, external], out, n_boot=200, precision="fp32", workers=1
    )
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    assert len(preds) == 9 + 6 and set(preds["site"]) == {"dev", "GZFPH"}
    assert preds["case_id"].is_unique and preds["case_id"].str.startswith(("dev/", "GZFPH/")).all()
    # crop paths as in the manifests (relative), never this machine's folders
    assert not preds["crop_path"].str.contains(str(tmp_path), regex=False).any()
    assert all((internal / p).is_file() or (external / p).is_file() for p in preds["crop_path"])
    np.testing.assert_allclose(
        preds[["p_acute", "p_chronic", "p_pathologic"]].sum(axis=1), 1, atol=1e-5
    )
    assert set(metrics["site"]) == {"dev", "GZFPH"}
    info = json.loads((out / "metrics.json").read_text())
    assert len(info["provenance"]["model_hash"]) > 8
    # evaluate then metrics on its predictions gives the same table
    again = write_metrics_report(
        read_predictions(out / "predictions.csv"), tmp_path / "again", n_boot=200
    )
    pd.testing.assert_frame_equal(metrics.reset_index(drop=True), again.reset_index(drop=True))


def test_evaluate_cli_site_filter_and_errors(tmp_path, tiny_model, capsys):
    ds = make_tiny_dataset(
        tmp_path / "d", n_per_class=1, size=32, sites=("A", "B"), splits=("train",)
    )
    out = tmp_path / "ok"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_model / "checkpoints" / "best.pt"),
                "--data",
                str(ds),
                "--split",
                "train",
                "--site",
                "B",
                "--out",
                str(out),
                "--precision",
                "fp32",
                "--n-boot",
                "100",
            ]
        )
        == 0
    )
    assert set(pd.read_csv(out / "predictions.csv")["site"]) == {"B"}
    assert (out / "report.html").is_file() and (out / "config.yaml").is_file()
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(tiny_model),
                "--data",
                str(ds),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "no cases in split 'test'" in capsys.readouterr().err
    assert (
        main(
            ["evaluate", "--model", str(tmp_path), "--data", str(ds), "--out", str(tmp_path / "r")]
        )
        == 2
    )
    assert "best.pt" in capsys.readouterr().err


def test_bench_metrics_tiny():
    res = bench_metrics(argparse.Namespace(n_cases=60, n_boot=50, naive_boot=5))
    assert res["n_cases"] == 60 and res["n_boot"] == 50 and res["naive_replicates_timed"] == 5
    speedup = res["bootstrap_naive_s_extrapolated"] / res["bootstrap_vectorised_s"]
    assert res["speedup_vectorised_vs_naive"] == pytest.approx(speedup)
    assert 0.5 < res["auc"] < 1  # the bench's cases: a score shifted by one SD in the positives
