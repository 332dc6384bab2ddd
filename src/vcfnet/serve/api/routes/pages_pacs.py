"""PACS pages: the admin's endpoint, send queue and UID mapping; the clinician's search and
import. Search terms travel in POST bodies (never in a URL, so no access log holds them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy import select

from vcfnet.serve import crud, pacs, pacs_send
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.api.routes import render, see_other
from vcfnet.serve.models import PACS_AUTH, PacsOutbox

router = APIRouter(include_in_schema=False)
admin = page_user("admin")
clinician = page_user("clinician")
QUEUE_PAGE = 100


@router.get("/admin/pacs")
def admin_page(*, request: Request, auth: Annotated[Auth, Depends(admin)], db: DbSession):
    queue = db.scalars(select(PacsOutbox).order_by(PacsOutbox.id.desc()).limit(QUEUE_PAGE)).all()
    crud.audit(db, auth.actor, "admin.pacs.view")
    return render(
        request,
        "admin_pacs.html",
        auth,
        endpoint=pacs.get_endpoint(db),
        auth_kinds=PACS_AUTH,
        queue=queue,
        origins=pacs.count_origins(db),
    )


@router.post("/admin/pacs")
def save_endpoint(
    *,
    request: Request,
    qido_url: Annotated[str, Form(max_length=512)],
    wado_url: Annotated[str, Form(max_length=512)] = "",
    stow_url: Annotated[str, Form(max_length=512)] = "",
    auth_kind: Annotated[str, Form(alias="auth", max_length=8)] = "none",
    username: Annotated[str, Form(max_length=128)] = "",
    secret: Annotated[str, Form(max_length=4096)] = "",
    send_on_sign: Annotated[bool, Form()] = False,
    send_after_analysis: Annotated[bool, Form()] = False,
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    form = pacs.EndpointForm(
        qido_url, wado_url, stow_url, auth_kind, username, secret, send_on_sign, send_after_analysis
    )
    pacs.save_endpoint(db, auth.actor, app_state(request).id_key, form)
    return see_other("/admin/pacs")


@router.post("/admin/pacs/purge")
def purge(*, auth: Annotated[Auth, Depends(admin)], db: DbSession):
    pacs.purge_origins(db, auth.actor)
    return see_other("/admin/pacs")


@router.post("/admin/pacs/outbox/{item_id}/retry")
def retry(*, item_id: int, auth: Annotated[Auth, Depends(admin)], db: DbSession):
    item = db.get(PacsOutbox, item_id)
    if item is None:
        raise crud.NotFoundError(f"queue item {item_id} not found")
    pacs_send.requeue(db, item)
    crud.audit(db, auth.actor, "pacs.outbox.retry", case_id=item.case_id, detail=f"item {item_id}")
    return see_other("/admin/pacs")


@router.get("/pacs")
def search_page(*, request: Request, auth: Annotated[Auth, Depends(clinician)], db: DbSession):
    configured = pacs.get_endpoint(db) is not None
    return render(request, "pacs_search.html", auth, configured=configured, hits=None)


@router.post("/pacs/search")
def search(
    *,
    request: Request,
    accession: Annotated[str, Form(max_length=64)] = "",
    study_date: Annotated[str, Form(max_length=10)] = "",
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    endpoint = pacs.require_endpoint(db)
    hits = pacs.search_studies(endpoint, app_state(request).id_key, accession, study_date)
    crud.audit(db, auth.actor, "pacs.search", detail=f"{len(hits)} studies")  # not the terms
    return render(request, "pacs_search.html", auth, configured=True, hits=hits)


@router.post("/pacs/import")
def import_study(
    *,
    request: Request,
    study_uid: Annotated[str, Form(max_length=64)],
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    state = app_state(request)
    result = pacs.import_study(
        db, state.storage, state.settings, state.id_key, auth.actor, study_uid
    )
    if len(result.case_ids) == 1:
        return see_other(f"/cases/{result.case_ids[0]}")
    return see_other("/cases")
