"""Database tables (SQLAlchemy 2 typed declarative). Change them only with an Alembic revision.

Shared with the reader-study module (issue 14): a :class:`Case` is one de-identified radiograph
with its boxes; a :class:`ReadRequest` is one reader's read of one case (first impression without
the AI, then with it, then a report), so a reader study is a set of read requests on chosen cases.
No table holds a patient's name, ID, birth date, accession number, institution or file name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

ROLES: tuple[str, ...] = ("clinician", "radiologist", "researcher", "admin")
#: Levels a box can be labelled with (T11-S1, as the paper's radiographs show).
BOX_LEVELS: tuple[str, ...] = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
READ_STATUSES: tuple[str, ...] = ("new", "in_progress", "reported")
STUDY_STATUSES: tuple[str, ...] = ("draft", "launched", "closed")
#: sequential: every case unaided (session 1), then aided after the washout (session 2);
#: crossover: half the cases (per reader, from the seed) aided in session 1, the rest in session 2.
STUDY_DESIGNS: tuple[str, ...] = ("sequential", "crossover")
STUDY_MODES: tuple[str, ...] = ("unaided", "aided")


def utcnow() -> dt.datetime:
    """Naive UTC now (stored as such on SQLite and PostgreSQL alike)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ImmutableRowError(RuntimeError):
    """An append-only or signed row was about to change; write a new row instead."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16))
    hospital: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LoginSession(Base):
    """A server-side session: the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token) hex
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    user: Mapped[User] = relationship(lazy="joined")


class ApiKey(Base):
    """A per-user key for the JSON API; only its SHA-256 is stored (keys are 256-bit random)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    user: Mapped[User] = relationship(lazy="joined")


def new_uid() -> str:
    """A new DICOM UID (``2.25.<uuid4 as an integer>``: no organisation root needed)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(prefix=None))


class Case(Base):
    """One de-identified radiograph: a PNG of the display pixels under the data folder.

    The DICOM UIDs are new ones made at ingest (never the upload's): they name the de-identified
    Secondary Capture image that the case's DICOM SR reports reference (``serve.export``).
    """

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_pseudonym: Mapped[str] = mapped_column(String(40), index=True)
    image_key: Mapped[str] = mapped_column(String(255))  # storage key, e.g. images/<uuid>.png
    original_key: Mapped[str | None] = mapped_column(String(255), default=None)
    source_format: Mapped[str] = mapped_column(String(8))  # dicom | png | jpeg
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    pixel_spacing_mm: Mapped[float | None] = mapped_column(Float, default=None)
    sex: Mapped[str] = mapped_column(String(1), default="")
    age: Mapped[float | None] = mapped_column(Float, default=None)
    hospital: Mapped[str] = mapped_column(String(128), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    study_instance_uid: Mapped[str] = mapped_column(String(64), default=new_uid)
    series_instance_uid: Mapped[str] = mapped_column(String(64), default=new_uid)
    sop_instance_uid: Mapped[str] = mapped_column(
        String(64), default=new_uid, unique=True, index=True
    )

    created_by: Mapped[User] = relationship()
    boxes: Mapped[list[Box]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Box.id"
    )
    analyses: Mapped[list[Analysis]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Analysis.id"
    )
    read_requests: Mapped[list[ReadRequest]] = relationship(
        back_populates="case", order_by="ReadRequest.id"
    )


class Box(Base):
    """A vertebra marked on a case: pixel coordinates x1 < x2, y1 < y2 and its level."""

    __tablename__ = "boxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    level: Mapped[str] = mapped_column(String(4))
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)

    case: Mapped[Case] = relationship(back_populates="boxes")

    @property
    def coords(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


class Analysis(Base):
    """One run of the model on a case's boxes (the boxes are copied: they may change later)."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(32))
    model_hash: Mapped[str] = mapped_column(String(64))
    model_runtime: Mapped[str] = mapped_column(String(32))
    heatmap_key: Mapped[str | None] = mapped_column(String(255), default=None)

    case: Mapped[Case] = relationship(back_populates="analyses")
    findings: Mapped[list[Finding]] = relationship(
        back_populates="analysis", cascade="all, delete-orphan", order_by="Finding.id"
    )


class Finding(Base):
    """The model's output for one box of an analysis."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    analysis_id: Mapped[int] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[str] = mapped_column(String(4))
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    predicted: Mapped[str] = mapped_column(String(32))

    analysis: Mapped[Analysis] = relationship(back_populates="findings")


class ReadRequest(Base):
    """A request for a radiologist's read of a case: to one radiologist or to a hospital's pool.

    The reader's first impression (class per level, before the AI result is shown) and the moment
    the AI result was revealed are kept here: they are the unaided and aided reads of a reader
    study.
    """

    __tablename__ = "read_requests"
    __table_args__ = (Index("ix_read_requests_pool_status", "pool", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assigned_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), default=None, index=True
    )
    pool: Mapped[str | None] = mapped_column(String(128), default=None)  # a hospital's readers
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    first_impression: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    first_impression_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    ai_revealed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    case: Mapped[Case] = relationship(back_populates="read_requests")
    requested_by: Mapped[User] = relationship(foreign_keys=[requested_by_id])
    assigned_to: Mapped[User | None] = relationship(foreign_keys=[assigned_to_id])
    reports: Mapped[list[Report]] = relationship(
        back_populates="read_request", order_by="Report.version"
    )


class Report(Base):
    """A version of a read's report. Signed versions are immutable; an addendum is a new version."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("read_request_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    read_request_id: Mapped[int] = mapped_column(
        ForeignKey("read_requests.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="report")  # report | addendum
    findings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # level -> class
    text: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    signed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    read_request: Mapped[ReadRequest] = relationship(back_populates="reports")
    author: Mapped[User] = relationship()


class AuditLog(Base):
    """Append-only: who did what to which case, when, from where. Never patient data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    username: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    case_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    client: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(255), default="")


class Study(Base):
    """A reader study (issue 14): cases with their truth per box, readers, a design and a seed.

    ``protocol`` is written once, at launch, and never changes: the cases (with their boxes, the
    truth and the model's output shown in aided mode), the readers and their levels, the design,
    the washout and the seed; the reads and results are interpreted against it.
    """

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    design: Mapped[str] = mapped_column(String(16), default="sequential")
    washout_days: Mapped[int] = mapped_column(Integer, default=28)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    confidence: Mapped[bool] = mapped_column(Boolean, default=False)  # = ratings == "sliders"
    #: what a read records besides the class: none | sliders (per class, sum 100) | five_point
    ratings: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    protocol: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)

    owner: Mapped[User] = relationship()
    cases: Mapped[list[StudyCase]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyCase.id"
    )
    readers: Mapped[list[StudyReader]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyReader.id"
    )


class StudyCase(Base):
    """A case of a study: its boxes (copied when added: the case's boxes may change later), each
    with its true class (``boxes[i]["truth"]``, never shown to readers), and from launch the
    analysis whose output aided reads show."""

    __tablename__ = "study_cases"
    __table_args__ = (UniqueConstraint("study_id", "case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    boxes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    analysis_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id"), default=None)

    study: Mapped[Study] = relationship(back_populates="cases")
    case: Mapped[Case] = relationship()
    analysis: Mapped[Analysis | None] = relationship()


class StudyReader(Base):
    """A radiologist reading in a study, with their experience level."""

    __tablename__ = "study_readers"
    __table_args__ = (UniqueConstraint("study_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    level: Mapped[str] = mapped_column(String(32), default="")

    study: Mapped[Study] = relationship(back_populates="readers")
    user: Mapped[User] = relationship()
    reads: Mapped[list[StudyRead]] = relationship(
        back_populates="reader", cascade="all, delete-orphan", order_by="StudyRead.id"
    )


class StudyRead(Base):
    """One reader's class for one box of a study case in one mode. Never changed once written."""

    __tablename__ = "study_reads"
    __table_args__ = (UniqueConstraint("reader_id", "study_case_id", "mode", "box"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(
        ForeignKey("study_readers.id", ondelete="CASCADE"), index=True
    )
    study_case_id: Mapped[int] = mapped_column(
        ForeignKey("study_cases.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(16))  # unaided | aided
    session: Mapped[int] = mapped_column(Integer)  # 1 | 2
    box: Mapped[int] = mapped_column(Integer)  # index into StudyCase.boxes
    label: Mapped[str] = mapped_column(String(32))
    confidences: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # sum 100
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # time on the case
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    reader: Mapped[StudyReader] = relationship(back_populates="reads")
    study_case: Mapped[StudyCase] = relationship()


# --------------------------------------------------------------------- PACS (serve.pacs, issue 20)
PACS_AUTH: tuple[str, ...] = ("none", "basic", "bearer")
OUTBOX_STATES: tuple[str, ...] = ("pending", "sent", "failed")


class PacsEndpoint(Base):
    """The hospital PACS (DICOMweb); one row. The secret is encrypted (``serve.pacs``)."""

    __tablename__ = "pacs_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    qido_url: Mapped[str] = mapped_column(String(512))
    wado_url: Mapped[str] = mapped_column(String(512), default="")
    stow_url: Mapped[str] = mapped_column(String(512), default="")
    auth: Mapped[str] = mapped_column(String(8), default="none")
    username: Mapped[str] = mapped_column(String(128), default="")
    secret: Mapped[str] = mapped_column(Text, default="")  # Fernet token, never shown
    send_on_sign: Mapped[bool] = mapped_column(Boolean, default=True)
    send_after_analysis: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PacsOrigin(Base):
    """The ORIGINAL UIDs of a case received from or imported out of the PACS: the one table
    that links a de-identified case to the hospital's images (admin-only; the admin can purge)."""

    __tablename__ = "pacs_origins"

    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    study_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PacsOutbox(Base):
    """One result to send to the PACS (SR, and the heatmap if any): the retry queue."""

    __tablename__ = "pacs_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    read_id: Mapped[int | None] = mapped_column(ForeignKey("read_requests.id"), default=None)
    analysis_id: Mapped[int | None] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), default=None
    )
    state: Mapped[str] = mapped_column(String(8), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(255), default="")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)


JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed")


class Job(Base):
    """A background job (``serve.jobs``): any worker thread of any serve process claims it from
    this table (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), runs it and records the
    outcome. A running job's worker beats ``heartbeat_at``; a job whose heartbeat stopped (its
    worker died) is requeued after a timeout."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    case_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)


class PlatformSetting(Base):
    """Settings an admin changes at run time (active model, retention), shared by all processes."""

    __tablename__ = "platform_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_immutable_rows(session: Session, _context, _instances) -> None:
    """Audit entries are never changed or deleted; a signed report is never changed."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditLog):
            raise ImmutableRowError("the audit log is append-only; add an entry instead")
        if isinstance(obj, StudyRead) and obj in session.dirty and session.is_modified(obj):
            raise ImmutableRowError(f"study read {obj.id} was submitted; it cannot change")
        if isinstance(obj, Report) and _was_signed(obj):
            raise ImmutableRowError(
                f"report {obj.id} v{obj.version} is signed; write an addendum instead"
            )


def _was_signed(report: Report) -> bool:
    """Whether ``report`` was already signed before the pending change."""
    history = inspect(report).attrs.signed_at.history
    before = list(history.unchanged or ()) + list(history.deleted or ())
    return bool(before and before[0] is not None)
