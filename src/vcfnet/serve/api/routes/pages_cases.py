"""Clinician pages: case list, upload, case page (viewer, analyse, second read); case images."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from vcfnet.serve import crud, reads
from vcfnet.serve.analysis import analysis_dict, heatmap_png
from vcfnet.serve.analysis_jobs import latest_job, request_analysis
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.api.routes import render, see_other
from vcfnet.serve.ingest import ingest_upload
from vcfnet.serve.models import BOX_LEVELS, Case

router = APIRouter(include_in_schema=False)
clinician = page_user("clinician")
viewer = page_user("clinician", "radiologist")


@router.get("/cases")
def case_list(
    *,
    request: Request,
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    cases = crud.list_cases(db, auth.actor)
    return render(request, "cases.html", auth, cases=cases)


@router.get("/cases/new")
def upload_page(*, request: Request, auth: Annotated[Auth, Depends(clinician)]):
    limit_mib = app_state(request).settings.max_upload_bytes // (1024 * 1024)
    return render(request, "upload.html", auth, limit_mib=limit_mib)


@router.post("/cases")
def upload(
    *,
    request: Request,
    file: Annotated[UploadFile, File()],
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    state = app_state(request)
    case = ingest_upload(
        db, state.storage, state.settings, state.id_key, auth.actor, file.file, file.filename
    )
    return see_other(f"/cases/{case.id}")


def case_context(db: Session, case: Case, show_ai: bool) -> dict:
    """What the case viewer needs (boxes, image size, analyses if they may be shown)."""
    latest = case.analyses[-1] if case.analyses and show_ai else None
    return {
        "id": case.id,
        "width": case.width,
        "height": case.height,
        "image_url": f"/cases/{case.id}/image",
        "boxes": [
            {"level": b.level, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2} for b in case.boxes
        ],
        "levels": list(BOX_LEVELS),
        "analysis": analysis_dict(latest) if latest else None,
        "heatmap_url": (
            f"/cases/{case.id}/analyses/{latest.id}/heatmap"
            if latest and latest.heatmap_key
            else None
        ),
    }


@router.get("/cases/{case_id}")
def case_page(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    case = crud.get_case(db, auth.actor, case_id)
    return render(
        request,
        "case.html",
        auth,
        case=case,
        viewer=case_context(db, case, show_ai=True),
        editable=True,
        model_available=app_state(request).models.available,
        suggest_available=app_state(request).settings.localiser_path is not None,
        radiologists=crud.radiologists(db),
        pools=crud.reading_pools(db),
        read_requests=case.read_requests,
        job=latest_job(db, case.id),
    )


@router.get("/cases/{case_id}/image")
def case_image(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(viewer)],
    db: DbSession,
):
    case = crud.get_case(db, auth.actor, case_id, action="case.image")
    data = app_state(request).storage.read_bytes(case.image_key)
    return Response(data, media_type="image/png")


@router.get("/cases/{case_id}/analyses/{analysis_id}/heatmap")
def heatmap_image(
    *,
    request: Request,
    case_id: int,
    analysis_id: int,
    auth: Annotated[Auth, Depends(viewer)],
    db: DbSession,
):
    data = heatmap_png(db, auth.actor, app_state(request).storage, case_id, analysis_id)
    return Response(data, media_type="image/png")


@router.post("/cases/{case_id}/analyse")
def analyse(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    """Runs as a job; waits for it on a worker thread (a sync route), not on the event loop.
    Past ``job_wait_s`` the case page shows the job's state and refreshes until it is done."""
    state = app_state(request)
    case = crud.get_case(db, auth.actor, case_id)
    request_analysis(db, state.jobs, auth.actor, case, state.settings.job_wait_s)
    return see_other(f"/cases/{case.id}#result")


@router.post("/cases/{case_id}/reads")
def request_read(
    *,
    case_id: int,
    radiologist: Annotated[str, Form(max_length=64)] = "",
    pool: Annotated[str, Form(max_length=128)] = "",
    note: Annotated[str, Form(max_length=reads.MAX_TEXT)] = "",
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
):
    case = crud.get_case(db, auth.actor, case_id)
    reads.request_read(db, auth.actor, case, radiologist=radiologist, pool=pool, note=note)
    return see_other(f"/cases/{case.id}#reads")
