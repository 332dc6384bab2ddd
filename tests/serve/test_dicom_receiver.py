"""The DICOM C-STORE receiver: a pynetdicom sender on loopback pushes synthetic radiographs."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from tests.io.dicom_fixtures import FAKE_IDENTITY, write_dicom
from tests.serve.conftest import add_user, make_settings, sqlite_rows_text
from vcfnet.errors import ConfigError
from vcfnet.serve.app import build_state
from vcfnet.serve.dicom_receiver import DicomReceiver
from vcfnet.serve.models import AuditLog, Case, PacsOrigin

pytest.importorskip("pynetdicom")

LOOPBACK = "127.0.0.1"
DX = "1.2.840.10008.5.1.4.1.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"
HOSPITAL = "North Hospital"


def make_state(tmp_path: Path, **changes):
    state = build_state(make_settings(tmp_path, **changes))
    add_user(state, "pacs", "clinician", HOSPITAL)
    return state


@pytest.fixture
def receiver(tmp_path):
    state = make_state(tmp_path)
    recv = DicomReceiver.from_state(state, host=LOOPBACK, port=0)
    recv.start()
    yield recv
    recv.stop()
    state.session_factory.kw["bind"].dispose()


def radiograph(tmp_path: Path, sop_class: str = DX, pixels: bool = True, **kwargs):
    """A synthetic DX (with FAKE_IDENTITY) read back, its SOP class set to ``sop_class``."""
    image = np.full((96, 64), 500, dtype=np.uint16)
    image[:24, :16] = 4000
    path = write_dicom(tmp_path / f"in-{sop_class}-{pixels}.dcm", image, **kwargs)
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    if not pixels:
        del ds.PixelData
    return ds


def associate(port: int, calling: str = "PACS1", contexts=(DX,)):
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    for uid in contexts:
        ae.add_requested_context(uid)
    return ae.associate(LOOPBACK, port, ae_title="VCFNET")


def send(port: int, ds, calling: str = "PACS1") -> int:
    assoc = associate(port, calling, (str(ds.SOPClassUID),))
    assert assoc.is_established
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return int(status.Status)


def cases(recv: DicomReceiver) -> list[Case]:
    with recv.session_factory() as db:
        return list(db.scalars(select(Case).order_by(Case.id)))


def actions(recv: DicomReceiver) -> list[tuple[str, str]]:
    with recv.session_factory() as db:
        return [(a.action, a.detail) for a in db.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_received_radiograph_becomes_a_deidentified_case(receiver, tmp_path):
    ds = radiograph(tmp_path)
    assert send(receiver.port, ds) == 0x0000
    (case,) = cases(receiver)
    assert case.hospital == HOSPITAL and case.source_format == "dicom"
    assert (case.width, case.height) == (64, 96)
    assert case.study_instance_uid != ds.StudyInstanceUID
    assert case.sop_instance_uid != ds.SOPInstanceUID
    assert ("case.receive", "dicom; from AE PACS1") in actions(receiver)
    # the same instance again: filed once; another instance of the study: same study UID
    assert send(receiver.port, ds) == 0x0000
    second = radiograph(tmp_path)
    second.StudyInstanceUID = ds.StudyInstanceUID
    assert send(receiver.port, second) == 0x0000
    first, other = cases(receiver)
    assert other.study_instance_uid == first.study_instance_uid
    assert other.sop_instance_uid != first.sop_instance_uid
    assert [a for a, _ in actions(receiver)].count("dicom.duplicate") == 1
    # no identity string in any row or any file of the data folder (database and WAL included)
    with receiver.session_factory() as db:
        rows = sqlite_rows_text(db)
    data_dir = Path(receiver.settings.data_dir)
    files = [p.read_bytes() for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in data_dir.rglob("*"))
    for value in FAKE_IDENTITY.values():
        assert value not in rows
        assert not any(value.encode() in blob for blob in files), value


def test_unsupported_sop_class_is_refused_at_association(receiver, tmp_path):
    assoc = associate(receiver.port, contexts=(DX, CT))
    assert assoc.is_established
    try:
        accepted = {str(c.abstract_syntax) for c in assoc.accepted_contexts}
        rejected = {str(c.abstract_syntax) for c in assoc.rejected_contexts}
        assert accepted == {DX} and rejected == {CT}
        with pytest.raises(ValueError):
            assoc.send_c_store(radiograph(tmp_path, CT))
    finally:
        assoc.release()
    assert cases(receiver) == []


def test_non_image_object_gets_a_failure_status(receiver, tmp_path):
    assert send(receiver.port, radiograph(tmp_path, pixels=False)) == 0xA900
    assert cases(receiver) == []
    ((action, detail),) = actions(receiver)[-1:]
    assert action == "dicom.refused" and "0xA900" in detail and "PACS1" in detail


def test_over_size_dataset_is_refused_before_decoding(tmp_path):
    state = make_state(tmp_path, max_dicom_bytes=4096)  # the radiograph is 12 KiB
    with DicomReceiver.from_state(state, host=LOOPBACK, port=0) as recv:
        assert send(recv.port, radiograph(tmp_path)) == 0xA700  # Refused: Out of Resources
    assert cases(recv) == []
    ((action, detail),) = actions(recv)[-1:]
    assert action == "dicom.refused" and "over the limit of 4096" in detail


def test_original_uids_only_in_the_mapping_table(receiver, tmp_path):
    ds = radiograph(tmp_path)
    assert send(receiver.port, ds) == 0x0000
    with receiver.session_factory() as db:
        (case,) = db.scalars(select(Case)).all()
        origin = db.get(PacsOrigin, case.id)
        assert (origin.study_uid, origin.sop_instance_uid) == (
            ds.StudyInstanceUID,
            ds.SOPInstanceUID,
        )
        rows = sqlite_rows_text(db, ("pacs_origins",))
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert uid not in rows
    files = [p for p in Path(receiver.settings.data_dir).rglob("*") if p.is_file()]
    for path in files:
        if not path.name.startswith("vcfnet.db"):  # the database: checked per table above
            assert ds.SOPInstanceUID.encode() not in path.read_bytes()


def test_secondary_capture_only_when_enabled(receiver, tmp_path):
    assoc = associate(receiver.port, contexts=(SC,))
    assert not assoc.is_established or not assoc.accepted_contexts
    if assoc.is_established:
        assoc.release()
    state = make_state(tmp_path / "sc", dicom_secondary_capture=True)
    with DicomReceiver.from_state(state, host=LOOPBACK, port=0) as recv:
        assert send(recv.port, radiograph(tmp_path, SC)) == 0x0000  # modality DX
        ct = radiograph(tmp_path, SC)
        ct.Modality = "CT"
        assert send(recv.port, ct) == 0xA900
    assert len(cases(recv)) == 1


def test_unknown_calling_ae_is_rejected_with_an_allow_list(tmp_path):
    state = make_state(tmp_path, allowed_aes=("PACS1",))
    with DicomReceiver.from_state(state, host=LOOPBACK, port=0) as recv:
        assoc = associate(recv.port, calling="INTRUDER")
        assert assoc.is_rejected
        assert send(recv.port, radiograph(tmp_path), calling="PACS1") == 0x0000
    assert len(cases(recv)) == 1


def test_receiver_needs_the_pacs_account_and_stops_cleanly(tmp_path):
    state = build_state(make_settings(tmp_path))
    with pytest.raises(ConfigError, match="vcfnet users add pacs"):
        DicomReceiver.from_state(state, host=LOOPBACK, port=0).start()
    state = make_state(tmp_path / "b")
    before = threading.active_count()
    recv = DicomReceiver.from_state(state, host=LOOPBACK, port=0)
    port = recv.start()
    assert send(port, radiograph(tmp_path)) == 0x0000
    recv.stop()
    recv.stop()  # idempotent
    assert not associate(port).is_established
    assert threading.active_count() <= before


def test_settings_from_the_command_line(tmp_path):
    from vcfnet.cli.main import build_parser
    from vcfnet.cli.serve import settings_from_args

    dicom = ["--dicom-port", "11112", "--ae-title", "VCFNET", "--allow-ae", "PACS1"]
    more = ["--allow-ae", "PACS2", "--pacs-user", "orthanc", "--dicom-max-mib", "3"]
    args = build_parser("serve").parse_args(["serve", "--data", str(tmp_path), *dicom, *more])
    settings = settings_from_args(args)
    assert settings.dicom_port == 11112 and settings.ae_title == "VCFNET"
    assert settings.allowed_aes == ("PACS1", "PACS2") and settings.pacs_username == "orthanc"
    assert settings.max_dicom_bytes == 3 * 1024 * 1024
    assert replace(settings, dicom_port=None).dicom_port is None
