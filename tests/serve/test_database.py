"""Alembic migrations, append-only audit log, immutable signed reports."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tests.serve.conftest import login, png_bytes, put_boxes, upload
from vcfnet.serve.db import make_engine, make_session_factory
from vcfnet.serve.migrations import upgrade_database
from vcfnet.serve.models import AuditLog, Base, ImmutableRowError, Report


def test_upgrade_from_empty_matches_the_models(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade_database(engine)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], "models changed without an Alembic revision: " + repr(diff[:3])
    upgrade_database(engine)  # a second start is a no-op


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


def test_every_route_commits_before_its_response():
    """get_db runs with scope="function": the commit precedes the response (a 303's next page sees
    it); FastAPI's default would commit after the response is sent, a race the browser tests hit."""
    from fastapi.routing import APIRoute

    from vcfnet.serve.api.deps import get_db
    from vcfnet.serve.api.routes import api_v1, pages_admin, pages_auth, pages_cases, pages_reads

    def db_scopes(dependant):
        for sub in dependant.dependencies:
            if sub.call is get_db:
                yield sub.scope
            yield from db_scopes(sub)

    modules = (api_v1, pages_admin, pages_auth, pages_cases, pages_reads)
    routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
    scopes = {r.path: set(db_scopes(r.dependant)) for r in routes}
    assert any(scopes.values())
    assert all(s <= {"function"} for s in scopes.values()), scopes
