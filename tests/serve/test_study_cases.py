"""Study cases from files (issue 14): a zip of radiographs with LabelImg XML, a prepared dataset
(zip upload or a server folder inside an allowed one), path and zip safety."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.io.dicom_fixtures import FAKE_IDENTITY
from tests.serve.conftest import dicom_bytes, login, make_settings, png_bytes
from vcfnet.data.manifest import MANIFEST_COLUMNS, write_dataset_info, write_manifest
from vcfnet.io.voc import voc_xml
from vcfnet.preprocess import CropSpec
from vcfnet.serve.models import AuditLog, Case, Study
from vcfnet.serve.study_cases import inner_box


@pytest.fixture()
def allowed(tmp_path) -> Path:
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


@pytest.fixture()
def settings(tmp_path, tiny_run_dir, db_url, allowed):
    return make_settings(
        tmp_path, tiny_run_dir, db_url=db_url, study_import_dirs=(allowed.resolve(),)
    )


def new_study(res) -> int:
    response = res.post("/studies", data={"csrf_token": res.csrf, "name": "imported"})
    assert response.status_code == 303
    return int(response.headers["location"].rsplit("/", 1)[1])


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def post_zip(client, url: str, data: bytes, **form):
    files = {"file": ("study.zip", data, "application/zip")}
    return client.post(url, files=files, data={"csrf_token": client.csrf, **form})


def study_boxes(app, study_id: int) -> list[list[dict]]:
    with app.state.vcfnet.session_factory() as db:
        return [sc.boxes for sc in db.get(Study, study_id).cases]


def test_labelimg_zip_gives_boxes_and_truth_from_the_xml(app, tmp_path):
    res = login(app, "res")
    study_id = new_study(res)
    objects = [
        ("Acute-L1", (40, 50, 120, 110)),
        ("Normal-L3", (50, 120, 150, 170)),
        ("Chronic-L2", (60, 130, 170, 260)),
    ]  # fmt: skip  (L2 runs past the image: clipped)
    files = {
        "set/images/a.png": png_bytes(seed=1),
        "set/annotations/a.xml": voc_xml("a.png", 200, 240, objects).encode(),
        "set/images/b.dcm": dicom_bytes(tmp_path),
        "set/annotations/b.xml": voc_xml(
            "b.dcm", 200, 256, [("Pathologic-T12", (20, 30, 90, 80))]
        ).encode(),
        "set/images/lonely.png": png_bytes(seed=2),  # no XML: left out
        "set/annotations/c.xml": voc_xml("c.png", 10, 10, [("Acute-L4", (1, 1, 5, 5))]).encode(),
        "../evil.xml": b"<annotation/>",  # a traversal name: ignored
    }
    response = post_zip(res, f"/studies/{study_id}/import/labelimg", zip_bytes(files))
    assert response.status_code == 303, response.text
    page = res.get(response.headers["location"]).text
    assert "Imported 2 radiograph(s) with 3 vertebra(e)" in page and "2 file(s) left out" in page
    assert study_boxes(app, study_id) == [
        [
            {"level": "L1", "x1": 40.0, "y1": 50.0, "x2": 120.0, "y2": 110.0, "truth": "acute"},
            {"level": "L2", "x1": 60.0, "y1": 130.0, "x2": 170.0, "y2": 240.0, "truth": "chronic"},
        ],
        [{"level": "T12", "x1": 20.0, "y1": 30.0, "x2": 90.0, "y2": 80.0, "truth": "pathologic"}],
    ]
    with app.state.vcfnet.session_factory() as db:  # de-identified as any upload
        cases = db.query(Case).all()
        audit = " ".join(a.detail for a in db.query(AuditLog).all())
    stored = json.dumps([[getattr(c, k) for k in ("patient_pseudonym", "hospital")] for c in cases])
    assert FAKE_IDENTITY["PatientID"] not in stored and "Testperson" not in stored
    assert "LabelImg zip: 2 case(s), 3 vertebra(e), 2 skipped" in audit


def test_a_bad_zip_or_a_launched_study_is_refused(app):
    res = login(app, "res")
    study_id = new_study(res)
    response = post_zip(res, f"/studies/{study_id}/import/labelimg", b"not a zip")
    assert response.status_code == 422 and "not a zip file" in response.text
    other = login(app, "rad")  # not a researcher
    response = post_zip(other, f"/studies/{study_id}/import/labelimg", zip_bytes({}))
    assert response.status_code == 403


def make_dataset(root: Path, n: int = 4, margin: float = 0.1) -> Path:
    """A dataset as ``vcfnet prepare`` writes it: crops, manifest.csv, dataset.json."""
    (root / "crops").mkdir(parents=True)
    rows = []
    labels = ["acute", "chronic", "pathologic", "acute"]
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 256, (120, 96), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "crops" / f"c{i}.png")
        rows.append(
            {
                "crop_path": f"crops/c{i}.png",
                "label": labels[i % 4],
                "level": ["L1", "L2"][i % 2],
                "patient_id": f"p{i}",
                "site": "A",
                "split": "test" if i < 3 else "train",
                "age": 70,
                "sex": "F",
                "source_image": f"img{i}",
                "box_xmin": 0,
                "box_ymin": 0,
                "box_xmax": 10,
                "box_ymax": 10,
                "pixel_spacing_mm": 0.2,
            }
        )
    write_manifest(pd.DataFrame(rows, columns=MANIFEST_COLUMNS), root)
    write_dataset_info({"crop_spec": CropSpec(margin=margin).to_dict()}, root)
    return root


def test_prepared_dataset_from_a_zip_and_from_an_allowed_folder(app, allowed, tmp_path):
    res = login(app, "res")
    dataset = make_dataset(allowed / "ds")
    files = {
        f"ds/{p.relative_to(dataset).as_posix()}": p.read_bytes()
        for p in dataset.rglob("*")
        if p.is_file()
    }
    study_id = new_study(res)
    response = post_zip(res, f"/studies/{study_id}/import/dataset", zip_bytes(files), split="test")
    assert response.status_code == 303, response.text
    boxes = study_boxes(app, study_id)
    assert [b[0]["truth"] for b in boxes] == ["acute", "chronic", "pathologic"]  # the test split
    assert [b[0]["level"] for b in boxes] == ["L1", "L2", "L1"]
    expected = inner_box(96, 120, 0.1)  # the vertebra inside the crop's margin
    assert {k: boxes[0][0][k] for k in expected} == pytest.approx(expected)
    assert expected["x1"] == pytest.approx(8.0) and expected["y2"] == pytest.approx(110.0)

    second = new_study(res)
    form = {"csrf_token": res.csrf, "folder": str(dataset), "split": "", "limit": "2"}
    response = res.post(f"/studies/{second}/import/dataset", data=form)
    assert response.status_code == 303, response.text
    assert len(study_boxes(app, second)) == 2  # the limit


def test_server_folders_outside_the_allowed_ones_are_refused(app, allowed, tmp_path):
    res = login(app, "res")
    study_id = new_study(res)
    outside = make_dataset(tmp_path / "elsewhere")
    (allowed / "link").symlink_to(outside)  # a link out of the allowed folder
    for folder in (str(outside), str(allowed / "link"), f"{allowed}/../elsewhere", "ds", "/nope"):
        form = {"csrf_token": res.csrf, "folder": folder}
        response = res.post(f"/studies/{study_id}/import/dataset", data=form)
        assert response.status_code == 422, folder
        assert "inside the folders the admin allowed" in response.text
    assert study_boxes(app, study_id) == []
