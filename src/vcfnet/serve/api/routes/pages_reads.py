"""Radiologist pages: the worklist and the read page (first impression, AI, report, sign)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request

from vcfnet.labels import CLASS_NAMES
from vcfnet.serve import pacs_send, reads
from vcfnet.serve.api.deps import Auth, DbSession, page_user
from vcfnet.serve.api.routes import render, see_other
from vcfnet.serve.api.routes.pages_cases import case_context
from vcfnet.serve.models import BOX_LEVELS, READ_STATUSES, utcnow

router = APIRouter(include_in_schema=False)
radiologist = page_user("radiologist")


async def level_findings(request: Request) -> dict[str, str]:
    """``finding_<LEVEL>`` form fields -> {level: class} (checked by ``reads.parse_findings``)."""
    form = await request.form()
    return reads.parse_findings(
        {level: str(form.get(f"finding_{level}", "")) for level in BOX_LEVELS}
    )


@router.get("/worklist")
def worklist(
    *,
    request: Request,
    status: str = "",
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    items = reads.worklist(db, auth.actor, status)
    now = utcnow()
    return render(
        request,
        "worklist.html",
        auth,
        items=items,
        status=status,
        statuses=READ_STATUSES,
        ages={r.id: now - r.created_at for r in items},
    )


@router.get("/reads/{read_id}")
def read_page(
    *,
    request: Request,
    read_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    read = reads.get_read(db, auth.actor, read_id)
    show_ai = reads.ai_visible_to(auth.user, read)
    return render(
        request,
        "read.html",
        auth,
        read=read,
        case=read.case,
        viewer=case_context(db, read.case, show_ai=show_ai),
        editable=False,
        show_ai=show_ai,
        levels=BOX_LEVELS,
        classes=(*CLASS_NAMES, "normal"),
        draft=read.reports[-1] if read.reports and not reads.signed_reports(read) else None,
        signed=reads.signed_reports(read),
    )


@router.post("/reads/{read_id}/impression")
def first_impression(
    *,
    read_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    findings: Annotated[dict, Depends(level_findings)],
    db: DbSession,
):
    read = reads.get_read(db, auth.actor, read_id, action="read.open")
    reads.record_first_impression(db, auth.actor, read, findings)
    return see_other(f"/reads/{read.id}")


@router.post("/reads/{read_id}/reveal")
def reveal(
    *,
    read_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    read = reads.get_read(db, auth.actor, read_id, action="read.open")
    reads.reveal_ai(db, auth.actor, read)
    return see_other(f"/reads/{read.id}#result")


@router.post("/reads/{read_id}/report")
def save_report(
    *,
    read_id: int,
    text: Annotated[str, Form(max_length=reads.MAX_TEXT)] = "",
    auth: Annotated[Auth, Depends(radiologist)],
    findings: Annotated[dict, Depends(level_findings)],
    db: DbSession,
):
    read = reads.get_read(db, auth.actor, read_id, action="read.open")
    reads.save_draft(db, auth.actor, read, findings, text)
    return see_other(f"/reads/{read.id}#report")


@router.post("/reads/{read_id}/sign")
def sign(
    *,
    read_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    read = reads.get_read(db, auth.actor, read_id, action="read.open")
    reads.sign_report(db, auth.actor, read)
    pacs_send.enqueue_report(db, read)  # to the PACS, in the same transaction (if configured)
    return see_other(f"/reads/{read.id}#report")


@router.post("/reads/{read_id}/addendum")
def addendum(
    *,
    read_id: int,
    text: Annotated[str, Form(max_length=reads.MAX_TEXT)] = "",
    auth: Annotated[Auth, Depends(radiologist)],
    findings: Annotated[dict, Depends(level_findings)],
    db: DbSession,
):
    read = reads.get_read(db, auth.actor, read_id, action="read.open")
    reads.add_addendum(db, auth.actor, read, findings, text)
    pacs_send.enqueue_report(db, read)
    return see_other(f"/reads/{read.id}#report")
