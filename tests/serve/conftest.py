"""Fixtures of the platform tests: an app (on SQLite in tmp_path, and again on a throw-away
PostgreSQL server: tests marked ``postgres``), users per role, a tiny model.

PostgreSQL comes from Debian's ``postgresql`` package (``tests/serve/postgres.py`` starts it);
without it those tests skip with the reason, or fail under CI=true (``require_or_skip``).
``-m "not postgres"`` leaves them out.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import require_or_skip
from tests.io.dicom_fixtures import write_dicom
from tests.predict_fixtures import make_run_dir
from vcfnet.serve import crud
from vcfnet.serve.app import create_app
from vcfnet.serve.settings import Settings

PASSWORD = "correct horse battery staple"
#: username -> (role, hospital)
USERS = {
    "clin": ("clinician", "North Hospital"),
    "clin2": ("clinician", "South Hospital"),
    "rad": ("radiologist", "Reading Center"),
    "rad2": ("radiologist", "Other Center"),
    "res": ("researcher", ""),
    "admin": ("admin", ""),
    "res2": ("researcher", ""),
}
ROLE_USER = {"clinician": "clin", "radiologist": "rad", "researcher": "res", "admin": "admin"}


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("serve-run"))


def make_settings(root: Path, model: Path | None = None, **changes) -> Settings:
    return Settings(
        data_dir=root / "data",
        model_path=model,
        id_key="serve-test-pseudonym-key",
        argon2_profile="CHEAPEST",
        **changes,
    )


def add_user(state, username: str, role: str, hospital: str = "") -> int:
    """An account with the tests' password on the app ``state``; its id."""
    with state.session_factory() as db:
        user = crud.create_user(
            db, state.settings, username=username, password=PASSWORD, role=role, hospital=hospital
        )
        db.commit()
        return user.id


def add_users(app) -> dict[str, int]:
    """One account per entry of ``USERS``: username -> id."""
    state = app.state.vcfnet
    return {name: add_user(state, name, role, hospital) for name, (role, hospital) in USERS.items()}


#: the databases the app fixtures run on
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server in a temporary folder for the whole session (see postgres.py)."""
    from tests.serve.postgres import PostgresError, PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    require_or_skip(
        bin_dir is not None, "PostgreSQL not found (pg_ctl); apt-get install postgresql"
    )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require_or_skip(False, "psycopg not installed; pip install 'psycopg[binary]'")
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except (PostgresError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        require_or_skip(False, f"PostgreSQL could not be started: {str(exc)[:300]}")
    yield server
    server.stop()


def database_url(request) -> Iterator[str | None]:
    """None (SQLite under the data folder) or a new PostgreSQL database, dropped afterwards."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture(params=DATABASES)
def db_url(request):
    yield from database_url(request)


@pytest.fixture(scope="module", params=DATABASES)
def module_db_url(request):
    yield from database_url(request)


def dispose(app) -> None:
    """Stop the app's job workers, close its database connections (before its PostgreSQL
    database is dropped)."""
    app.state.vcfnet.jobs.stop()
    app.state.vcfnet.session_factory.kw["bind"].dispose()


@pytest.fixture()
def settings(tmp_path, tiny_run_dir, db_url) -> Settings:
    return make_settings(tmp_path, tiny_run_dir, db_url=db_url)


@contextmanager
def running_app(settings: Settings) -> Iterator:
    """An app on ``settings`` with one user per role; its workers stopped and database closed
    on exit."""
    app = create_app(settings)
    add_users(app)
    try:
        yield app
    finally:
        dispose(app)


@pytest.fixture()
def app(settings):
    with running_app(settings) as app:
        yield app


def page_csrf(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]*)"', html)
    return match.group(1) if match else ""


def login(app, username: str, password: str = PASSWORD) -> TestClient:
    """A client logged in as ``username``; ``client.csrf`` holds the session's CSRF token."""
    client = TestClient(app, follow_redirects=False)
    response = post_login(client, username, password)
    assert response.status_code == 303, response.text
    client.csrf = page_csrf(client.get("/account").text)
    return client


def post_login(client: TestClient, username: str, password: str):
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]*)"', form).group(1)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def png_bytes(height: int = 240, width: int = 200, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def dicom_bytes(tmp_path: Path, **kwargs) -> bytes:
    rng = np.random.default_rng(3)
    stored = rng.integers(200, 3800, (256, 200), dtype=np.uint16)
    return write_dicom(tmp_path / "patient.dcm", stored, window=(2000, 4000), **kwargs).read_bytes()


def upload(client: TestClient, data: bytes, name: str = "image.png", api: bool = True):
    files = {"file": (name, data, "application/octet-stream")}
    if api:
        return client.post("/api/v1/cases", files=files, headers={"X-CSRF-Token": client.csrf})
    return client.post("/cases", files=files, data={"csrf_token": client.csrf})


BOXES = [
    {"level": "L1", "x1": 40, "y1": 50, "x2": 120, "y2": 110},
    {"level": "L2", "x1": 60, "y1": 130, "x2": 170, "y2": 200},
]


def put_boxes(client: TestClient, case_id: int, boxes=BOXES):
    return client.put(
        f"/api/v1/cases/{case_id}/boxes",
        json={"boxes": boxes},
        headers={"X-CSRF-Token": client.csrf},
    )


def sqlite_rows_text(db, skip_tables: tuple[str, ...] = ()) -> str:
    """Every row of every table of a SQLite database (but ``skip_tables``) as one string, for
    grepping it for patient data."""
    from sqlalchemy import text

    query = text("SELECT name FROM sqlite_master WHERE type='table'")
    tables = [r[0] for r in db.execute(query) if r[0] not in skip_tables]
    return " ".join(str(r) for t in tables for r in db.execute(text(f'SELECT * FROM "{t}"')))


def insert_user_row(connection, username: str, role: str, hospital: str = "") -> None:
    """User id 1 written with plain SQL, for migration tests on a database at an old revision
    (the ORM models describe the newest one)."""
    from sqlalchemy import text

    from vcfnet.serve.models import utcnow

    connection.execute(
        text(
            "INSERT INTO users (id, username, display_name, role, hospital, password_hash,"
            " is_active, created_at, password_changed_at)"
            " VALUES (1, :username, '', :role, :hospital, 'x', :active, :now, :now)"
        ),
        {"username": username, "role": role, "hospital": hospital, "active": True, "now": utcnow()},
    )
