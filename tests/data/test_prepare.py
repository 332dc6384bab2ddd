"""vcfnet prepare end to end on small DICOM/PNG cohorts, LabelImg XML and the real samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.uid import JPEG2000Lossless, RLELossless

from tests.io.dicom_fixtures import FAKE_IDENTITY, write_dicom
from vcfnet.cli import main
from vcfnet.data.manifest import MANIFEST_COLUMNS, read_manifest
from vcfnet.data.prepare import PrepareConfig, prepare_dataset
from vcfnet.data.sources import parse_author_name
from vcfnet.errors import ConfigError, InputError
from vcfnet.io.voc import write_voc

H, W = 256, 200
BOX_A = (40, 30, 140, 150)  # x1, y1, x2, y2: has a bright block in its top-left corner
BOX_B = (60, 170, 160, 240)
CLASSES = ("Acute", "Chronic", "Pathologic")


@pytest.fixture(autouse=True)
def _id_key(monkeypatch):
    monkeypatch.setenv("VCFNET_ID_KEY", "test-key-0123456789")


def radiograph_values(high: int = 3000, low: int = 400) -> np.ndarray:
    """uint16 (H, W): dark background; inside BOX_A, its top-left quarter bright (bone)."""
    img = np.full((H, W), low, dtype=np.uint16)
    x1, y1, x2, y2 = BOX_A
    img[y1 : y1 + (y2 - y1) // 2, x1 : x1 + (x2 - x1) // 2] = high
    return img


def patient_id(i: int) -> str:
    return f"{FAKE_IDENTITY['PatientID']}-{i:02d}"


def make_cohort(root: Path, n_patients: int = 9) -> tuple[Path, Path]:
    """One DICOM per patient (varied encodings) with two LabelImg boxes; file named by the raw ID."""
    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True)
    variants = [
        {},
        {"photometric": "MONOCHROME1", "window": (2400, 3000)},
        {"transfer_syntax": RLELossless},
        {"transfer_syntax": JPEG2000Lossless},
        {"bits_stored": 16, "rescale": (1.0, -1024.0), "window": (476, 3000)},
    ]
    for i in range(n_patients):
        kwargs = variants[i % len(variants)]
        values = radiograph_values()
        if kwargs.get("photometric") == "MONOCHROME1":
            values = (4095 - values).astype(np.uint16)
        name = f"{patient_id(i)}.dcm"  # a real-world quirk: identifiers in file names
        write_dicom(images / name, values, patient_id=patient_id(i), **kwargs)
        objs = [(f"{CLASSES[i % 3]}-L1", BOX_A), (CLASSES[(i + 1) % 3].lower(), BOX_B)]
        write_voc(xml / f"{patient_id(i)}.xml", name, W, H, objs)
    return images, xml


def _all_bytes(folder: Path) -> bytes:
    chunks = []
    for p in sorted(folder.rglob("*")):
        chunks.append(str(p.relative_to(folder)).encode())
        if p.is_file():
            chunks.append(p.read_bytes())
    return b"\n".join(chunks)


def test_prepare_dicom_cohort(tmp_path):
    images, xml = make_cohort(tmp_path)
    out = tmp_path / "ds"
    result = prepare_dataset(
        PrepareConfig(images=images, annotations=xml, out=out, workers=1, site="siteA")
    )
    df = read_manifest(out)
    assert list(df.columns[: len(MANIFEST_COLUMNS)]) == list(MANIFEST_COLUMNS)
    assert len(df) == 18 and df["patient_id"].nunique() == 9
    assert set(df["label"]) == {"acute", "chronic", "pathologic"}
    assert set(df["site"]) == {"siteA"} and set(df["sex"]) == {"F"}
    assert df["pixel_spacing_mm"].eq(0.15).all()
    assert df["age"].iloc[0] == pytest.approx(74.92, abs=0.01)
    assert set(df.loc[df["box_xmin"] == BOX_A[0], "level"]) == {"L1"}
    assert set(df.loc[df["box_xmin"] == BOX_B[0], "level"]) == {""}
    # every patient in exactly one split; dataset.json counts agree with the manifest
    assert df.groupby("patient_id")["split"].nunique().max() == 1
    info = json.loads((out / "dataset.json").read_text())
    assert info["counts"]["crops"] == 18 and info["vcfnet_version"]
    assert sum(sum(c.values()) for c in info["counts"]["by_site"]["siteA"].values()) == 18
    assert info["crop_spec"]["margin"] == 0.1 and "id_key" not in info["options"]
    # no input folder or file (often named after a patient) reaches the de-identified dataset
    assert not {"images", "annotations", "patients", "out", "rejects"} & set(info["options"])
    assert str(tmp_path) not in (out / "dataset.json").read_text()
    assert result.rejects_path is None and result.rejects.empty


def test_crop_orientation_and_content(tmp_path):
    images, xml = make_cohort(tmp_path, n_patients=5)
    out = tmp_path / "ds"
    df = prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, workers=1)).manifest
    crops = df[df["box_xmin"] == BOX_A[0]]
    assert len(crops) == 5  # all five encodings, MONOCHROME1 included
    for rel in crops["crop_path"]:
        crop = np.asarray(Image.open(out / rel))
        assert crop.dtype == np.uint8 and crop.ndim == 2
        # box 100x120 + 10% margin each side -> 120x144, long side 256
        assert crop.shape == (256, 213)
        h, w = crop.shape
        assert crop[h // 4, w // 4] > 200, rel  # the bright block: top-left
        assert crop[3 * h // 4, 3 * w // 4] < 60, rel
        assert crop[h // 4, 3 * w // 4] < 60 and crop[3 * h // 4, w // 4] < 60, rel


def test_de_identification(tmp_path):
    images, xml = make_cohort(tmp_path, n_patients=5)
    out = tmp_path / "ds"
    prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, workers=1))
    blob = _all_bytes(out).lower()
    secrets = [*FAKE_IDENTITY.values(), "Testperson", "Quirinus", "1948-02-13", "13.02.1948"]
    secrets += [patient_id(i) for i in range(5)] + ["99417733"]
    for secret in secrets:
        assert secret.lower().encode() not in blob, secret
    df = read_manifest(out)
    assert df["patient_id"].str.fullmatch(r"patient-[0-9a-f]{16}").all()
    assert df["crop_path"].str.fullmatch(r"crops/crop-[0-9a-f]{20}\.png").all()


def test_pseudonyms_depend_on_key(tmp_path, monkeypatch):
    images, xml = make_cohort(tmp_path, n_patients=3)
    a = prepare_dataset(
        PrepareConfig(images=images, annotations=xml, out=tmp_path / "a", workers=1)
    )
    monkeypatch.setenv("VCFNET_ID_KEY", "another-key-987654")
    b = prepare_dataset(
        PrepareConfig(images=images, annotations=xml, out=tmp_path / "b", workers=1)
    )
    assert set(a.manifest["patient_id"]).isdisjoint(b.manifest["patient_id"])


def test_rerun_reuses_crops_and_workers(tmp_path):
    images, xml = make_cohort(tmp_path, n_patients=6)
    out = tmp_path / "ds"
    cfg = PrepareConfig(images=images, annotations=xml, out=out, workers=2)
    first = prepare_dataset(cfg)
    assert first.info["crops_written"] == 12 and first.info["crops_reused"] == 0
    mtimes = {p: (out / p).stat().st_mtime_ns for p in first.manifest["crop_path"]}
    second = prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, workers=1))
    assert second.info["crops_written"] == 0 and second.info["crops_reused"] == 12
    assert {p: (out / p).stat().st_mtime_ns for p in second.manifest["crop_path"]} == mtimes
    pd.testing.assert_frame_equal(first.manifest, second.manifest)
    # another margin -> new crops, and the old ones are removed
    third = prepare_dataset(
        PrepareConfig(images=images, annotations=xml, out=out, workers=1, margin=0.2)
    )
    assert third.info["crops_written"] == 12
    assert len(list((out / "crops").glob("*.png"))) == 12


def test_patients_csv_png_and_split_none(tmp_path, caplog):
    images, xml = tmp_path / "images", tmp_path / "xml"
    images.mkdir()
    pixels = (radiograph_values() // 12).astype(np.uint8)
    for i in range(4):
        Image.fromarray(pixels).convert("RGB").save(images / f"img{i}.png")
        write_voc(xml / f"img{i}.xml", f"img{i}.png", W, H, [("Chronic-T12", BOX_A)])
    csv = tmp_path / "patients.csv"
    csv.write_text("image,patient_id,age,sex,site\nimg0.png,X1,70,f,north\nimg1,X1,70,F,north\n")
    cfg = PrepareConfig(
        images=images,
        annotations=xml,
        out=tmp_path / "ds",
        patients=csv,
        split="none",
        workers=1,
        site="south",
    )
    df = prepare_dataset(cfg).manifest.sort_values("source_image")
    assert set(df["split"]) == {"test"}
    by_site = df.groupby("site")["patient_id"].nunique().to_dict()
    assert by_site == {"north": 1, "south": 2}  # img0 + img1 are one patient; the rest their own
    assert set(df.loc[df["site"] == "north", "age"]) == {70.0}
    assert df["pixel_spacing_mm"].isna().all() and set(df["level"]) == {"T12"}
    assert "2 image(s) have no patient ID" in caplog.text


def test_label_map(tmp_path):
    images, xml = tmp_path / "images", tmp_path / "xml"
    images.mkdir()
    Image.fromarray((radiograph_values() // 12).astype(np.uint8)).save(images / "a.png")
    write_voc(
        xml / "a.xml",
        "a.png",
        W,
        H,
        [("Fresh-L2", BOX_A), ("Old", BOX_B), ("Normal-L3", (10, 10, 30, 30))],
    )
    label_map = tmp_path / "labels.yaml"
    label_map.write_text("fresh: acute\nOld: chronic\n")
    cfg = PrepareConfig(
        images=images,
        annotations=xml,
        out=tmp_path / "ds",
        label_map=label_map,
        workers=1,
        split="none",
    )
    df = prepare_dataset(cfg).manifest
    assert df[["label", "level"]].values.tolist() == [["acute", "L2"], ["chronic", ""]]


def make_bad_inputs(root: Path) -> tuple[Path, Path]:
    """One good radiograph plus every kind of bad input."""
    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True)
    good = (radiograph_values() // 12).astype(np.uint8)
    Image.fromarray(good).save(images / "good.png")
    write_voc(xml / "good.xml", "good.png", W, H, [("Acute-L1", BOX_A)])
    trunc = write_dicom(images / "truncated.dcm", radiograph_values())
    trunc.write_bytes(trunc.read_bytes()[:3000])
    write_voc(xml / "truncated.xml", "truncated.dcm", W, H, [("Acute", BOX_A)])
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_voc(xml / "broken.xml", "broken.png", W, H, [("Acute", BOX_A)])
    write_voc(xml / "orphan.xml", "missing.png", W, H, [("Acute", BOX_A)])
    Image.fromarray(good).save(images / "boxes.png")
    write_voc(
        xml / "boxes.xml",
        "boxes.png",
        W,
        H,
        [
            ("Acute", BOX_A),
            ("Chronic", (500, 500, 600, 600)),
            ("Chronic", (50, 50, 50, 90)),
            ("Fresh-L1", BOX_B),
        ],
    )
    return images, xml


def test_bad_inputs_stop_with_one_line_each(tmp_path, capsys):
    images, xml = make_bad_inputs(tmp_path)
    out = tmp_path / "ds"
    code = main(
        [
            "prepare",
            "--images",
            str(images),
            "--annotations",
            str(xml),
            "--out",
            str(out),
            "--workers",
            "1",
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(lines) == 6, err
    expect = [
        ("truncated.dcm", None),
        ("broken.png", None),
        ("orphan.xml", "missing.png"),
        ("boxes.xml: object 1", "outside"),
        ("boxes.xml: object 2", "zero"),
        ("boxes.xml: object 3", "unknown class 'Fresh'"),
    ]
    for where, what in expect:
        match = [line for line in lines if where in line and (what is None or what in line)]
        assert len(match) == 1, (where, what, err)
    assert "--skip-invalid" in err
    assert not (out / "manifest.csv").exists()


def test_skip_invalid_writes_rejects(tmp_path):
    images, xml = make_bad_inputs(tmp_path)
    out = tmp_path / "ds"
    result = prepare_dataset(
        PrepareConfig(
            images=images, annotations=xml, out=out, workers=1, skip_invalid=True, split="none"
        )
    )
    df = read_manifest(out)
    assert len(df) == 2 and set(df["box_xmin"]) == {BOX_A[0]}  # good.png and boxes.png object 0
    rejects = pd.read_csv(result.rejects_path)
    assert list(rejects.columns) == ["file", "object_index", "reason"] and len(rejects) == 6
    assert result.rejects_path == (tmp_path / "ds-rejects.csv").resolve()
    assert sorted(rejects["object_index"].dropna().astype(int)) == [1, 2, 3]
    assert json.loads((out / "dataset.json").read_text())["rejected"] == 6


def test_options_errors(tmp_path):
    with pytest.raises(Exception, match="--out"):
        prepare_dataset(PrepareConfig(imagefolder=tmp_path))
    with pytest.raises(Exception, match="either"):
        prepare_dataset(PrepareConfig(imagefolder=tmp_path, images=tmp_path, out=tmp_path / "o"))
    with pytest.raises(InputError, match="not found"):
        prepare_dataset(PrepareConfig(imagefolder=tmp_path / "nope", out=tmp_path / "o"))


def test_parse_author_name():
    assert parse_author_name("10-Acute-12-84-F") == ("Acute", "T12", 84.0, "F")
    assert parse_author_name("582-Pathologic-2-59-M") == ("Pathologic", "L2", 59.0, "M")
    assert parse_author_name("scan_0001") is None


def test_imagefolder_real_samples(real_samples, tmp_path):
    out = tmp_path / "samples"
    code = main(
        [
            "prepare",
            "--imagefolder",
            str(real_samples),
            "--out",
            str(out),
            "--split",
            "none",
            "--workers",
            "1",
            "--site",
            "authors",
        ]
    )
    assert code == 0
    df = read_manifest(out)
    assert len(df) == 15 and df["label"].value_counts().to_dict() == {
        "acute": 5,
        "chronic": 5,
        "pathologic": 5,
    }
    assert set(df["split"]) == {"test"} and set(df["site"]) == {"authors"}
    assert set(df["level"]) <= {"T12", "L1", "L2", "L4"} and "T12" in set(df["level"])
    assert set(df.loc[df["label"] == "pathologic", "sex"]) == {"M"}
    assert df["age"].between(50, 91).all()
    for rel in df["crop_path"]:
        crop = Image.open(out / rel)
        assert crop.mode == "L" and max(crop.size) == 256
    assert not any("Acute" in p or "-F" in p for p in os.listdir(out / "crops"))


def test_prepare_help():
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--help"])
    assert exc.value.code == 0


def test_bench_prepare_tiny():
    import argparse

    from vcfnet.bench.prepare import run as bench_prepare

    args = argparse.Namespace(n_images=4, height=96, width=80, boxes=2, workers=2)
    result = bench_prepare(args)
    assert result["images"] == 4 and result["workers"] == 2 and result["image_size"] == "96x80"
    one, two = result["radiographs_per_s_1_worker"], result["radiographs_per_s_2_workers"]
    assert result["speedup"] == pytest.approx(two / one)
    assert 0 < one < 1e4 and 0 < two < 1e4  # 4 radiographs of 96x80 px: not 0, not instantaneous


def test_default_key_file_outside_dataset(tmp_path, monkeypatch):
    from vcfnet.data.pseudonym import resolve_id_key

    monkeypatch.delenv("VCFNET_ID_KEY")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    images, xml = make_cohort(tmp_path, n_patients=2)
    out = tmp_path / "ds"
    first = prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, workers=1))
    key_file = tmp_path / "config" / "vcfnet" / "id_key"
    assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
    assert key_file.read_text().strip().encode() not in _all_bytes(out)
    second = prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, workers=1))
    assert list(first.manifest["patient_id"]) == list(second.manifest["patient_id"])
    assert resolve_id_key("explicit-key-123") == b"explicit-key-123"
    with pytest.raises(Exception, match="at least 8"):
        resolve_id_key("short")


BOX_C = (110, 20, 190, 100)


def make_multi_image_cohort(root: Path, n_patients: int = 12) -> tuple[Path, Path, dict]:
    """Patients with 2 or 3 radiographs each (same DICOM PatientID), 2-3 boxes per radiograph whose
    classes vary within a patient; returns (images, xml, {raw patient id: (radiographs, boxes)})."""
    images, xml = root / "images", root / "xml"
    images.mkdir(parents=True)
    expected = {}
    for i in range(n_patients):
        n_images = 2 + i % 2
        n_boxes = 0
        for j in range(n_images):
            name = f"{patient_id(i)}-view{j}.dcm"
            write_dicom(images / name, radiograph_values(), patient_id=patient_id(i))
            boxes = [BOX_A, BOX_B, BOX_C][: 2 + (i + j) % 2]
            objs = [(f"{CLASSES[(i + j + k) % 3]}-L{k + 1}", box) for k, box in enumerate(boxes)]
            write_voc(xml / f"{patient_id(i)}-view{j}.xml", name, W, H, objs)
            n_boxes += len(boxes)
        expected[patient_id(i)] = (n_images, n_boxes)
    return images, xml, expected


def test_split_keeps_all_radiographs_of_a_patient_together(tmp_path):
    images, xml, expected = make_multi_image_cohort(tmp_path)
    out = tmp_path / "ds"
    df = prepare_dataset(
        PrepareConfig(images=images, annotations=xml, out=out, workers=1, split="0.7", val=0.15)
    ).manifest
    # the pseudonymised patients have their 2-3 radiographs and all their boxes
    per_patient = df.groupby("patient_id").agg(
        images=("source_image", "nunique"), crops=("crop_path", "size")
    )
    assert sorted(map(tuple, per_patient.to_numpy())) == sorted(expected.values())
    assert df["source_image"].nunique() == sum(n for n, _ in expected.values())
    # every split is used, and no patient (so no radiograph) is in two of them
    assert set(df["split"]) == {"train", "val", "test"}
    assert df.groupby("patient_id")["split"].nunique().eq(1).all()
    assert df.groupby("source_image")["split"].nunique().eq(1).all()
    members = {s: set(g["patient_id"]) for s, g in df.groupby("split")}
    assert not (members["train"] & members["val"] or members["train"] & members["test"])
    assert not members["val"] & members["test"]
    assert sum(map(len, members.values())) == len(expected)


def test_prepare_never_deletes_or_overwrites_a_users_files(tmp_path):
    images, xml = make_cohort(tmp_path, n_patients=3)
    # a folder of the user's own that is not a vcfnet dataset: refused, untouched
    mine = tmp_path / "mine"
    (mine / "crops").mkdir(parents=True)
    (mine / "crops" / "holiday.png").write_bytes(b"precious")
    (mine / "manifest.csv").write_text("my,own,table\n")
    cfg = PrepareConfig(images=images, annotations=xml, out=mine)
    with pytest.raises(ConfigError, match="not a vcfnet dataset"):
        prepare_dataset(cfg)
    assert (mine / "crops" / "holiday.png").read_bytes() == b"precious"
    assert (mine / "manifest.csv").read_text() == "my,own,table\n"
    # inside a real dataset, only crops of the previous manifest are ever removed
    out = tmp_path / "ds"
    prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out))
    (out / "crops" / "note.png").write_bytes(b"mine too")
    (out / "crops" / ".crop-x.png.abc123.tmp").write_bytes(b"left by a killed run")
    again = prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, margin=0.2))
    assert again.info["crops_written"] == 6
    assert (out / "crops" / "note.png").read_bytes() == b"mine too"
    assert sorted(p.name for p in (out / "crops").iterdir() if p.name != "note.png") == sorted(
        Path(p).name for p in again.manifest["crop_path"]
    )  # the old crops and the stale temporary file are gone


def test_output_paths_are_checked_before_any_work(tmp_path):
    images, xml = make_cohort(tmp_path, n_patients=2)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        prepare_dataset(PrepareConfig(images=images, annotations=xml, out=a_file))
    out = tmp_path / "ds"
    cfg = PrepareConfig(
        images=images, annotations=xml, out=out, skip_invalid=True, rejects=tmp_path
    )
    with pytest.raises(ConfigError, match=r"--rejects .* is a folder"):
        prepare_dataset(cfg)
    assert not out.exists()  # nothing was cropped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image,patient_id,site\nimg0.png,P1,Smith, John\n", "row 2 has 4 fields"),
        ("image,patient_id\nimg0.png,P1\nimg0.png,P2\n", "row 3 lists image 'img0.png' again"),
    ],
)
def test_patients_csv_is_parsed_strictly(tmp_path, text, message):
    from vcfnet.data.sources import read_patients_csv

    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        read_patients_csv(tmp_path / "p.csv")


def test_patients_csv_repeats_of_one_image_with_the_same_id_are_fine(tmp_path):
    from vcfnet.data.sources import read_patients_csv

    (tmp_path / "p.csv").write_text(
        'image,patient_id,site\nimg0.png,P1,"Smith, John"\nIMG0.png,P1,x\n'
    )
    rows = read_patients_csv(tmp_path / "p.csv")
    assert list(rows) == ["img0.png"] and rows["img0.png"]["patient_id"] == "P1"


def test_duplicate_boxes(tmp_path, caplog):
    images, xml = make_cohort(tmp_path, n_patients=1)
    (name,) = [p.name for p in images.iterdir()]
    (xml_file,) = list(xml.iterdir())
    write_voc(xml_file, name, W, H, [("Acute-L1", BOX_A), ("Acute-L1", BOX_A), ("Chronic", BOX_B)])
    out = tmp_path / "ds"
    result = prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, split="none"))
    assert len(result.manifest) == 2 and "repeats object 0" in caplog.text  # kept once
    write_voc(xml_file, name, W, H, [("Acute-L1", BOX_A), ("Pathologic-L1", BOX_A)])
    with pytest.raises(InputError, match="same box as object 0 but pathologic instead of acute"):
        prepare_dataset(PrepareConfig(images=images, annotations=xml, out=out, split="none"))


def test_xml_size_unlike_the_image_is_a_warning(tmp_path, caplog):
    images, xml = make_cohort(tmp_path, n_patients=1)
    (name,) = [p.name for p in images.iterdir()]
    (xml_file,) = list(xml.iterdir())
    write_voc(xml_file, name, 2 * W, 2 * H, [("Acute-L1", BOX_A)])  # boxed on a larger copy
    cfg = PrepareConfig(
        images=images, annotations=xml, out=tmp_path / "ds", split="none", workers=1
    )
    prepare_dataset(cfg)
    assert f"XML says {2 * W}x{2 * H} but the image is {W}x{H}" in caplog.text
