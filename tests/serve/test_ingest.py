"""Uploads: refused files store nothing; a DICOM's patient data never reaches the disk."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from PIL import Image
from sqlalchemy import func, select

from tests.io.dicom_fixtures import FAKE_IDENTITY
from tests.serve.conftest import dicom_bytes, login, png_bytes, upload
from vcfnet.serve.models import Case


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` (a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 80), 128).save(buffer, format="JPEG")
    return buffer.getvalue()


def stored_files(app) -> list:
    root = app.state.vcfnet.storage.root
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix not in {".db", ".db-wal"}
        and not p.name.endswith(("-wal", "-shm"))
    )


def case_count(app) -> int:
    with app.state.vcfnet.session_factory() as db:
        return db.scalar(select(func.count(Case.id)))


REFUSED = {
    "not an image": (b"%PDF-1.4 not a radiograph at all", "report.pdf", 415),
    "html": (b"<html><script>alert(1)</script></html>", "x.png", 415),
    "png/html polyglot": (png_bytes() + b"<script>alert(1)</script>", "poly.png", 415),
    "jpeg/zip polyglot": (jpeg_bytes() + b"PK\x03\x04" + b"\x00" * 40, "poly.jpg", 415),
    "dicom with a PE preamble": (b"MZ" + b"\x90" * 126 + b"DICM" + b"\x00" * 64, "x.dcm", 415),
    "60000x60000 png bomb": (png_claiming(60000, 60000), "bomb.png", 413),
    "truncated png": (png_bytes()[:60], "cut.png", 422),
    "path traversal name": (png_bytes(), "../../etc/passwd.png", 400),
    "windows traversal name": (png_bytes(), "..\\..\\boot.png", 400),
    "hidden file name": (png_bytes(), ".htaccess", 400),
}


@pytest.mark.parametrize("api", [True, False], ids=["api", "page"])
@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_upload_stores_nothing(app, name, api):
    data, file_name, status = REFUSED[name]
    clin = login(app, "clin")
    response = upload(clin, data, file_name, api=api)
    assert response.status_code == status, response.text[:300]
    if api:
        assert response.json()["detail"]  # a one-line reason
    assert case_count(app) == 0
    assert stored_files(app) == []


def test_upload_over_the_size_limit(tmp_path, tiny_run_dir):
    from tests.serve.conftest import add_users, make_settings
    from vcfnet.serve.app import create_app

    app = create_app(make_settings(tmp_path, tiny_run_dir, max_upload_bytes=20_000))
    add_users(app)
    clin = login(app, "clin")
    response = upload(clin, png_bytes(400, 400))  # ~160 kB of noise
    assert response.status_code == 413
    assert case_count(app) == 0 and stored_files(app) == []


def test_png_and_jpeg_are_accepted(app):
    clin = login(app, "clin")
    assert upload(clin, png_bytes()).status_code == 201
    case = upload(clin, jpeg_bytes(), "x.jpg").json()
    assert (case["width"], case["height"], case["source_format"]) == (64, 80, "jpeg")


def test_dicom_patient_data_is_not_stored(app, tmp_path):
    """Grep the database file and the whole data folder for the DICOM's identity."""
    clin = login(app, "clin")
    data = dicom_bytes(tmp_path)
    assert all(value.encode() in data for value in FAKE_IDENTITY.values())
    response = upload(clin, data, "Testperson_Quirinus_MRN-99417733.dcm")
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["source_format"] == "dicom" and case["patient_pseudonym"].startswith("patient-")
    again = upload(clin, data, "copy.dcm").json()
    assert again["patient_pseudonym"] == case["patient_pseudonym"]  # keyed, stable
    root = app.state.vcfnet.storage.root
    files = [p for p in root.rglob("*") if p.is_file()]
    on_sqlite = app.state.vcfnet.settings.db_url is None
    assert any(p.suffix == ".db" for p in files) == on_sqlite
    needles = [*FAKE_IDENTITY.values(), "Testperson", "Quirinus", "99417733", "1948"]
    for path in files:
        content = path.read_bytes()
        for needle in needles:
            assert not identity_in(content, needle), f"{needle!r} found in {path.name}"
    rows = database_dump(app)  # every row of every table, as text (PostgreSQL has no one file)
    assert case["patient_pseudonym"] in rows
    for needle in needles:
        assert not identity_in(rows.encode(), needle), f"{needle!r} found in the database"
    assert not (root / "originals").exists()


def identity_in(content: bytes, needle: str) -> bool:
    """Whether ``needle`` occurs in ``content``; a number only as a whole (not inside the random
    digits of a UID or a hex token, where "1948" turns up now and then)."""
    if not needle.isdigit():
        return needle.encode() in content
    return (
        re.search(rb"(?<![0-9A-Za-z])" + needle.encode() + rb"(?![0-9A-Za-z])", content) is not None
    )


def database_dump(app) -> str:
    from sqlalchemy import select

    from vcfnet.serve.models import Base

    with app.state.vcfnet.session_factory() as db:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in db.execute(select(table))
        )


def test_keep_originals_when_configured(tmp_path, tiny_run_dir):
    from tests.serve.conftest import add_users, make_settings
    from vcfnet.serve.app import create_app

    app = create_app(make_settings(tmp_path, tiny_run_dir, keep_originals=True))
    add_users(app)
    clin = login(app, "clin")
    assert upload(clin, dicom_bytes(tmp_path), "x.dcm").status_code == 201
    assert len(list((app.state.vcfnet.storage.root / "originals").glob("*.dicom"))) == 1


def test_crash_between_file_and_commit_leaves_no_half_case(app, monkeypatch):
    """The PNG is written first; if the process dies before the commit, no case row exists and
    the file is removed (on an exception) or swept at the next start (on a kill)."""
    from sqlalchemy.orm import Session

    def die(self):
        raise RuntimeError("killed mid-upload")

    clin = login(app, "clin")
    monkeypatch.setattr(Session, "commit", die)
    with pytest.raises(RuntimeError, match="killed mid-upload"):
        upload(clin, png_bytes())
    monkeypatch.undo()
    assert case_count(app) == 0
    assert [p for p in stored_files(app) if "images" in p.parts] == []


def test_orphan_files_are_swept_at_start(app, settings):
    import os
    import time

    from vcfnet.serve.app import create_app

    images = app.state.vcfnet.storage.root / "images"
    images.mkdir(parents=True, exist_ok=True)
    orphan = images / "0123456789abcdef.png"
    orphan.write_bytes(png_bytes())
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    clin = login(app, "clin")
    kept = upload(clin, png_bytes()).json()["id"]
    create_app(settings)  # a restart
    assert not orphan.exists()
    assert clin.get(f"/cases/{kept}/image").status_code == 200
