"""Background jobs: claiming (two claimers never take one job, on SQLite and PostgreSQL), a
failed job's message reaching the user, the 202 path, and recovery of a dead worker's job."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select

from tests.serve.conftest import (
    insert_user_row,
    login,
    make_settings,
    png_bytes,
    put_boxes,
    running_app,
)
from tests.serve.conftest import upload as upload_file
from vcfnet.serve import jobs
from vcfnet.serve.db import make_engine, make_session_factory
from vcfnet.serve.migrations import upgrade_database
from vcfnet.serve.models import Analysis, Job


@pytest.fixture()
def factory(tmp_path, db_url):
    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'jobs.db'}")
    upgrade_database(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _add_jobs(factory, n: int, kind: str = "noop") -> list[int]:
    with factory() as db:
        ids = [jobs.enqueue(db, kind, {"i": i}).id for i in range(n)]
        db.commit()
    return ids


def test_two_claimers_never_take_the_same_job(factory):
    """Two threads (two connections) claim 60 jobs as fast as they can: each job exactly once."""
    ids = _add_jobs(factory, 60)
    taken: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(name: str) -> None:
        start.wait()
        with factory() as db:
            while (job := jobs.claim(db, name)) is not None:
                taken[name].append(job.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not set(taken["a"]) & set(taken["b"])
    assert sorted(taken["a"] + taken["b"]) == ids
    with factory() as db:
        rows = db.scalars(select(Job)).all()
    assert {j.state for j in rows} == {"running"} and {j.attempts for j in rows} == {1}
    assert {j.claimed_by for j in rows if j.id in taken["a"]} <= {"a"}


@pytest.mark.postgres
def test_claim_skips_a_row_locked_by_another_claimer(postgres_server):
    """SKIP LOCKED: while one transaction holds the oldest queued job, another claimer takes the
    next one at once instead of waiting."""
    url = postgres_server.create_database()
    engine = make_engine(url)
    try:
        upgrade_database(engine)
        factory = make_session_factory(engine)
        first, second = _add_jobs(factory, 2)
        with factory() as holder, factory() as other:
            locked = holder.scalars(
                select(Job.id).order_by(Job.id).limit(1).with_for_update(skip_locked=True)
            ).first()
            assert locked == first
            other.connection().exec_driver_sql("SET lock_timeout = '2s'")
            assert jobs.claim(other, "other").id == second
            holder.rollback()
    finally:
        engine.dispose()
        postgres_server.drop_database(url)


def test_dead_workers_job_is_requeued_then_failed(factory):
    [job_id] = _add_jobs(factory, 1)
    with factory() as db:
        assert jobs.claim(db, "dead-worker").id == job_id  # and the worker dies here
        assert jobs.reclaim_stale(db, stale_after_s=600) == 0  # not stale yet
        later = jobs.utcnow() + dt.timedelta(seconds=601)
        assert jobs.reclaim_stale(db, stale_after_s=600, now=later) == 1
        assert jobs.outcome(db, job_id).state == "queued"
        ran = jobs.run_one(factory, {"noop": lambda _db, job: {"i": job.payload["i"]}}, "w2")
        assert ran
        assert jobs.outcome(db, job_id).state == "done"
        assert jobs.outcome(db, job_id).result == {"i": 0}
        # the dead worker's late finish is ignored (the job is no longer its)
        assert not jobs.finish(db, job_id, "dead-worker", error="late")
        assert jobs.outcome(db, job_id).state == "done"
    [job_id] = _add_jobs(factory, 1)
    with factory() as db:
        for _ in range(jobs.MAX_ATTEMPTS):
            assert jobs.claim(db, "dead-worker").id == job_id
            jobs.reclaim_stale(db, 0, now=jobs.utcnow() + dt.timedelta(seconds=1))
        current = jobs.outcome(db, job_id)
    assert current.state == "failed" and "worker died" in current.error
    with pytest.raises(jobs.JobFailedError, match="worker died"):
        jobs.result_or_raise(current)


def test_a_long_job_with_a_heartbeat_is_not_taken_twice(factory):
    """The job runs 4x longer than the stale timeout; its heartbeat keeps the reclaimer off."""
    [job_id] = _add_jobs(factory, 1)
    stop = threading.Event()

    def reclaimer() -> None:
        with factory() as db:
            while not stop.is_set():
                jobs.reclaim_stale(db, stale_after_s=0.5)
                time.sleep(0.1)

    thread = threading.Thread(target=reclaimer)
    thread.start()
    try:
        slow = {"noop": lambda _db, _job: time.sleep(2.0) or {}}
        assert jobs.run_one(factory, slow, "w", heartbeat_s=0.1)
    finally:
        stop.set()
        thread.join()
    with factory() as db:
        current = jobs.outcome(db, job_id)
    assert (current.state, current.attempts) == ("done", 1)


def test_failed_analysis_records_its_error_and_the_user_sees_it(app):
    clin = login(app, "clin")
    case_id = upload_file(clin, png_bytes()).json()["id"]  # no boxes: the job fails
    response = clin.post(f"/cases/{case_id}/analyse", data={"csrf_token": clin.csrf})
    assert response.status_code == 409
    assert "mark at least one vertebra" in response.text
    with app.state.vcfnet.session_factory() as db:
        job = db.scalars(select(Job)).one()
    assert (job.state, job.attempts, job.case_id) == ("failed", 1, case_id)
    assert job.error.startswith("mark at least one vertebra") and job.result == {"status": 409}
    page = clin.get(f"/cases/{case_id}").text
    assert "The last analysis failed: mark at least one vertebra" in page
    assert 'http-equiv="refresh"' not in page


def test_a_server_fault_in_a_job_is_a_500_with_its_type(app, monkeypatch):
    import vcfnet.serve.analysis_jobs as analysis_jobs

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(analysis_jobs, "analyse_case", broken)
    clin = login(app, "clin")
    case_id = upload_file(clin, png_bytes()).json()["id"]
    put_boxes(clin, case_id)
    response = clin.post(f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf})
    assert response.status_code == 500
    assert response.json()["detail"] == "the job failed (KeyError: 'boom')"


def test_slow_analysis_answers_202_and_the_page_refreshes(tmp_path, tiny_run_dir):
    """No worker in this process (another machine's would run it): the API answers 202 with the
    job; the case page says it is queued and refreshes; once a worker ran it, the job is done."""
    settings = make_settings(tmp_path, tiny_run_dir, job_workers=0, job_wait_s=0.2)
    with running_app(settings) as app:
        clin = login(app, "clin")
        case_id = upload_file(clin, png_bytes()).json()["id"]
        put_boxes(clin, case_id)
        response = clin.post(
            f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf}
        )
        assert response.status_code == 202
        body = response.json()
        assert body["state"] == "queued" and body["url"] == f"/api/v1/jobs/{body['job']}"
        page = clin.get(f"/cases/{case_id}").text
        assert "Analysis queued" in page and 'http-equiv="refresh"' in page
        state = app.state.vcfnet
        assert jobs.run_one(state.session_factory, state.jobs.handlers, "elsewhere")
        done = clin.get(body["url"]).json()
        assert done["state"] == "done" and done["analysis"]
        assert login(app, "clin2").get(body["url"]).status_code == 404  # another hospital
        with state.session_factory() as db:
            assert db.scalar(select(func.count()).select_from(Analysis)) == 1
        assert "Analysis queued" not in clin.get(f"/cases/{case_id}").text


def test_upgrade_from_0003_to_0006_adds_the_jobs_tables(tmp_path, db_url):
    """From the previous revision: rows survive, the new tables appear empty and match the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect, text

    from vcfnet.serve.models import Base

    engine = make_engine(db_url or f"sqlite:///{tmp_path / 'old.db'}")
    upgrade_database(engine, "0003")
    assert "jobs" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        insert_user_row(connection, "r", "admin")
    upgrade_database(engine, "0006_jobs")
    assert {"jobs", "platform_settings"} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT username FROM users")).scalar_one() == "r"
        assert connection.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    engine.dispose()
