"""Queries and changes of the platform's tables; who may see what is decided here, once.

Every function takes an :class:`Actor` (the user and their address) and writes the audit log
entry for what it did; routes only validate input, check the role and call these.
Visibility: a clinician sees the cases they uploaded and those of their hospital; a radiologist
sees the cases of read requests assigned to them or to their hospital's pool; nobody else sees
cases. A case someone may not see is reported as not found (404), never as forbidden.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session

from vcfnet.serve import security
from vcfnet.serve.models import (
    BOX_LEVELS,
    ROLES,
    AuditLog,
    Box,
    Case,
    ReadRequest,
    User,
    utcnow,
)
from vcfnet.serve.settings import Settings

log = logging.getLogger(__name__)


class NotFoundError(LookupError):
    """The thing does not exist or the user may not see it (both answer 404)."""


class ForbiddenError(PermissionError):
    """The user may see the thing but not do this with it (yet): 403."""


class ConflictError(ValueError):
    """The request does not fit the current state (e.g. signing a signed report): 409."""


class InvalidInputError(ValueError):
    """A value is out of range (unknown role, level, class...): 422."""


@dataclass(frozen=True)
class Actor:
    """Who does something, from where (for the audit log)."""

    user: User | None
    client: str = ""


def audit(db: Session, actor: Actor, action: str, case_id: int | None = None, detail: str = ""):
    """Append an audit entry (no patient data: ids, actions and staff names only)."""
    user = actor.user
    db.add(
        AuditLog(
            user_id=user.id if user else None,
            username=user.username if user else "",
            role=user.role if user else "",
            action=action,
            case_id=case_id,
            client=actor.client[:64],
            detail=detail[:255],
        )
    )


# ----------------------------------------------------------------------------------------- users


def create_user(
    db: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str,
    hospital: str = "",
    display_name: str = "",
    actor: Actor | None = None,
) -> User:
    username = username.strip()
    if role not in ROLES:
        raise InvalidInputError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise InvalidInputError("the user name must be 1-64 printable characters without spaces")
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} exists; pick another name")
    user = User(
        username=username,
        display_name=display_name.strip()[:128],
        role=role,
        hospital=hospital.strip()[:128],
        password_hash=security.hash_password(password, settings),
    )
    db.add(user)
    db.flush()
    audit(db, actor or Actor(None, "cli"), "user.create", detail=f"{username} ({role})")
    return user


def get_user_by_name(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError(f"no user {username!r}; see 'vcfnet users list'")
    return user


def list_users(db: Session) -> Sequence[User]:
    return db.scalars(select(User).order_by(User.role, User.username)).all()


def set_user_active(db: Session, user: User, active: bool, actor: Actor) -> None:
    user.is_active = active
    if not active:
        security.revoke_sessions(db, user.id)
    audit(db, actor, "user.enable" if active else "user.disable", detail=user.username)


def set_password(db: Session, settings: Settings, user: User, password: str, actor: Actor) -> None:
    """New password; every session of the user is revoked (the caller may open a new one)."""
    user.password_hash = security.hash_password(password, settings)
    user.password_changed_at = utcnow()
    security.revoke_sessions(db, user.id)
    audit(db, actor, "user.password", detail=user.username)


def radiologists(db: Session) -> Sequence[User]:
    return db.scalars(
        select(User).where(User.role == "radiologist", User.is_active).order_by(User.username)
    ).all()


def reading_pools(db: Session) -> list[str]:
    """Hospitals with at least one active radiologist: the pools a read can be sent to."""
    return sorted({u.hospital for u in radiologists(db) if u.hospital})


# ----------------------------------------------------------------------------------------- cases


def visible_reads_clause(user: User):
    """ReadRequest rows a radiologist may work on."""
    own = ReadRequest.assigned_to_id == user.id
    if not user.hospital:
        return own
    return or_(own, and_(ReadRequest.assigned_to_id.is_(None), ReadRequest.pool == user.hospital))


def visible_cases(user: User) -> Select:
    """SELECT of the cases ``user`` may see (none for researchers and admins)."""
    stmt = select(Case)
    if user.role == "clinician":
        mine = Case.created_by_id == user.id
        return stmt.where(or_(mine, Case.hospital == user.hospital) if user.hospital else mine)
    if user.role == "radiologist":
        assigned = exists().where(ReadRequest.case_id == Case.id, visible_reads_clause(user))
        return stmt.where(assigned)
    return stmt.where(False)


def get_case(db: Session, actor: Actor, case_id: int, action: str = "case.view") -> Case:
    """The case if ``actor`` may see it (audited as ``action``), else NotFoundError."""
    case = db.scalar(visible_cases(actor.user).where(Case.id == case_id))
    if case is None:
        raise NotFoundError(f"case {case_id} not found")
    audit(db, actor, action, case_id=case.id)
    return case


def list_cases(db: Session, actor: Actor, limit: int = 200) -> Sequence[Case]:
    audit(db, actor, "case.list")
    return db.scalars(visible_cases(actor.user).order_by(Case.id.desc()).limit(limit)).all()


def replace_boxes(db: Session, actor: Actor, case: Case, boxes: Sequence[dict]) -> list[Box]:
    """Set a case's boxes to ``boxes`` (dicts with level, x1, y1, x2, y2), checked on the image."""
    new = []
    for i, item in enumerate(boxes):
        level = str(item.get("level", ""))
        if level not in BOX_LEVELS:
            raise InvalidInputError(f"box {i}: level {level!r} is not one of {BOX_LEVELS}")
        x1, y1, x2, y2 = (float(item[k]) for k in ("x1", "y1", "x2", "y2"))
        if not (0 <= x1 < x2 <= case.width and 0 <= y1 < y2 <= case.height):
            raise InvalidInputError(
                f"box {i} ({x1:g},{y1:g},{x2:g},{y2:g}) must lie inside the "
                f"{case.width}x{case.height} image with x1 < x2 and y1 < y2"
            )
        new.append(Box(level=level, x1=x1, y1=y1, x2=x2, y2=y2))
    case.boxes = new
    db.flush()
    audit(db, actor, "case.boxes", case_id=case.id, detail=f"{len(new)} box(es)")
    return new
