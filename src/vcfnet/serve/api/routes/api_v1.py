"""The JSON API under /api/v1 (session cookie + CSRF header, or ``Authorization: Bearer``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from vcfnet.serve import crud, reads, studies, study_results
from vcfnet.serve.analysis import analysis_dict, heatmap_png
from vcfnet.serve.analysis_jobs import job_dict, request_analysis
from vcfnet.serve.api.deps import Auth, DbSession, api_user, app_state
from vcfnet.serve.ingest import ingest_upload, patient_pseudonym, read_upload
from vcfnet.serve.models import Case

router = APIRouter(prefix="/api/v1", tags=["api"])
any_user = api_user()
clinician = api_user("clinician")
viewer = api_user("clinician", "radiologist")
predictor_roles = api_user("clinician", "radiologist", "researcher")
radiologist = api_user("radiologist")
researcher = api_user("researcher")


class BoxIn(BaseModel):
    level: str = Field(max_length=4, examples=["L1"])
    x1: float
    y1: float
    x2: float
    y2: float


class BoxesIn(BaseModel):
    boxes: list[BoxIn] = Field(max_length=32)


def case_dict(case: Case, user) -> dict:
    latest = case.analyses[-1] if case.analyses else None
    show_ai = user.role == "clinician" or any(
        r.ai_revealed_at is not None for r in case.read_requests if r.assigned_to_id == user.id
    )
    return {
        "id": case.id,
        "patient_pseudonym": case.patient_pseudonym,
        "width": case.width,
        "height": case.height,
        "source_format": case.source_format,
        "created_at": case.created_at.isoformat() + "Z",
        "boxes": [
            {"level": b.level, "x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2} for b in case.boxes
        ],
        "analysis": analysis_dict(latest) if latest and show_ai else None,
    }


@router.get("/me")
def me(*, auth: Annotated[Auth, Depends(any_user)]) -> dict:
    user = auth.user
    return {"username": user.username, "role": user.role, "hospital": user.hospital}


@router.get("/cases")
def list_cases(*, auth: Annotated[Auth, Depends(viewer)], db: DbSession) -> list[dict]:
    return [case_dict(c, auth.user) for c in crud.list_cases(db, auth.actor)]


@router.post("/cases", status_code=201)
def upload_case(
    *,
    request: Request,
    file: Annotated[UploadFile, File()],
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
) -> dict:
    """Upload a DICOM, PNG or JPEG radiograph; it is de-identified and stored as a case."""
    state = app_state(request)
    case = ingest_upload(
        db, state.storage, state.settings, state.id_key, auth.actor, file.file, file.filename
    )
    return case_dict(case, auth.user)


@router.get("/cases/{case_id}")
def get_case(*, case_id: int, auth: Annotated[Auth, Depends(viewer)], db: DbSession) -> dict:
    return case_dict(crud.get_case(db, auth.actor, case_id), auth.user)


@router.put("/cases/{case_id}/boxes")
def put_boxes(
    *,
    case_id: int,
    body: BoxesIn,
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
) -> dict:
    """Replace the case's boxes (pixel coordinates, level T11-S1)."""
    case = crud.get_case(db, auth.actor, case_id)
    crud.replace_boxes(db, auth.actor, case, [b.model_dump() for b in body.boxes])
    return case_dict(case, auth.user)


@router.post("/cases/{case_id}/analyses", status_code=201)
def analyse(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(clinician)],
    db: DbSession,
) -> dict:
    """Run the model on the case's boxes: 201 with the analysis once its job is done (a sync
    route: it waits on a worker thread), 202 with the job (poll ``url``) if it takes longer."""
    state = app_state(request)
    case = crud.get_case(db, auth.actor, case_id)
    analysis, job = request_analysis(db, state.jobs, auth.actor, case, state.settings.job_wait_s)
    if analysis is None:
        return JSONResponse(job_dict(job), status_code=202)
    return analysis_dict(analysis)


@router.get("/cases/{case_id}/analyses/{analysis_id}/heatmap")
def heatmap(
    *,
    request: Request,
    case_id: int,
    analysis_id: int,
    auth: Annotated[Auth, Depends(viewer)],
    db: DbSession,
) -> Response:
    """The analysis's Grad-CAM heatmap on the radiograph (PNG); its URL is the analysis's
    ``heatmap_url``."""
    data = heatmap_png(db, auth.actor, app_state(request).storage, case_id, analysis_id)
    return Response(data, media_type="image/png")


@router.get("/worklist")
def worklist(
    *,
    status: str = "",
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
) -> list[dict]:
    return [
        {
            "id": r.id,
            "case_id": r.case_id,
            "status": r.status,
            "pool": r.pool,
            "assigned_to": r.assigned_to.username if r.assigned_to else None,
            "created_at": r.created_at.isoformat() + "Z",
            "note": r.note,
        }
        for r in reads.worklist(db, auth.actor, status)
    ]


@router.post("/predict")
def predict(
    *,
    request: Request,
    file: Annotated[UploadFile, File()],
    box: Annotated[list[str], Form(description="x1,y1,x2,y2 in pixels; repeat for more boxes")],
    level: Annotated[list[str] | None, Form(description="the level of each box, in order")] = None,
    auth: Annotated[Auth, Depends(predictor_roles)],
    db: DbSession,
) -> list[dict]:
    """What ``vcfnet predict --format json`` prints for one radiograph; nothing is stored."""
    state = app_state(request)
    boxes = [parse_box(text) for text in box]
    if level and len(level) != len(boxes):
        raise crud.InvalidInputError("give one level per box, or none")
    checked, radiograph = read_upload(state.storage, state.settings, file.file, file.filename)
    result = state.models.analyse(radiograph.pixels, boxes, level or None, heatmap=False)
    prediction = dict(result.prediction)
    prediction["image"] = "upload." + checked.kind
    prediction["patient_id"] = (
        patient_pseudonym(
            state.id_key, auth.user.hospital, radiograph.patient.patient_id, uuid.uuid4().hex
        )
        if radiograph.patient.patient_id
        else ""
    )
    crud.audit(db, auth.actor, "api.predict", detail=f"{len(boxes)} box(es)")
    return [prediction]


def parse_box(text: str) -> tuple[float, float, float, float]:
    parts = text.replace(";", ",").split(",")
    try:
        x1, y1, x2, y2 = (float(p) for p in parts)
    except ValueError:
        raise crud.InvalidInputError(f"box {text!r}: expected x1,y1,x2,y2 in pixels") from None
    return x1, y1, x2, y2


# --------------------------------------------------------------------------------- reader studies


def reading_state_dict(study, state) -> dict:
    return {
        "study": {"id": study.id, "name": study.name, "status": study.status},
        "status": state.status,
        "session": state.session,
        "mode": state.mode,
        "done": {str(k): v for k, v in state.done.items()},
        "n_cases": state.n_cases,
        "ratings": study.protocol["confidence"],  # none | sliders | five_point
        "opens_at": state.opens_at.isoformat() + "Z" if state.opens_at else None,
    }


@router.get("/reading/{study_id}")
def reading_current(
    *, study_id: int, auth: Annotated[Auth, Depends(radiologist)], db: DbSession
) -> dict:
    """The reader's state and current case (boxes without truth; no model output here)."""
    study, reader = studies.get_reading(db, auth.actor, study_id)
    state = studies.reader_state(db, study, reader)
    out = reading_state_dict(study, state)
    out["case"] = None
    if state.status == "reading":
        entry = study.protocol["cases"][state.index]
        base = f"/reading/{study.id}/cases/{entry['study_case_id']}"
        out["case"] = {
            "study_case_id": entry["study_case_id"],
            "boxes": studies.blind_boxes(entry),
            "image_url": f"{base}/image",
            "ai_url": f"/api/v1{base}/ai" if state.mode == "aided" else None,
        }
    return out


@router.get("/reading/{study_id}/cases/{study_case_id}/ai")
def reading_ai(
    *, study_id: int, study_case_id: int, auth: Annotated[Auth, Depends(radiologist)], db: DbSession
) -> dict:
    """The model's output on the current case of an aided session; 403 in unaided sessions."""
    study, reader = studies.get_reading(db, auth.actor, study_id, action="study.reading.ai")
    entry = studies.require_ai(db, study, reader, study_case_id)
    return {"model": entry["model"], "findings": entry["ai"]}


class StudyReadIn(BaseModel):
    study_case_id: int
    labels: list[str] = Field(max_length=32, examples=[["acute", "chronic"]])
    confidences: list[dict[str, float]] | None = Field(default=None, max_length=32)
    seconds: float = 0.0


@router.post("/reading/{study_id}/reads", status_code=201)
def reading_submit(
    *,
    study_id: int,
    body: StudyReadIn,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
) -> dict:
    """Submit the read of the current case: one class per box (in box order)."""
    study, reader = studies.get_reading(db, auth.actor, study_id, action="study.reading.read")
    rows = studies.submit_read(
        db,
        auth.actor,
        study,
        reader,
        body.study_case_id,
        dict(enumerate(body.labels)),
        dict(enumerate(body.confidences)) if body.confidences is not None else None,
        body.seconds,
    )
    return {"reads": len(rows), "mode": rows[0].mode, "session": rows[0].session}


@router.get("/studies/{study_id}/results")
def study_results_json(
    *, study_id: int, auth: Annotated[Auth, Depends(researcher)], db: DbSession
) -> dict:
    """A study's live results (the researcher's own studies): progress per reader, Table 3, the
    McNemar/DeLong comparisons and the MRMC test, marked ``interim`` until every read is in."""
    study = studies.get_study(db, auth.actor, study_id, action="study.results")
    results = study_results.analyse(db, study)
    return study_results.results_dict(db, study, results)
