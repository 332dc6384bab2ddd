"""Signed reports as files: DICOM SR and PDF (of a read, or of a case's last signed read), and
the case's de-identified Secondary Capture that the SR references.

Who may download: the case's clinicians and the radiologist the read is assigned to (as for the
report on the case and read pages); only signed reports (else 404). The model's result is in the
files only if the user may see it (a radiologist after revealing it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from vcfnet.serve import crud, export, reads
from vcfnet.serve.analysis import case_pixels
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.models import ReadRequest

router = APIRouter(include_in_schema=False)
reader = page_user("clinician", "radiologist")

DICOM = "application/dicom"
PDF = "application/pdf"


def _attachment(data: bytes, media_type: str, name: str) -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _signed(auth: Auth, read: ReadRequest | None, what: str) -> export.SignedRead:
    signed = export.signed_read(read, reads.ai_visible_to(auth.user, read)) if read else None
    if signed is None:
        raise crud.NotFoundError(f"{what} has no signed report yet")
    return signed


def _file_name(signed: export.SignedRead, suffix: str) -> str:
    return f"vcfnet-case{signed.case.id}-read{signed.read.id}-v{signed.latest.version}{suffix}"


def _sr(request: Request, signed: export.SignedRead) -> Response:
    pixels = case_pixels(app_state(request).storage, signed.case)
    data = export.report_sr_bytes(signed, pixels)
    return _attachment(data, DICOM, _file_name(signed, ".dcm"))


def _pdf(request: Request, signed: export.SignedRead) -> Response:
    analysis = signed.analysis
    heatmap = None
    if analysis is not None and analysis.heatmap_key:
        heatmap = app_state(request).storage.read_bytes(analysis.heatmap_key)
    data = export.report_pdf_bytes(signed, heatmap)
    return _attachment(data, PDF, _file_name(signed, ".pdf"))


def _read(db: Session, auth: Auth, read_id: int, kind: str) -> export.SignedRead:
    read = reads.get_read(db, auth.actor, read_id, action=f"report.download_{kind}")
    return _signed(auth, read, f"read {read_id}")


def _case(db: Session, auth: Auth, case_id: int, kind: str) -> export.SignedRead:
    case = crud.get_case(db, auth.actor, case_id, action=f"report.download_{kind}")
    read = export.latest_signed_read(reads.reads_of_case(db, auth.actor, case))
    return _signed(auth, read, f"case {case_id}")


@router.get("/reads/{read_id}/report.dcm")
def read_report_sr(
    *,
    request: Request,
    read_id: int,
    auth: Annotated[Auth, Depends(reader)],
    db: DbSession,
):
    return _sr(request, _read(db, auth, read_id, "sr"))


@router.get("/reads/{read_id}/report.pdf")
def read_report_pdf(
    *,
    request: Request,
    read_id: int,
    auth: Annotated[Auth, Depends(reader)],
    db: DbSession,
):
    return _pdf(request, _read(db, auth, read_id, "pdf"))


@router.get("/cases/{case_id}/report.dcm")
def case_report_sr(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(reader)],
    db: DbSession,
):
    return _sr(request, _case(db, auth, case_id, "sr"))


@router.get("/cases/{case_id}/report.pdf")
def case_report_pdf(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(reader)],
    db: DbSession,
):
    return _pdf(request, _case(db, auth, case_id, "pdf"))


@router.get("/cases/{case_id}/image.dcm")
def case_image_dicom(
    *,
    request: Request,
    case_id: int,
    auth: Annotated[Auth, Depends(reader)],
    db: DbSession,
):
    """The de-identified Secondary Capture of the case (what the SR's regions refer to)."""
    case = crud.get_case(db, auth.actor, case_id, action="case.image_dicom")
    sc = export.secondary_capture(case, case_pixels(app_state(request).storage, case))
    return _attachment(export.dicom_bytes(sc), DICOM, f"vcfnet-case{case.id}-image.dcm")
