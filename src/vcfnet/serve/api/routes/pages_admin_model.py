"""Admin pages: the active model (card, upload + switch) and retention (settings, purge job)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from sqlalchemy import select

from vcfnet.serve import crud, model_admin, retention
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.api.routes import render, see_other
from vcfnet.serve.ingest import read_limited
from vcfnet.serve.jobs import enqueue, result_or_raise
from vcfnet.serve.ml import ModelUnavailableError
from vcfnet.serve.models import Job

router = APIRouter(include_in_schema=False)
admin = page_user("admin")


@router.get("/admin/model")
def model_page(*, request: Request, auth: Annotated[Auth, Depends(admin)], db: DbSession):
    state = app_state(request)
    model_admin.sync_active_model(db, state)
    try:
        card = model_admin.model_card(state.models)
    except ModelUnavailableError:
        card = None
    limit_mib = state.settings.max_upload_bytes // (1024 * 1024)
    return render(request, "admin_model.html", auth, card=card, limit_mib=limit_mib)


@router.post("/admin/model")
def upload_model(
    *,
    request: Request,
    file: Annotated[UploadFile, File()],
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    """Validate the upload with vcfnet's loaders and switch to it (sync route: loading blocks)."""
    state = app_state(request)
    data = read_limited(file.file, state.settings.max_upload_bytes)
    model_admin.install_model(db, state, auth.actor, data, file.filename)
    return see_other("/admin/model")


def _last_purge(db) -> Job | None:
    stmt = select(Job).where(Job.kind == retention.JOB_KIND).order_by(Job.id.desc()).limit(1)
    return db.scalars(stmt).first()


@router.get("/admin/retention")
def retention_page(*, request: Request, auth: Annotated[Auth, Depends(admin)], db: DbSession):
    policy = retention.current(db, app_state(request).settings)
    days = policy.delete_after_days
    expired = len(retention.expired_cases(db, days)) if days else 0
    return render(
        request,
        "admin_retention.html",
        auth,
        policy=policy,
        expired=expired,
        last=_last_purge(db),
    )


@router.post("/admin/retention")
def set_retention(
    *,
    keep_originals: Annotated[bool, Form()] = False,
    delete_after_days: Annotated[str, Form(max_length=6)] = "",
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    text = delete_after_days.strip()
    if text and not text.isdigit():
        raise crud.InvalidInputError("days must be a whole number, or empty to keep cases")
    retention.save(db, auth.actor, keep_originals, int(text) if text else None)
    return see_other("/admin/retention")


@router.post("/admin/retention/purge")
def purge_now(*, request: Request, auth: Annotated[Auth, Depends(admin)], db: DbSession):
    """Run the purge as a job (any worker) and wait for it."""
    state = app_state(request)
    job = enqueue(db, retention.JOB_KIND, {"user_id": auth.user.id, "client": auth.actor.client})
    db.commit()
    state.jobs.start()
    state.jobs.notify()
    current = state.jobs.wait(job.id, state.settings.job_wait_s)
    if current.state in ("done", "failed"):
        result_or_raise(current)
    return see_other("/admin/retention")
