"""train-localiser, localize, evaluate-localiser, export-localiser and predict --localize on a tiny
synthetic cohort with a localiser trained for seconds (its figures are meaningless; the files,
formats and errors are what is checked)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.localiser.conftest import TINY_LOCALISER
from tests.predict_fixtures import make_run_dir
from vcfnet.cli import main
from vcfnet.io.voc import read_voc
from vcfnet.localiser.model import Localiser
from vcfnet.localiser.plans import LocalisedImage

KEY = ["--id-key", "test-key-0123456789"]


@pytest.fixture(scope="module")
def loc(cohort: Path) -> Path:
    run = cohort.parent / "loc"
    args = ["-q", "train-localiser", "--data", str(cohort), "--out", str(run), *TINY_LOCALISER]
    assert main(args) == 0
    return run


def _films(cohort: Path, site: str = "WHTH") -> list[Path]:
    return sorted((cohort / site / "images").glob("*.dcm"))[:2]


def test_train_localiser_writes_a_self_contained_run(loc: Path):
    assert (loc / "checkpoints" / "best.pt").is_file() and (
        loc / "checkpoints" / "last.pt"
    ).is_file()
    assert "input_size: 128x160" in (loc / "config.yaml").read_text()
    rows = list(csv.DictReader((loc / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    spec = Localiser(loc).spec
    assert (spec.input_h, spec.input_w, spec.levels[0], spec.levels[-1]) == (160, 128, "T11", "S1")
    refiner = Localiser(loc).refiner  # the second stage travels inside best.pt
    assert refiner is not None and (refiner.spec.crop, refiner.spec.width) == (32, 8)


def test_train_localiser_resumes_from_last(loc: Path, cohort: Path):
    """Asking for the same 2 epochs again trains nothing more: the run is complete."""
    before = (loc / "checkpoints" / "last.pt").read_bytes()
    args = ["-q", "train-localiser", "--data", str(cohort), "--out", str(loc), *TINY_LOCALISER]
    best = (loc / "checkpoints" / "best.pt").read_bytes()
    assert main(args) == 0
    assert (loc / "checkpoints" / "last.pt").read_bytes() == before
    assert (loc / "checkpoints" / "best.pt").read_bytes() == best  # the refine stage too


def test_train_localiser_resume_with_other_epochs_is_a_one_line_error(
    loc: Path, cohort: Path, capsys
):
    """The one-cycle schedule is fixed when a run starts: more epochs on the same --out say so."""
    before = (loc / "checkpoints" / "last.pt").read_bytes()
    args = ["train-localiser", "--data", str(cohort), "--out", str(loc), *TINY_LOCALISER]
    for nproc in ("1", "2"):  # checked before any process starts
        assert main([*args, "--epochs", "5", "--nproc", nproc]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "new --out" in err
    assert (loc / "checkpoints" / "last.pt").read_bytes() == before


def test_localize_says_when_it_finds_no_vertebra(loc: Path, cohort: Path, tmp_path: Path, caplog):
    film = _films(cohort)[0]
    out = tmp_path / "v.json"
    args = ["localize", "--model", str(loc), str(film), "--out", str(out), "--threshold", "1.01"]
    assert main([*args, *KEY]) == 0
    assert json.loads(out.read_text())[0]["vertebrae"] == []
    assert "no vertebra found above --threshold 1.01" in caplog.text


def test_localize_json_xml_overlay(loc: Path, cohort: Path, tmp_path: Path, capsys):
    films = _films(cohort)
    out = tmp_path / "v.json"
    args = ["localize", "--model", str(loc), *map(str, films), "--out", str(out), *KEY]
    assert main([*args, "--xml-out", str(tmp_path / "xml"), "--overlay", str(tmp_path / "ov")]) == 0
    records = json.loads(out.read_text())
    assert len(records) == 2
    text = out.read_text() + "".join(p.read_text() for p in (tmp_path / "xml").glob("*.xml"))
    assert all(f.stem not in text and str(f.parent) not in text for f in films)  # pseudonyms
    for rec in records:
        assert rec["image"].startswith("image-") and rec["pixel_spacing_mm"] > 0
        for v in rec["vertebrae"]:
            assert v["level"] in ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
            assert len(v["points"]) == 6 and len(v["box"]) == 4
            assert v["morphometry"]["unit"] == "mm"
        xml = read_voc(tmp_path / "xml" / f"{rec['image']}.xml")
        assert (xml.width, xml.height) == (256, 320)
        assert [o.name.split("-")[1] for o in xml.objects] == [v["level"] for v in rec["vertebrae"]]
    pngs = sorted((tmp_path / "ov").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(r["image"] for r in records)


def test_localize_csv_keep_names(loc: Path, cohort: Path, capsys):
    film = _films(cohort)[0]
    assert (
        main(["localize", "--model", str(loc), str(film), "--format", "csv", "--keep-names"]) == 0
    )
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert all(r["image"] == str(film) for r in rows)
    assert {"upper_anterior_x", "lower_posterior_y", "ha", "grade", "shape"} <= set(
        rows[0] if rows else {"upper_anterior_x", "lower_posterior_y", "ha", "grade", "shape"}
    )


def test_predict_localize_classifies_graded_bodies(loc, cohort, tmp_path, monkeypatch, capsys):
    films = _films(cohort)
    # make every film have one fractured body, whatever the seconds-trained localiser says
    import vcfnet.localiser.plans as plans

    fake = [LocalisedImage(f, ((60.0, 100.0, 120.0, 140.0),), (), ("L1",)) for f in films[:1]]
    fake.append(LocalisedImage(films[1], ()))
    monkeypatch.setattr(plans, "plan_localised", lambda model, inputs: fake)
    run = make_run_dir(tmp_path / "clf")
    args = ["predict", "--model", str(run), "--localize", str(loc), *map(str, films), *KEY]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [len(r["boxes"]) for r in results] == [1, 0]
    assert results[0]["boxes"][0]["level"] == "L1"


def test_predict_localize_runs_the_real_localiser(loc, cohort, tmp_path, capsys):
    run = make_run_dir(tmp_path / "clf")
    film = _films(cohort)[0]
    assert main(["predict", "--model", str(run), "--localize", str(loc), str(film), *KEY]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_evaluate_and_export(loc: Path, cohort: Path, tmp_path: Path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate-localiser", "--model", str(loc), "--data", str(cohort), "--out", str(out)]
    assert main([*args, "--sites", "WHTH,GZFPH"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["site"] for m in metrics] == ["GZFPH", "WHTH", "ALL"]
    assert all(0 <= m["recall"] <= 1 for m in metrics)
    assert "recall@0.5" in (out / "metrics.md").read_text()
    assert "κ (quadratic)" in (out / "metrics.md").read_text()
    assert all("genant_kappa_quadratic" in m for m in metrics)
    onnx = tmp_path / "loc.onnx"
    assert main(["export-localiser", "--model", str(loc), "--out", str(onnx)]) == 0
    film = _films(cohort)[0]
    from vcfnet.io.images import read_radiograph

    px = read_radiograph(film).pixels
    a, b = Localiser(loc).predict_pixels(px), Localiser(onnx).predict_pixels(px)
    assert [x.level for x in a] == [x.level for x in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.points, y.points, atol=0.05)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["localize", "IMG"], "needs --model"),
        (["localize", "--model", "nope.pt", "IMG"], "image not found"),
        (["train-localiser", "--out", "X"], "needs --data"),
        (["train-localiser", "--data", "COHORT", "--input-size", "100x100"], "multiples of 32"),
        (["train-localiser", "--data", "COHORT", "--sites", "MARS"], "no annotated films"),
        (["train-localiser", "--data", "COHORT", "--refine-width", "5"], "--refine-width"),
        (["train-localiser", "--data", "COHORT", "--nproc", "0"], "--nproc must be at least 1"),
        (["train-localiser", "--data", "COHORT", "--nproc", "3"], "make both multiples of 3"),
        (
            ["train-localiser", "--data", "COHORT", "--sites", "MARS", "--nproc", "2"],
            "no annotated",
        ),
        (["evaluate-localiser", "--model", "nope.pt", "--data", "COHORT"], "not found"),
    ],
)
def test_bad_input_is_one_line(args, message, cohort, tmp_path, capsys):
    args = [a.replace("COHORT", str(cohort)).replace("IMG", str(tmp_path / "x.dcm")) for a in args]
    args = [a if a != "X" else str(tmp_path / "run") for a in args]
    if "train-localiser" in args and "--out" not in args:
        args += ["--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
