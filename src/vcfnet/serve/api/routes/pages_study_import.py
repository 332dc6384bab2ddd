"""Reader studies: cases from files on the researcher's study page (``serve.study_cases``):
a zip of radiographs with their LabelImg XML, or a prepared dataset (zip, or a folder on the
server inside one the admin allowed with ``vcfnet serve --study-import-dir``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from vcfnet.serve import studies, study_cases
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.api.routes import see_other
from vcfnet.serve.crud import InvalidInputError, audit
from vcfnet.serve.ingest import read_limited

router = APIRouter(include_in_schema=False)
researcher = page_user("researcher")


def _done(db, auth: Auth, study, report: study_cases.ImportReport, what: str):
    """Audit the import and show its outcome on the study page (counts, the first skip)."""
    audit(
        db,
        auth.actor,
        "study.import",
        detail=f"study {study.id} {what}: {len(report.cases)} case(s), "
        f"{report.vertebrae} vertebra(e), {len(report.skipped)} skipped",
    )
    query = {"imported": len(report.cases), "vertebrae": report.vertebrae}
    if report.skipped:
        query.update(skipped=len(report.skipped), why=report.skipped[0][:200])
    return see_other(f"/studies/{study.id}?{urlencode(query)}#cases")


def _zip_bytes(request: Request, file: UploadFile | None) -> bytes:
    if file is None or not file.filename:
        raise InvalidInputError("choose a zip file to upload")
    return read_limited(file.file, app_state(request).settings.max_upload_bytes)


@router.post("/studies/{study_id}/import/labelimg")
def import_labelimg(
    *,
    request: Request,
    study_id: int,
    file: Annotated[UploadFile | None, File()] = None,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    """Radiographs with their LabelImg XML (the box and true class per object) in one zip."""
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    data = _zip_bytes(request, file)
    report = study_cases.import_labelimg_zip(db, app_state(request), auth.actor, study, data)
    return _done(db, auth, study, report, "LabelImg zip")


@router.post("/studies/{study_id}/import/dataset")
def import_dataset(
    *,
    request: Request,
    study_id: int,
    file: Annotated[UploadFile | None, File()] = None,
    folder: Annotated[str, Form(max_length=1024)] = "",
    split: Annotated[str, Form(max_length=16)] = "test",
    limit: Annotated[int, Form(ge=1, le=study_cases.MAX_IMPORT_CASES)] = 200,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    """A dataset made by ``vcfnet prepare``: a zip upload, or a folder on the server."""
    state = app_state(request)
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    if split not in ("", "train", "val", "test"):
        raise InvalidInputError("split must be train, val, test or empty (all)")
    if folder.strip():
        path = study_cases.allowed_dataset_dir(folder.strip(), state.settings.study_import_dirs)
        report = study_cases.import_dataset_dir(db, state, auth.actor, study, path, split, limit)
        return _done(db, auth, study, report, "dataset folder")
    data = _zip_bytes(request, file)
    report = study_cases.import_dataset_zip(db, state, auth.actor, study, data, split, limit)
    return _done(db, auth, study, report, "dataset zip")
