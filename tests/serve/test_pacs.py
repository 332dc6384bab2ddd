"""The platform against a real PACS: Orthanc (Debian's orthanc + orthanc-dicomweb) on loopback
(tests marked ``pacs``), and the send queue and secrets without one.

Push by C-STORE from Orthanc -> a case; search and import over DICOMweb; sign -> the SR and the
heatmap arrive in the ORIGINAL study and the SR reads back with the same box, class and
probabilities; Orthanc down -> the result waits in the queue and arrives after it restarts.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select, text

from tests.conftest import require_or_skip
from tests.io.dicom_fixtures import FAKE_IDENTITY, write_dicom
from tests.serve import orthanc as orthanc_mod
from tests.serve.conftest import (
    add_user,
    dispose,
    login,
    make_settings,
    put_boxes,
    running_app,
    sqlite_rows_text,
)
from vcfnet.serve import pacs, pacs_send
from vcfnet.serve.app import create_app
from vcfnet.serve.dicom_receiver import DicomReceiver
from vcfnet.serve.models import AuditLog, Case, PacsOrigin, PacsOutbox, utcnow
from vcfnet.serve.pacs_send import LABEL, PacsSender, send_due

DX = "1.2.840.10008.5.1.4.1.1.1.1"


@pytest.fixture(scope="module")
def receiver_port() -> int:
    return orthanc_mod.free_port()


@pytest.fixture(scope="module")
def orthanc(receiver_port):
    """Orthanc with DICOMweb, vcfnet's AE (VCFNET at ``receiver_port``) as a modality."""
    binary, plugin = orthanc_mod.find_orthanc(), orthanc_mod.find_dicomweb_plugin()
    require_or_skip(binary is not None, "Orthanc not installed (apt-get install orthanc)")
    require_or_skip(
        plugin is not None,
        "Orthanc's DICOMweb plugin not installed (apt-get install orthanc-dicomweb)",
    )
    server = orthanc_mod.OrthancServer(binary, plugin, "VCFNET", receiver_port)
    try:
        server.start()
    except (orthanc_mod.OrthancError, OSError) as exc:
        server.cleanup()
        require_or_skip(False, f"Orthanc could not be started: {str(exc)[:300]}")
    yield server
    server.cleanup()


@pytest.fixture
def app(tmp_path, tiny_run_dir, receiver_port):
    settings = make_settings(
        tmp_path,
        tiny_run_dir,
        dicom_port=receiver_port,
        allowed_aes=("ORTHANC",),
        pacs_retry_seconds=0.2,
    )
    with running_app(settings) as app:
        add_user(app.state.vcfnet, "pacs", "clinician", "North Hospital")
        yield app


def configure(app, orthanc, after_analysis: bool = False) -> None:
    admin = login(app, "admin")
    form = {
        "csrf_token": admin.csrf,
        "qido_url": orthanc.dicomweb_url,
        "auth": "basic",
        "username": orthanc_mod.USER,
        "secret": orthanc_mod.PASSWORD,
        "send_on_sign": "true",
        **({"send_after_analysis": "true"} if after_analysis else {}),
    }
    assert admin.post("/admin/pacs", data=form).status_code == 303
    page = admin.get("/admin/pacs").text
    assert orthanc_mod.PASSWORD not in page and "set; leave blank" in page


def synthetic_dx(tmp_path: Path, accession: str) -> bytes:
    """A DX radiograph (with FAKE_IDENTITY, the given accession) as Part 10 bytes."""
    rng = np.random.default_rng(7)
    image = rng.integers(300, 3500, (160, 128), dtype=np.uint16)
    ds = pydicom.dcmread(write_dicom(tmp_path / f"{accession}.dcm", image, window=(2000, 4000)))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DX
    ds.AccessionNumber = accession
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def put_in_orthanc(orthanc, data: bytes) -> tuple[str, pydicom.Dataset]:
    response = orthanc.rest("post", "/instances", data=data)
    assert response.status_code == 200, response.text
    return response.json()["ID"], pydicom.dcmread(io.BytesIO(data))


def import_case(app, orthanc, tmp_path, accession: str, caplog) -> tuple[int, pydicom.Dataset]:
    """Search by accession as a clinician, import the study; (case id, the original)."""
    _, original = put_in_orthanc(orthanc, synthetic_dx(tmp_path, accession))
    clin = login(app, "clin")
    with caplog.at_level(logging.DEBUG):
        page = clin.post("/pacs/search", data={"csrf_token": clin.csrf, "accession": accession})
    assert page.status_code == 200, page.text[:300]
    assert accession not in caplog.text  # the search terms are not logged
    uid = original.StudyInstanceUID
    assert f'value="{uid}"' in page.text
    by_date = clin.post("/pacs/search", data={"csrf_token": clin.csrf, "study_date": "2023-01-15"})
    assert f'value="{uid}"' in by_date.text  # write_dicom's study date
    response = clin.post("/pacs/import", data={"csrf_token": clin.csrf, "study_uid": uid})
    assert response.status_code == 303, response.text[:300]
    case_id = int(response.headers["location"].rsplit("/", 1)[1])
    return case_id, original


def sign_read(app, case_id: int) -> None:
    """Boxes, analysis, a read by rad: impression, reveal, report (L1 acute), sign."""
    clin, rad = login(app, "clin"), login(app, "rad")
    boxes = [{"level": "L1", "x1": 20, "y1": 30, "x2": 90, "y2": 80}]
    assert put_boxes(clin, case_id, boxes).status_code == 200
    assert clin.post(f"/cases/{case_id}/analyse", data={"csrf_token": clin.csrf}).status_code == 303
    form = {"csrf_token": clin.csrf, "radiologist": "rad"}
    assert clin.post(f"/cases/{case_id}/reads", data=form).status_code == 303
    with app.state.vcfnet.session_factory() as db:
        read_id = db.get(Case, case_id).read_requests[-1].id
    findings = {"csrf_token": rad.csrf, "finding_L1": "acute"}
    rad.post(f"/reads/{read_id}/impression", data=findings)
    rad.post(f"/reads/{read_id}/reveal", data={"csrf_token": rad.csrf})
    rad.post(f"/reads/{read_id}/report", data={**findings, "text": "acute L1"})
    assert rad.post(f"/reads/{read_id}/sign", data={"csrf_token": rad.csrf}).status_code == 303


def study_instances(orthanc, study_uid: str) -> dict[str, str]:
    """SOP Instance UID -> modality of the instances Orthanc holds in ``study_uid``."""
    found = orthanc.rest("get", f"/dicom-web/studies/{study_uid}/instances").json()
    return {i["00080018"]["Value"][0]: i.get("00080060", {}).get("Value", [""])[0] for i in found}


def check_sr_in_original_study(app, orthanc, case_id: int, original) -> None:
    import highdicom as hd

    instances = study_instances(orthanc, original.StudyInstanceUID)
    modalities = sorted(instances.values())
    assert "SR" in modalities and "OT" in modalities, modalities  # SR and the heatmap capture
    [sr_uid] = [uid for uid, modality in instances.items() if modality == "SR"]
    series = orthanc.rest("get", f"/dicom-web/studies/{original.StudyInstanceUID}/series").json()
    sr_bytes = None
    for s in series:
        series_uid = s["0020000E"]["Value"][0]
        url = (
            f"/dicom-web/studies/{original.StudyInstanceUID}/series/{series_uid}/instances/{sr_uid}"
        )
        response = orthanc.rest(
            "get", url, headers={"Accept": 'multipart/related; type="application/dicom"'}
        )
        if response.status_code == 200:
            sr_bytes = response.content
            break
    assert sr_bytes is not None
    start = sr_bytes.index(b"\x00" * 128 + b"DICM")
    sr = hd.sr.ComprehensiveSR.from_dataset(pydicom.dcmread(io.BytesIO(sr_bytes[start:])))
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert sr.PatientID == original.PatientID  # in the PACS: the original patient
    [group] = sr.content.get_planar_roi_measurement_groups(
        referenced_sop_instance_uid=original.SOPInstanceUID  # the boxes lie on the original
    )
    corners = group.roi.value
    assert corners[0].tolist() == [20, 30] and corners[2].tolist() == [90, 80]
    assert group.finding_type.value == "acute-vcf"
    with app.state.vcfnet.session_factory() as db:
        case = db.get(Case, case_id)
        finding = case.analyses[-1].findings[0]
        sent = {m.name.value: m.value for m in group.get_measurements()}
        for name, p in finding.probabilities.items():
            assert float(sent[f"p-{name}"]) == pytest.approx(float(p), abs=1e-6)
    heatmap = [s for s in series if "not for diagnosis" in str(s)]
    assert heatmap, "the heatmap series is labelled"


@pytest.mark.pacs
def test_orthanc_push_by_c_store_files_a_case_without_phi(app, orthanc, tmp_path):
    state = app.state.vcfnet
    instance_id, original = put_in_orthanc(orthanc, synthetic_dx(tmp_path, "ACC-PUSH-1"))
    with DicomReceiver.from_state(state, host="127.0.0.1"):
        response = orthanc.rest("post", "/modalities/vcfnet/store", json=[instance_id])
    assert response.status_code == 200, response.text
    with state.session_factory() as db:
        [case] = db.scalars(select(Case)).all()
        origin = db.get(PacsOrigin, case.id)
        assert origin.sop_instance_uid == original.SOPInstanceUID
        assert case.study_instance_uid != original.StudyInstanceUID
    assert_no_phi_outside_the_mapping(state, original, "ACC-PUSH-1")


def assert_no_phi_outside_the_mapping(state, original, accession: str) -> None:
    """Neither the original UIDs nor the patient's identity in any table but ``pacs_origins``
    (the documented exception), nor in any file of the data folder but the database."""
    uids = [original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID]
    phi = [*uids, *FAKE_IDENTITY.values(), accession]
    with state.session_factory() as db:
        rows = sqlite_rows_text(db, ("pacs_origins",))
    files = [p for p in Path(state.settings.data_dir).rglob("*") if p.is_file()]
    blobs = [p.read_bytes() for p in files if not p.name.startswith("vcfnet.db")]
    assert any(p.suffix == ".png" for p in files)
    for value in phi:
        assert value not in rows, value
        assert not any(value.encode() in blob for blob in blobs), value


@pytest.mark.pacs
def test_dicomweb_search_import_sign_sends_sr_and_heatmap(app, orthanc, tmp_path, caplog):
    configure(app, orthanc, after_analysis=True)
    case_id, original = import_case(app, orthanc, tmp_path, "ACC-IMPORT-2", caplog)
    with app.state.vcfnet.session_factory() as db:
        audit = [e.detail for e in db.scalars(select(AuditLog))]
        assert not any("ACC-IMPORT-2" in d for d in audit)
        assert db.get(Case, case_id).study_instance_uid != original.StudyInstanceUID
    sign_read(app, case_id)
    state = app.state.vcfnet
    assert send_due(state.session_factory, state.storage, state.id_key, 0.2) == 2
    with state.session_factory() as db:
        after_analysis, after_signing = db.scalars(select(PacsOutbox).order_by(PacsOutbox.id))
        assert after_analysis.analysis_id and after_signing.read_id
        for item in (after_analysis, after_signing):
            assert (item.state, item.attempts, item.last_error) == ("sent", 1, "")
        sent = db.scalars(select(AuditLog.detail).where(AuditLog.action == "pacs.send.sent"))
        assert list(sent) == [
            f"item {after_analysis.id}, attempt 1",
            f"item {after_signing.id}, attempt 1",
        ]
    check_sr_in_original_study(app, orthanc, case_id, original)
    assert_no_phi_outside_the_mapping(state, original, "ACC-IMPORT-2")
    page = login(app, "admin").get("/admin/pacs").text
    assert "sent" in page and LABEL not in page


@pytest.mark.pacs
def test_orthanc_stopped_mid_send_the_result_arrives_after_restarts(
    app, orthanc, tmp_path, caplog, monkeypatch
):
    configure(app, orthanc)
    case_id, original = import_case(app, orthanc, tmp_path, "ACC-RETRY-3", caplog)
    sign_read(app, case_id)
    real_store = pacs_send._store

    def stop_then_store(stow, datasets):  # the SR is built, the PACS goes away, then STOW-RS
        orthanc.stop()
        return real_store(stow, datasets)

    monkeypatch.setattr(pacs_send, "_store", stop_then_store)
    try:
        state = app.state.vcfnet
        assert send_due(state.session_factory, state.storage, state.id_key, 0.2) == 1
        with state.session_factory() as db:
            [item] = db.scalars(select(PacsOutbox)).all()
            assert item.state == "pending" and item.attempts == 1
            assert item.last_error.startswith("ConnectionError")
        assert "pending" in login(app, "admin").get("/admin/pacs").text
    finally:
        monkeypatch.setattr(pacs_send, "_store", real_store)
        orthanc.start()
    dispose(app)  # the platform restarts too: a new app on the same data folder and database
    restarted = create_app(app.state.vcfnet.settings)
    state = restarted.state.vcfnet
    with PacsSender(state, poll_s=0.2):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with state.session_factory() as db:
                if db.scalars(select(PacsOutbox.state)).one() == "sent":
                    break
            time.sleep(0.2)
    with state.session_factory() as db:
        assert db.scalars(select(PacsOutbox.state)).one() == "sent"
    check_sr_in_original_study(restarted, orthanc, case_id, original)
    dispose(restarted)


def test_the_secret_is_encrypted_and_never_shown(app):
    admin = login(app, "admin")
    form = {"csrf_token": admin.csrf, "qido_url": "http://127.0.0.1:9/dicom-web/", "auth": "bearer"}
    assert admin.post("/admin/pacs", data={**form, "secret": "tok-3141592653"}).status_code == 303
    assert admin.post("/admin/pacs", data=form).status_code == 303  # blank: the secret is kept
    state = app.state.vcfnet
    with state.session_factory() as db:
        rows = " ".join(str(r) for r in db.execute(text("SELECT * FROM pacs_endpoints")))
        audit = " ".join(e.detail for e in db.scalars(select(AuditLog)))
        endpoint = pacs.get_endpoint(db)
        assert pacs.decrypt_secret(state.id_key, endpoint.secret) == "tok-3141592653"
        assert endpoint.qido_url == "http://127.0.0.1:9/dicom-web"
    assert "tok-3141592653" not in rows + audit
    page = admin.get("/admin/pacs").text
    assert "tok-3141592653" not in page and "set; leave blank to keep it" in page
    bad = admin.post("/admin/pacs", data={**form, "qido_url": "file:///etc/passwd"})
    assert bad.status_code == 422


def test_queue_retries_with_backoff_and_fails_without_the_link(app, tmp_path):
    """A PACS that does not answer: the row waits (doubling delays); purged links: failed."""
    from tests.serve.conftest import dicom_bytes, upload

    state = app.state.vcfnet
    admin = login(app, "admin")
    url = f"http://127.0.0.1:{orthanc_mod.free_port()}/dicom-web"  # nothing listens there
    form = {"csrf_token": admin.csrf, "qido_url": url, "auth": "none", "send_on_sign": "true"}
    assert admin.post("/admin/pacs", data=form).status_code == 303
    clin = login(app, "clin")
    uploaded = upload(clin, dicom_bytes(tmp_path)).json()["id"]
    sign_read(app, uploaded)  # an uploaded case has no link to a PACS image: nothing queued
    with state.session_factory() as db:
        assert db.scalars(select(PacsOutbox)).all() == []
        db.add(
            PacsOrigin(
                case_id=uploaded,
                study_uid="1.2.3",
                series_uid="1.2.3.4",
                sop_instance_uid="1.2.3.4.5",
                sop_class_uid=DX,
            )
        )
        db.commit()
    sign_read(app, uploaded)
    args = (state.session_factory, state.storage, state.id_key, 10.0)
    delays = []
    for _ in range(2):
        assert send_due(*args) == 1
        assert send_due(*args) == 0  # not due yet
        with state.session_factory() as db:
            item = db.scalars(select(PacsOutbox)).one()
            assert item.state == "pending" and item.last_error.startswith("ConnectionError")
            delays.append((item.next_attempt_at - utcnow()).total_seconds())
            item.next_attempt_at = utcnow()
            db.commit()
    assert 8 < delays[0] <= 10 and 18 < delays[1] <= 20
    assert admin.post("/admin/pacs/purge", data={"csrf_token": admin.csrf}).status_code == 303
    assert send_due(*args) == 1
    with state.session_factory() as db:
        item = db.scalars(select(PacsOutbox)).one()
        assert (item.state, item.attempts) == ("failed", 3)
        assert item.last_error == "the link to the original image was purged"
        assert db.scalars(select(PacsOrigin)).all() == []
    retry = admin.post(f"/admin/pacs/outbox/{item.id}/retry", data={"csrf_token": admin.csrf})
    assert retry.status_code == 303
    assert "Retry" not in admin.get("/admin/pacs").text  # pending again
