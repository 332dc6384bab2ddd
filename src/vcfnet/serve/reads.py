"""Second reads: request -> first impression -> AI revealed -> report -> signed -> addenda.

The radiologist records a first impression (class per level) before the model's result is shown,
so the unaided read is kept apart from the aided one (the reader-study module builds on this).
A signed report never changes (the database refuses it too); an addendum is a new signed version.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from vcfnet.labels import CLASS_NAMES
from vcfnet.serve.crud import (
    Actor,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    audit,
    visible_cases,
    visible_reads_clause,
)
from vcfnet.serve.models import BOX_LEVELS, READ_STATUSES, Case, ReadRequest, Report, User, utcnow

log = logging.getLogger(__name__)

MAX_TEXT = 10_000


def request_read(
    db: Session, actor: Actor, case: Case, *, radiologist: str = "", pool: str = "", note: str = ""
) -> ReadRequest:
    """Ask one radiologist (by user name) or a hospital's pool for a second read of ``case``."""
    if bool(radiologist) == bool(pool):
        raise InvalidInputError("choose either one radiologist or a pool for the second read")
    assigned = None
    if radiologist:
        assigned = db.scalar(
            select(User).where(User.username == radiologist, User.role == "radiologist")
        )
        if assigned is None or not assigned.is_active:
            raise InvalidInputError(f"no active radiologist {radiologist!r}")
    elif not db.scalar(
        select(User.id).where(User.role == "radiologist", User.hospital == pool, User.is_active)
    ):
        raise InvalidInputError(f"no radiologist reads for the pool {pool!r}")
    read = ReadRequest(
        case=case,
        requested_by_id=actor.user.id,
        assigned_to_id=assigned.id if assigned else None,
        pool=pool or None,
        note=note[:MAX_TEXT],
    )
    db.add(read)
    db.flush()
    audit(db, actor, "read.request", case_id=case.id, detail=f"read {read.id}")
    return read


def worklist(db: Session, actor: Actor, status: str = "") -> Sequence[ReadRequest]:
    """The read requests a radiologist may work on, oldest first, optionally of one status."""
    if status and status not in READ_STATUSES:
        raise InvalidInputError(f"status {status!r} is not one of {', '.join(READ_STATUSES)}")
    stmt = select(ReadRequest).where(visible_reads_clause(actor.user))
    if status:
        stmt = stmt.where(ReadRequest.status == status)
    audit(db, actor, "worklist.view")
    return db.scalars(stmt.order_by(ReadRequest.created_at)).all()


def get_read(db: Session, actor: Actor, read_id: int, action: str = "read.view") -> ReadRequest:
    """A read the actor may see: a radiologist's own or pool reads; a clinician's case's reads."""
    user = actor.user
    stmt = select(ReadRequest).where(ReadRequest.id == read_id)
    if user.role == "radiologist":
        stmt = stmt.where(visible_reads_clause(user))
    elif user.role == "clinician":
        stmt = stmt.where(ReadRequest.case_id.in_(visible_cases(user).with_only_columns(Case.id)))
    else:
        stmt = stmt.where(False)
    read = db.scalar(stmt)
    if read is None:
        raise NotFoundError(f"read request {read_id} not found")
    audit(db, actor, action, case_id=read.case_id, detail=f"read {read.id}")
    return read


def reads_of_case(db: Session, actor: Actor, case: Case) -> Sequence[ReadRequest]:
    """The reads of a case (already checked visible to ``actor``) that the actor may see: all of
    them for its clinicians, a radiologist's own (or pool) reads."""
    stmt = select(ReadRequest).where(ReadRequest.case_id == case.id)
    if actor.user.role != "clinician":
        stmt = stmt.where(visible_reads_clause(actor.user))
    return db.scalars(stmt.order_by(ReadRequest.id)).all()


def start_read(db: Session, actor: Actor, read: ReadRequest) -> None:
    """A radiologist opens a new read: a pool read becomes theirs; status in_progress."""
    _require_reader(actor, read)
    if read.status == "new":
        read.assigned_to_id = actor.user.id
        read.status = "in_progress"
        read.updated_at = utcnow()
        audit(db, actor, "read.start", case_id=read.case_id, detail=f"read {read.id}")


def _require_reader(actor: Actor, read: ReadRequest) -> None:
    if actor.user.role != "radiologist":
        raise ConflictError("only a radiologist can work on a read")
    if read.assigned_to_id not in (None, actor.user.id):
        raise ConflictError(f"read {read.id} is assigned to another radiologist")


def parse_findings(values: dict[str, str]) -> dict[str, str]:
    """level -> class (one of the model's classes, or 'normal'), levels T11-S1; blanks dropped."""
    findings = {}
    for level, value in values.items():
        value = (value or "").strip().lower()
        if not value:
            continue
        if level not in BOX_LEVELS:
            raise InvalidInputError(f"level {level!r} is not one of {', '.join(BOX_LEVELS)}")
        if value not in (*CLASS_NAMES, "normal"):
            raise InvalidInputError(
                f"{level}: class {value!r} is not one of {', '.join((*CLASS_NAMES, 'normal'))}"
            )
        findings[level] = value
    return findings


def record_first_impression(
    db: Session, actor: Actor, read: ReadRequest, findings: dict[str, str]
) -> None:
    """The unaided read; allowed until the AI result is revealed."""
    start_read(db, actor, read)
    if read.ai_revealed_at is not None:
        raise ConflictError("the AI result was already shown; the first impression is closed")
    if not findings:
        raise InvalidInputError("give a class for at least one vertebra as the first impression")
    read.first_impression = findings
    read.first_impression_at = utcnow()
    audit(db, actor, "read.first_impression", case_id=read.case_id, detail=f"read {read.id}")


def reveal_ai(db: Session, actor: Actor, read: ReadRequest) -> None:
    _require_reader(actor, read)
    if read.first_impression_at is None:
        raise ConflictError("record your first impression before the AI result is shown")
    if read.ai_revealed_at is None:
        read.ai_revealed_at = utcnow()
        audit(db, actor, "read.reveal_ai", case_id=read.case_id, detail=f"read {read.id}")


def ai_visible_to(user: User, read: ReadRequest | None) -> bool:
    """Whether the model's result may be shown: clinicians always; a reader after revealing it."""
    if user.role == "clinician":
        return True
    return read is not None and read.ai_revealed_at is not None


def signed_reports(read: ReadRequest) -> list[Report]:
    return [r for r in read.reports if r.signed_at is not None]


def save_draft(
    db: Session, actor: Actor, read: ReadRequest, findings: dict[str, str], text: str
) -> Report:
    """Create or update the unsigned report of a read (before it is signed)."""
    _require_reader(actor, read)
    if read.first_impression_at is None:
        raise ConflictError("record your first impression before writing the report")
    if signed_reports(read):
        raise ConflictError("the report is signed; add an addendum instead")
    draft = read.reports[-1] if read.reports else None
    if draft is None:
        draft = Report(read_request=read, version=1, author_id=actor.user.id)
        db.add(draft)
    draft.findings, draft.text = findings, text[:MAX_TEXT]
    db.flush()
    audit(db, actor, "report.draft", case_id=read.case_id, detail=f"read {read.id}")
    return draft


def sign_report(db: Session, actor: Actor, read: ReadRequest) -> Report:
    _require_reader(actor, read)
    if signed_reports(read):
        raise ConflictError("the report is already signed; add an addendum instead")
    if not read.reports:
        raise ConflictError("save the report before signing it")
    report = read.reports[-1]
    if not report.findings and not report.text.strip():
        raise ConflictError("the report is empty; give a class or a text before signing")
    report.signed_at = utcnow()
    read.status, read.updated_at = "reported", utcnow()
    audit(db, actor, "report.sign", case_id=read.case_id, detail=f"read {read.id} v1")
    return report


def add_addendum(
    db: Session, actor: Actor, read: ReadRequest, findings: dict[str, str], text: str
) -> Report:
    """A new signed version after the report was signed."""
    _require_reader(actor, read)
    if not signed_reports(read):
        raise ConflictError("sign the report first; an addendum follows a signed report")
    if not text.strip():
        raise InvalidInputError("an addendum needs a text")
    version = read.reports[-1].version + 1
    addendum = Report(
        read_request=read,
        version=version,
        kind="addendum",
        findings=findings,
        text=text[:MAX_TEXT],
        author_id=actor.user.id,
        signed_at=utcnow(),
    )
    db.add(addendum)
    db.flush()
    audit(db, actor, "report.addendum", case_id=read.case_id, detail=f"read {read.id} v{version}")
    return addendum


def require_ai_visible(db: Session, actor: Actor, case: Case) -> None:
    """ConflictError unless the actor may see the model's result on ``case`` (a radiologist
    only after recording a first impression and revealing it on one of their reads)."""
    if actor.user.role == "clinician":
        return
    revealed = db.scalar(
        select(ReadRequest.id).where(
            ReadRequest.case_id == case.id,
            visible_reads_clause(actor.user),
            ReadRequest.ai_revealed_at.is_not(None),
        )
    )
    if revealed is None:
        raise ForbiddenError("record your first impression and reveal the AI result first")
