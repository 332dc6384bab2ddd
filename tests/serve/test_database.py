"""Alembic migrations, append-only audit log, immutable signed reports."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tests.serve.conftest import insert_user_row, login, png_bytes, put_boxes, upload
from vcfnet.serve.db import make_engine, make_session_factory
from vcfnet.serve.migrations import upgrade_database
from vcfnet.serve.models import AuditLog, Base, ImmutableRowError, Report


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from vcfnet.serve.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_app_runs_on_the_database_asked_for(app, db_url):
    engine = app.state.vcfnet.session_factory.kw["bind"]
    assert engine.dialect.name == ("postgresql" if db_url else "sqlite")


def test_upgrade_from_empty_matches_the_models(tmp_path, db_url):
    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade_database(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], "models changed without an Alembic revision: " + repr(diff[:3])
    upgrade_database(engine)  # a second start is a no-op
    engine.dispose()


def test_downgrade_to_base_and_up_again(tmp_path):
    from alembic import command

    from vcfnet.serve.migrations import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'cycle.db'}")
    upgrade_database(engine)
    config = alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_database(engine)
    assert "cases" in inspect(engine).get_table_names()


def test_audit_log_is_append_only(app):
    factory = app.state.vcfnet.session_factory
    login(app, "clin")
    with factory() as db:
        entry = db.query(AuditLog).first()
        entry.action = "forged"
        with pytest.raises(ImmutableRowError):
            db.flush()
        db.rollback()
        db.delete(db.query(AuditLog).first())
        with pytest.raises(ImmutableRowError):
            db.flush()


def test_signed_report_is_immutable(app):
    clin, rad = login(app, "clin"), login(app, "rad")
    case_id = upload(clin, png_bytes()).json()["id"]
    put_boxes(clin, case_id)
    clin.post(f"/cases/{case_id}/reads", data={"csrf_token": clin.csrf, "radiologist": "rad"})
    findings = {"csrf_token": rad.csrf, "finding_L1": "acute"}
    rad.post("/reads/1/impression", data=findings)
    rad.post("/reads/1/report", data={**findings, "text": "original"})
    assert rad.post("/reads/1/sign", data={"csrf_token": rad.csrf}).status_code == 303
    with app.state.vcfnet.session_factory() as db:
        report = db.query(Report).one()
        report.text = "changed afterwards"
        with pytest.raises(ImmutableRowError):
            db.flush()


def test_session_factory_on_a_fresh_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x' / 'nested.db'}")
    upgrade_database(engine)
    with make_session_factory(engine)() as db:
        assert db.query(AuditLog).count() == 0


def test_upgrade_0001_to_0002_gives_existing_cases_new_uids(tmp_path, db_url):
    from sqlalchemy import text

    from vcfnet.serve.models import utcnow

    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_database(engine, "0001")
    now = utcnow()
    with engine.begin() as connection:
        insert_user_row(connection, "c", "clinician", "H")
        for case_id in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO cases (id, patient_pseudonym, image_key, source_format, width,"
                    " height, sex, hospital, created_by_id, created_at)"
                    " VALUES (:id, 'patient-x', :key, 'png', 10, 10, '', 'H', 1, :now)"
                ),
                {"id": case_id, "key": f"images/{case_id}.png", "now": now},
            )
    upgrade_database(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT study_instance_uid, series_instance_uid, sop_instance_uid FROM cases")
        ).all()
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    engine.dispose()
    uids = [uid for row in rows for uid in row]
    assert len(uids) == 6 and len(set(uids)) == 6
    assert all(uid.startswith("2.25.") and len(uid) <= 64 for uid in uids)


def test_every_route_commits_before_its_response():
    """get_db runs with scope="function": the commit precedes the response (a 303's next page sees
    it); FastAPI's default would commit after the response is sent, a race the browser tests hit."""
    import importlib
    import pkgutil

    from fastapi.routing import APIRoute

    import vcfnet.serve.api.routes as route_package
    from vcfnet.serve.api.deps import get_db

    def db_scopes(dependant):
        for sub in dependant.dependencies:
            if sub.call is get_db:
                yield sub.scope
            yield from db_scopes(sub)

    names = [m.name for m in pkgutil.iter_modules(route_package.__path__)]
    modules = [importlib.import_module(f"{route_package.__name__}.{n}") for n in names]
    modules = [m for m in modules if hasattr(m, "router")]
    assert len(modules) >= 7  # every route module, new ones included
    routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
    scopes = {r.path: set(db_scopes(r.dependant)) for r in routes}
    assert any(scopes.values())
    assert all(s <= {"function"} for s in scopes.values()), scopes


def test_upgrade_0002_to_0003_adds_the_reader_study_tables(tmp_path, db_url):
    """Existing rows survive; the study tables appear empty and match the models."""
    from sqlalchemy import text

    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_database(engine, "0002")
    assert "studies" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        insert_user_row(connection, "r", "researcher")
    upgrade_database(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"studies", "study_cases", "study_readers", "study_reads"} <= tables
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username FROM users")).scalar_one() == "r"
        assert connection.execute(text("SELECT count(*) FROM studies")).scalar_one() == 0
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            head_revision()
        )
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    engine.dispose()


def test_upgrade_0003_to_0004_adds_the_pacs_tables_and_downgrades(tmp_path, db_url):
    from alembic import command
    from sqlalchemy import text

    from vcfnet.serve.migrations import alembic_config

    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_database(engine, "0003")
    assert "pacs_outbox" not in inspect(engine).get_table_names()
    upgrade_database(engine, "0004_pacs")
    pacs_tables = {"pacs_endpoints", "pacs_origins", "pacs_outbox"}
    assert pacs_tables <= set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0003"
        )
    assert not pacs_tables & set(inspect(engine).get_table_names())


def test_upgrade_to_0005_gives_slider_studies_their_rating_scale(tmp_path, db_url):
    """A study made with confidence sliders before 0005 keeps them as ``ratings = 'sliders'``."""
    from sqlalchemy import text

    from vcfnet.serve.models import utcnow

    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_database(engine, "0003")
    now = utcnow()
    with engine.begin() as connection:
        insert_user_row(connection, "r", "researcher")
        for study_id, confidence in ((1, True), (2, False)):
            connection.execute(
                text(
                    "INSERT INTO studies (id, owner_id, name, status, design, washout_days, seed,"
                    " confidence, created_at) VALUES (:id, 1, 's', 'draft', 'sequential', 0, 0,"
                    " :confidence, :now)"
                ),
                {"id": study_id, "confidence": confidence, "now": now},
            )
    upgrade_database(engine, "0005_studies")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, ratings FROM studies ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(1, "sliders"), (2, "none")]
    engine.dispose()
