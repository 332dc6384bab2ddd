"""Analyses as background jobs: a request enqueues one, any worker (any process) runs it, and the
request waits up to ``Settings.job_wait_s`` for the outcome, so the page and the API answer as
before; past that they answer "queued/running" and the case page refreshes itself until done."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vcfnet.serve import pacs_send
from vcfnet.serve.analysis import analyse_case
from vcfnet.serve.crud import Actor, NotFoundError
from vcfnet.serve.jobs import JobOutcome, JobRunner, enqueue, result_or_raise
from vcfnet.serve.model_admin import sync_active_model
from vcfnet.serve.models import Analysis, Case, Job, User

KIND = "analyse"


def analysis_handler(state):
    """The ``analyse`` job handler of an app (``state``: its AppState; the model is looked up
    when the job runs, so a model switched by an admin applies to the next job)."""

    def run(db: Session, job: Job) -> dict[str, Any]:
        case = db.get(Case, job.payload["case_id"])
        user = db.get(User, job.payload["user_id"])
        if case is None or user is None:
            raise NotFoundError("the case was deleted before its analysis ran")
        actor = Actor(user, job.payload.get("client", ""))
        sync_active_model(db, state)  # an admin may have switched the model in another process
        analysis = analyse_case(db, state.storage, state.models, actor, case)
        pacs_send.enqueue_analysis(db, analysis)  # its heatmap to the PACS, if the admin wants it
        return {"analysis_id": analysis.id}

    return run


def request_analysis(
    db: Session, runner: JobRunner, actor: Actor, case: Case, wait_s: float
) -> tuple[Analysis | None, JobOutcome]:
    """Enqueue an analysis of ``case`` and wait up to ``wait_s``: (analysis, outcome) when done,
    (None, outcome) while queued/running; JobFailedError (its message, its status) if it failed."""
    job = enqueue(
        db, KIND, {"case_id": case.id, "user_id": actor.user.id, "client": actor.client}, case.id
    )
    db.commit()
    runner.start()  # no-op once running (started at app start-up; TestClient skips lifespan)
    runner.notify()
    current = runner.wait(job.id, wait_s)
    if current.state not in ("done", "failed"):
        return None, current
    result = result_or_raise(current)
    return db.get(Analysis, result["analysis_id"], populate_existing=True), current


def latest_job(db: Session, case_id: int) -> Job | None:
    """The newest analysis job of a case (what the case page shows while it is not done)."""
    stmt = select(Job).where(Job.case_id == case_id, Job.kind == KIND).order_by(Job.id.desc())
    return db.scalars(stmt.limit(1)).first()


def job_dict(job: Job | JobOutcome) -> dict[str, Any]:
    return {
        "job": job.id,
        "state": job.state,
        "attempts": job.attempts,
        "error": job.error,
        "url": f"/api/v1/jobs/{job.id}",
    }
