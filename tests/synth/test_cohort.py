"""``vcfnet synth``: layout, counts, determinism, DICOM validity, boxes and class signs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from vcfnet.bench.synth import run as bench_synth
from vcfnet.cli import main
from vcfnet.config import CONFIG_NAME
from vcfnet.errors import ConfigError
from vcfnet.io.voc import read_voc
from vcfnet.labels import parse_object_name
from vcfnet.synth.cohort import SynthConfig, generate_cohort, parse_size
from vcfnet.synth.fractures import GENANT_RANGES
from vcfnet.synth.sites import preset_sites

SCALE, SIZE = 0.005, "256x320"
SITES = ("SITE1", "GZFPH", "WHTH", "HB672H", "PROSPECTIVE")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    assert (
        main(
            [
                "-q",
                "synth",
                "--out",
                str(out),
                "--scale",
                str(SCALE),
                "--size",
                SIZE,
                "--workers",
                "1",
                "--seed",
                "7",
            ]
        )
        == 0
    )
    return out


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _files(root: Path) -> dict[str, bytes]:
    """Every generated file's bytes (the CLI's config.yaml names the output folder: not data)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != CONFIG_NAME
    }


def test_layout_and_counts_match_the_preset(cohort):
    info = json.loads((cohort / "cohort.json").read_text())
    assert info["seed"] == 7 and info["preset"] == "paper" and list(info["sites"]) == list(SITES)
    for site in preset_sites("paper", SCALE):
        d = cohort / site.name
        images = sorted(p.name for p in (d / "images").glob("*.dcm"))
        xmls = sorted(p.stem for p in (d / "annotations").glob("*.xml"))
        patients = _csv(d / "patients.csv")
        assert list(patients[0]) == ["image", "patient_id", "age", "sex", "site"]
        assert len(images) == len(xmls) == len(patients) == site.patients
        assert [Path(i).stem for i in images] == xmls and sorted(
            p["image"] for p in patients
        ) == images
        assert {p["site"] for p in patients} == {site.name}
        truth = _csv(d / "truth.csv")
        counts = tuple(
            sum(r["label"] == c for r in truth) for c in ("acute", "chronic", "pathologic")
        )
        assert counts == site.counts
        assert info["sites"][site.name]["counts"] == dict(
            zip(("acute", "chronic", "pathologic"), counts, strict=True)
        )
        # the XML objects are the truth rows, named like Acute-L1
        objs = [o for x in sorted((d / "annotations").glob("*.xml")) for o in read_voc(x).objects]
        parsed = sorted(
            (parse_object_name(o.name).label, parse_object_name(o.name).level) for o in objs
        )
        assert parsed == sorted((r["label"], r["level"]) for r in truth)


def test_demographics(cohort):
    rows = [r for s in SITES for r in _csv(cohort / s / "patients.csv")]
    ages = np.array([float(r["age"]) for r in rows])
    assert ages.min() >= 35 and ages.max() <= 99 and 55 < ages.mean() < 85
    assert {r["sex"] for r in rows} <= {"F", "M"}


def test_same_seed_same_bytes_any_workers(cohort, tmp_path):
    again = generate_cohort(
        SynthConfig(out=tmp_path / "again", scale=SCALE, size=SIZE, workers=2, seed=7)
    )
    assert _files(again.out) == _files(cohort)


def test_plan_does_not_depend_on_the_hash_seed():
    """Processes with other PYTHONHASHSEEDs plan the same patients (no set-order tie-breaks)."""
    code = (
        "from vcfnet.synth.cohort import SynthConfig, plan_site;"
        "from vcfnet.synth.sites import preset_sites;"
        "print([(t.age, t.sex, t.fractures) for i, s in enumerate(preset_sites('paper', 0.003))"
        " for t in plan_site(s, i, SynthConfig(seed=3))])"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(h), "PYTHONPATH": src},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for h in range(1, 6)
    }
    assert len(outs) == 1


def test_other_seed_other_images(tmp_path):
    a = generate_cohort(SynthConfig(out=tmp_path / "a", scale=0.001, size=SIZE, workers=1, seed=1))
    b = generate_cohort(SynthConfig(out=tmp_path / "b", scale=0.001, size=SIZE, workers=1, seed=2))
    fa, fb = _files(a.out / "GZFPH"), _files(b.out / "GZFPH")
    assert fa.keys() == fb.keys() and all(fa[k] != fb[k] for k in fa if k.endswith(".dcm"))


def test_every_dicom_reads_and_sites_differ(cohort):
    seen = {}
    for site in SITES:
        for path in sorted((cohort / site / "images").glob("*.dcm")):
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
            assert arr.shape == (320, 256) and arr.dtype == np.uint16
            assert arr.max() < 2**ds.BitsStored and arr.max() > arr.min()
            assert (
                ds.Modality in ("DX", "CR")
                and ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID
            )
            assert ds.PatientName and ds.PatientID and ds.PatientBirthDate and ds.StudyDate
            assert ds.AccessionNumber and ds.InstitutionName and float(ds.PixelSpacing[0]) > 0
            seen.setdefault(site, set()).add(
                (
                    ds.PhotometricInterpretation,
                    ds.file_meta.TransferSyntaxUID.name,
                    int(ds.BitsStored),
                )
            )
    assert all(len(v) == 1 for v in seen.values())
    props = {s: next(iter(v)) for s, v in seen.items()}
    assert {p[0] for p in props.values()} == {"MONOCHROME1", "MONOCHROME2"}
    assert {p[1] for p in props.values()} >= {"RLE Lossless", "Explicit VR Little Endian"}
    assert any("JPEG 2000" in p[1] for p in props.values())
    assert props["PROSPECTIVE"] == props["SITE1"]


def test_monochrome1_stores_bone_dark(cohort):
    """Vertebral bodies are bright on display; MONOCHROME1 sites store them as low values.

    Judged over a site's boxed bodies: a single body may be overlapped by a rib or bowel gas (as on
    real films), so most (not every one) must be brighter than the tissue in front; at the test
    scale a site has only a few boxed bodies.
    """
    for site in SITES:
        brighter = []
        for r in _csv(cohort / site / "truth.csv"):
            ds = pydicom.dcmread(cohort / site / "images" / f"{r['image']}.dcm")
            arr = ds.pixel_array.astype(float)
            x1, y1, x2, y2 = (
                int(float(r[k])) for k in ("body_xmin", "body_ymin", "body_xmax", "body_ymax")
            )
            inner = arr[
                y1 + (y2 - y1) // 4 : y2 - (y2 - y1) // 4,
                x1 + (x2 - x1) // 4 : x2 - (x2 - x1) // 4,
            ].mean()
            # soft tissue in front of the body
            w = x2 - x1
            front = arr[y1:y2, max(0, x1 - w) : max(1, x1 - w // 2)].mean()
            brighter.append(inner > front)
        share = float(np.mean(brighter))
        if ds.PhotometricInterpretation == "MONOCHROME2":
            assert share > 0.5, (site, share)
        else:
            assert share < 0.5, (site, share)


def test_boxes_surround_their_vertebra(cohort):
    for site in SITES:
        for r in _csv(cohort / site / "truth.csv"):
            box = np.array([float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
            body = np.array(
                [float(r[k]) for k in ("body_xmin", "body_ymin", "body_xmax", "body_ymax")]
            )
            ix = max(0.0, min(box[2], body[2]) - max(box[0], body[0]))
            iy = max(0.0, min(box[3], body[3]) - max(box[1], body[1]))
            inter = ix * iy
            union = np.prod(box[2:] - box[:2]) + np.prod(body[2:] - body[:2]) - inter
            assert inter / union > 0.7, (site, r["image"], r["level"])
            assert (
                box[0] <= (body[0] + body[2]) / 2 <= box[2]
                and box[1] <= (body[1] + body[3]) / 2 <= box[3]
            )
        # levels run cranial to caudal down the image
        for image_rows in _group(_csv(cohort / site / "truth.csv")).values():
            order = ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]
            ys = [
                float(r["ymin"]) for r in sorted(image_rows, key=lambda r: order.index(r["level"]))
            ]
            assert ys == sorted(ys)


def test_vertebrae_json_lists_every_visible_body(cohort):
    """vertebrae/<image>.json: every body T11-S1 in the image, in order, boxes holding their six
    points; the fractured ones are exactly the XML's (which holds no others); the CSV says the same."""
    order = ["T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"]
    for site in SITES:
        truth = _group(_csv(cohort / site / "truth.csv"))
        csv_rows = _group(_csv(cohort / site / "vertebrae.csv"))
        images = sorted((cohort / site / "images").glob("*.dcm"))
        assert sorted(p.stem for p in (cohort / site / "vertebrae").glob("*.json")) == [
            p.stem for p in images
        ]
        for dcm in images:
            doc = json.loads((cohort / site / "vertebrae" / f"{dcm.stem}.json").read_text())
            assert doc["image"] == dcm.name and doc["format"] == "vcfnet-vertebrae"
            ds = pydicom.dcmread(dcm, stop_before_pixels=True)
            assert (doc["rows"], doc["columns"]) == (ds.Rows, ds.Columns)
            assert doc["pixel_spacing_mm"] == [float(v) for v in ds.PixelSpacing]
            verts = doc["vertebrae"]
            levels = [v["level"] for v in verts]
            assert len(levels) >= 6 and levels == [lv for lv in order if lv in levels]
            assert levels == order[order.index(levels[0]) : order.index(levels[-1]) + 1]
            for v in verts:
                pts = np.asarray(v["points"])
                x1, y1, x2, y2 = v["box"]
                assert pts.shape == (6, 2)
                assert (pts[:, 0] >= x1).all() and (pts[:, 0] <= x2).all(), (dcm.name, v)
                assert (pts[:, 1] >= y1).all() and (pts[:, 1] <= y2).all(), (dcm.name, v)
                assert (pts[3:, 1] > pts[:3, 1]).all()  # lower endplate below the upper
                assert (pts[[0, 3], 0] < pts[[1, 4], 0]).all()  # anterior (left) of middle
                assert (pts[[1, 4], 0] < pts[[2, 5], 0]).all()
            boxed = {r["level"]: r for r in truth.get(dcm.stem, [])}
            fractured = {v["level"]: v for v in verts if v["label"] != "normal"}
            assert fractured.keys() == boxed.keys()
            for lv, v in fractured.items():
                assert (v["label"], v["genant_grade"], v["shape"]) == (
                    boxed[lv]["label"],
                    int(boxed[lv]["genant_grade"]),
                    boxed[lv]["shape"],
                )
            xml = read_voc(cohort / site / "annotations" / f"{dcm.stem}.xml")
            assert len(xml.objects) == len(fractured)
            rows = csv_rows[dcm.name]
            assert [r["level"] for r in rows] == levels
            for r, v in zip(rows, verts, strict=True):
                assert float(r["lower_posterior_y"]) == v["points"][5][1]
                assert float(r["xmin"]) == v["box"][0] and int(r["truncated"]) == v["truncated"]


def _group(rows):
    out = {}
    for r in rows:
        out.setdefault(r["image"], []).append(r)
    return out


def test_recorded_height_loss_matches_genant_grade(cohort):
    for site in SITES:
        for r in _csv(cohort / site / "truth.csv"):
            lo, hi = GENANT_RANGES[int(r["genant_grade"])]
            assert lo <= float(r["height_loss"]) < hi
            assert r["shape"] in ("wedge", "biconcave", "crush")


def test_collapsed_vertebra_is_shorter_in_the_image(cohort):
    """The box of a fractured body is flatter (height/depth) than its intact neighbours'."""
    ratios = []
    for site in SITES:
        for r in _csv(cohort / site / "truth.csv"):
            if int(r["genant_grade"]) == 3 and r["shape"] == "crush":
                h = float(r["body_ymax"]) - float(r["body_ymin"])
                w = float(r["body_xmax"]) - float(r["body_xmin"])
                ratios.append(h / w)
    if ratios:
        assert np.median(ratios) < 0.75  # intact bodies are ~0.75 high per wide


def test_annotate_normal_boxes_every_vertebra(tmp_path):
    res = generate_cohort(
        SynthConfig(out=tmp_path / "n", scale=0.001, size=SIZE, workers=1, annotate_normal=True)
    )
    truth = _csv(res.out / "GZFPH" / "truth.csv")
    names = [
        o.name
        for x in (res.out / "GZFPH" / "annotations").glob("*.xml")
        for o in read_voc(x).objects
    ]
    assert any(n.startswith("Normal-") for n in names)
    per_image = _group(truth)
    assert all(len(rows) >= 5 for rows in per_image.values())
    assert res.sites["GZFPH"]["vertebrae"] == 3  # normals are not counted as fractures


def test_bad_size_and_missing_out(tmp_path):
    with pytest.raises(ConfigError, match="1024x1280"):
        parse_size("big")
    with pytest.raises(ConfigError, match="--out"):
        generate_cohort(SynthConfig())


def test_prepare_reads_the_cohort_with_zero_rejects(cohort, tmp_path):
    pytest.importorskip("vcfnet.data.prepare")
    from vcfnet.data.manifest import read_manifest

    for site in ("SITE1", "WHTH", "GZFPH"):
        d = cohort / site
        out = tmp_path / site
        rejects = tmp_path / f"{site}-rejects.csv"
        rc = main(
            [
                "-q",
                "prepare",
                "--images",
                str(d / "images"),
                "--annotations",
                str(d / "annotations"),
                "--patients",
                str(d / "patients.csv"),
                "--site",
                site,
                "--out",
                str(out),
                "--split",
                "0.8" if site == "SITE1" else "none",
                "--workers",
                "1",
                "--id-key",
                "test-key",
                "--skip-invalid",
                "--rejects",
                str(rejects),
            ]
        )
        assert rc == 0
        manifest = read_manifest(out)
        assert len(manifest) == len(_csv(d / "truth.csv"))
        assert not rejects.exists() or len(_csv(rejects)) == 0


def test_bench_synth_runs_tiny():
    import argparse

    res = bench_synth(argparse.Namespace(n=2, size="256x320", workers=2))
    assert res["radiographs"] == 2 and res["workers"] == 2
    # the reported numbers agree with each other: rate x seconds per radiograph = 1, speedup = ratio
    one, many = res["radiographs_per_s_1_worker"], res["radiographs_per_s_n_workers"]
    assert one * res["s_per_radiograph_1_worker"] == pytest.approx(1)
    assert res["speedup"] == pytest.approx(many / one)
    assert 0 < res["cpu_s_per_radiograph_1_worker"] < 60 and 0 < many < 1e4
