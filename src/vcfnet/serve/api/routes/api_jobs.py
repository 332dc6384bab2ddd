"""GET /api/v1/jobs/{id}: the state of a background job (an analysis that outlasted the wait)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from vcfnet.serve import crud
from vcfnet.serve.analysis_jobs import job_dict
from vcfnet.serve.api.deps import Auth, DbSession, api_user
from vcfnet.serve.models import Job

router = APIRouter(prefix="/api/v1", tags=["api"])
clinician = api_user("clinician")


@router.get("/jobs/{job_id}")
def job_state(*, job_id: int, auth: Annotated[Auth, Depends(clinician)], db: DbSession) -> dict:
    """queued | running | done (``analysis``: its id) | failed (``error``: why)."""
    job = db.get(Job, job_id)
    if job is None or job.case_id is None:
        raise crud.NotFoundError(f"job {job_id} not found")
    crud.get_case(db, auth.actor, job.case_id)  # 404 for another hospital's case
    return {**job_dict(job), "analysis": (job.result or {}).get("analysis_id")}
