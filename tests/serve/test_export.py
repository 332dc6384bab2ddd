"""Signed reports as DICOM SR (read back with pydicom and highdicom) and PDF (read back with pypdf);
the de-identified Secondary Capture they reference. No patient identity in any of them."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.sr.codedict import codes
from pydicom.uid import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from tests.io.dicom_fixtures import FAKE_IDENTITY
from tests.serve.conftest import BOXES, dicom_bytes, login, put_boxes, upload
from vcfnet.labels import CLASS_NAMES
from vcfnet.serve.export import CLASS_CODES, LEVEL_SITES, PROBABILITY_CODES

hd = pytest.importorskip("highdicom")
pypdf = pytest.importorskip("pypdf")

TEXT = "Acute fracture of L1 <b>&amp; old L2 wedge."


@pytest.fixture()
def signed(app, tmp_path):
    """A DICOM full of patient data uploaded, boxed (L1, L2), analysed, read by rad (who revealed
    the AI result) and signed: L1 acute, L2 chronic, L3 (no box) normal."""
    clin, rad = login(app, "clin"), login(app, "rad")
    upload_bytes = dicom_bytes(tmp_path)
    case = upload(clin, upload_bytes, "patient.dcm").json()
    put_boxes(clin, case["id"])
    analysis = clin.post(
        f"/api/v1/cases/{case['id']}/analyses", headers={"X-CSRF-Token": clin.csrf}
    ).json()
    form = {"csrf_token": clin.csrf, "radiologist": "rad"}
    assert clin.post(f"/cases/{case['id']}/reads", data=form).status_code == 303
    read_id = 1
    findings = {
        "csrf_token": rad.csrf,
        "finding_L1": "acute",
        "finding_L2": "chronic",
        "finding_L3": "normal",
    }
    rad.post(f"/reads/{read_id}/impression", data=findings)
    # not signed yet: nothing to download
    assert clin.get(f"/reads/{read_id}/report.dcm").status_code == 404
    assert clin.get(f"/cases/{case['id']}/report.pdf").status_code == 404
    rad.post(f"/reads/{read_id}/reveal", data={"csrf_token": rad.csrf})
    rad.post(f"/reads/{read_id}/report", data={**findings, "text": TEXT})
    assert rad.post(f"/reads/{read_id}/sign", data={"csrf_token": rad.csrf}).status_code == 303
    return {
        "app": app,
        "clin": clin,
        "rad": rad,
        "case": case,
        "analysis": analysis,
        "read": read_id,
        "upload": pydicom.dcmread(io.BytesIO(upload_bytes)),
    }


def assert_no_identity(data: bytes) -> None:
    for value in FAKE_IDENTITY.values():
        assert value.encode() not in data, value
        assert value.replace("^", " ").encode() not in data, value


def test_dicom_sr_of_a_signed_report(signed):
    clin, case, analysis = signed["clin"], signed["case"], signed["analysis"]
    response = clin.get(f"/reads/{signed['read']}/report.dcm")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    assert "attachment" in response.headers["content-disposition"]
    data = response.content
    assert data[128:132] == b"DICM"
    assert_no_identity(data)
    ds = pydicom.dcmread(io.BytesIO(data))
    again = pydicom.dcmread(io.BytesIO(clin.get(f"/cases/{case['id']}/report.dcm").content))
    assert again.SOPInstanceUID == ds.SOPInstanceUID  # the same report, the same instance
    assert ds.SOPClassUID == ComprehensiveSRStorage
    assert ds.PatientID == case["patient_pseudonym"]
    assert not ds.get("PatientBirthDate") and not ds.get("AccessionNumber")
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "VERIFIED"
    uploaded = signed["upload"]
    assert ds.StudyInstanceUID != uploaded.StudyInstanceUID

    sc_response = clin.get(f"/cases/{case['id']}/image.dcm")
    assert sc_response.status_code == 200
    assert_no_identity(sc_response.content)
    sc = pydicom.dcmread(io.BytesIO(sc_response.content))
    assert sc.SOPClassUID == SecondaryCaptureImageStorage
    assert sc.SOPInstanceUID != uploaded.SOPInstanceUID
    assert sc.StudyInstanceUID == ds.StudyInstanceUID
    assert sc.PatientIdentityRemoved == "YES" and sc.PatientID == case["patient_pseudonym"]
    png = np.asarray(Image.open(io.BytesIO(clin.get(f"/cases/{case['id']}/image").content)))
    np.testing.assert_array_equal(sc.pixel_array, png)

    sr = hd.sr.srread(io.BytesIO(data))
    assert isinstance(sr, hd.sr.ComprehensiveSR)
    report = sr.content
    [device] = report.get_observer_contexts(observer_type=codes.DCM.Device)
    attributes = device.observer_identifying_attributes
    model = analysis["model"]
    assert attributes.name == model["name"] and attributes.serial_number == model["hash"]
    assert model["version"] in attributes.model_name
    [person] = report.get_observer_contexts(observer_type=codes.DCM.Person)
    assert person.observer_identifying_attributes.name == "rad^"

    groups = report.get_planar_roi_measurement_groups(referenced_sop_instance_uid=sc.SOPInstanceUID)
    assert len(groups) == len(BOXES)
    by_level = {}
    for group in groups:
        [site] = group.finding_sites
        level = next(lvl for lvl, code in LEVEL_SITES.items() if site.value == code)
        by_level[level] = group
    assert set(by_level) == {"L1", "L2"}
    expected_class = {"L1": "acute", "L2": "chronic"}
    model_findings = {f["level"]: f for f in analysis["findings"]}
    for box in BOXES:
        group = by_level[box["level"]]
        roi = group.roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        x1, y1, x2, y2 = box["x1"], box["y1"], box["x2"], box["y2"]
        np.testing.assert_allclose(roi.value, [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]])
        assert group.finding_type == CLASS_CODES[expected_class[box["level"]]]
        probabilities = model_findings[box["level"]]["probabilities"]
        for name in CLASS_NAMES:
            [measurement] = group.get_measurements(name=PROBABILITY_CODES[name])
            assert measurement.value == pytest.approx(probabilities[name], abs=1e-6)
            assert measurement.unit == codes.UCUM.NoUnits
    # a level the radiologist classified without a box: a group without a region
    [unboxed] = report.get_image_measurement_groups(finding_site=LEVEL_SITES["L3"])
    assert unboxed.finding_type == CLASS_CODES["normal"]


def test_addendum_makes_a_new_sr_instance_with_updated_classes(signed):
    rad, clin, read = signed["rad"], signed["clin"], signed["read"]
    first = pydicom.dcmread(io.BytesIO(rad.get(f"/reads/{read}/report.dcm").content))
    addendum = {"csrf_token": rad.csrf, "text": "L2 is acute too.", "finding_L2": "acute"}
    assert rad.post(f"/reads/{read}/addendum", data=addendum).status_code == 303
    second = hd.sr.srread(io.BytesIO(clin.get(f"/reads/{read}/report.dcm").content))
    assert second.SOPInstanceUID != first.SOPInstanceUID and second.InstanceNumber == 2
    [group] = second.content.get_planar_roi_measurement_groups(finding_site=LEVEL_SITES["L2"])
    assert group.finding_type == CLASS_CODES["acute"]
    text = pdf_text(clin.get(f"/reads/{read}/report.pdf").content)
    assert "Addendum v2" in text and "L2 is acute too." in text


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_pdf_of_a_signed_report(signed):
    clin, case, analysis = signed["clin"], signed["case"], signed["analysis"]
    response = clin.get(f"/cases/{case['id']}/report.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert_no_identity(response.content)
    text = pdf_text(response.content)
    assert_no_identity(text.encode())
    assert "Research software, not a medical device" in text
    assert case["patient_pseudonym"] in text
    for line in ("L1: acute", "L2: chronic", "L3: normal", TEXT, "Signed by rad"):
        assert line in text, line
    assert analysis["model"]["name"] in text and "p(acute)" in text
    probability = analysis["findings"][0]["probabilities"]["acute"]
    assert f"{probability:.3f}" in text
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    assert any(page.images for page in reader.pages)  # the heatmap
    assert signed["rad"].get(f"/reads/{signed['read']}/report.pdf").status_code == 200
    page = clin.get(f"/cases/{case['id']}").text  # the case page links both downloads
    assert f"/reads/{signed['read']}/report.pdf" in page
    assert f"/reads/{signed['read']}/report.dcm" in page


def test_a_reader_who_did_not_reveal_the_ai_gets_no_model_result(app):
    clin, rad = login(app, "clin"), login(app, "rad")
    case_id = upload(clin, dicom_bytes_png()).json()["id"]
    put_boxes(clin, case_id)
    clin.post(f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf})
    clin.post(f"/cases/{case_id}/reads", data={"csrf_token": clin.csrf, "radiologist": "rad"})
    findings = {"csrf_token": rad.csrf, "finding_L1": "acute"}
    rad.post("/reads/1/impression", data=findings)
    rad.post("/reads/1/report", data={**findings, "text": "no AI"})
    assert rad.post("/reads/1/sign", data={"csrf_token": rad.csrf}).status_code == 303
    sr = hd.sr.srread(io.BytesIO(rad.get("/reads/1/report.dcm").content))
    assert not sr.content.get_observer_contexts(observer_type=codes.DCM.Device)
    for group in sr.content.get_planar_roi_measurement_groups():
        assert group.get_measurements() == []
    assert "Model result" not in pdf_text(rad.get("/reads/1/report.pdf").content)
    # the clinician sees the model's result in the same report
    clin_sr = hd.sr.srread(io.BytesIO(clin.get("/reads/1/report.dcm").content))
    assert clin_sr.content.get_observer_contexts(observer_type=codes.DCM.Device)
    # other users: not found
    assert login(app, "rad2").get("/reads/1/report.dcm").status_code == 404
    assert login(app, "clin2").get(f"/cases/{case_id}/report.pdf").status_code == 404


def dicom_bytes_png() -> bytes:
    from tests.serve.conftest import png_bytes

    return png_bytes()
