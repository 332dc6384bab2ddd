"""Suggest boxes (JSON, under /api/v1): the localiser's boxes, levels and Genant grades for a
case, and the audit of what the clinician kept, changed or deleted after saving."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from vcfnet.serve import crud
from vcfnet.serve.api.deps import Auth, DbSession, api_user, app_state
from vcfnet.serve.suggest import localiser_service, review_suggestion, suggest_boxes

router = APIRouter(prefix="/api/v1", tags=["api"])
clinician = api_user("clinician")


@router.post("/cases/{case_id}/suggested-boxes")
def post_suggested_boxes(
    *, request: Request, case_id: int, auth: Annotated[Auth, Depends(clinician)], db: DbSession
) -> dict:
    """Run the vertebra localiser on the case's image: one box per body with its level and
    Genant grade (not saved: the clinician accepts, moves or deletes them, then saves)."""
    state = app_state(request)
    case = crud.get_case(db, auth.actor, case_id)
    service = localiser_service(state.settings.localiser_path)
    if not service.available:
        raise HTTPException(503, "no vertebra localiser: start vcfnet serve with --localiser LOC")
    return {"boxes": suggest_boxes(db, state.storage, service, auth.actor, case)}


@router.post("/cases/{case_id}/suggested-boxes/review")
def post_suggestion_review(
    *, case_id: int, auth: Annotated[Auth, Depends(clinician)], db: DbSession
) -> dict:
    """After saving: audit which suggested boxes were kept, changed or deleted, and which added."""
    case = crud.get_case(db, auth.actor, case_id)
    return {"review": review_suggestion(db, auth.actor, case)}
