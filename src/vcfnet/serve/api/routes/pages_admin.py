"""Admin pages: users (list, add, disable/enable) and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from sqlalchemy import select

from vcfnet.serve import crud
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.api.routes import render, see_other
from vcfnet.serve.models import ROLES, AuditLog, User

router = APIRouter(include_in_schema=False)
admin = page_user("admin")
AUDIT_PAGE = 200


@router.get("/admin/users")
def users_page(
    *,
    request: Request,
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    crud.audit(db, auth.actor, "admin.users.view")
    return render(request, "admin_users.html", auth, users=crud.list_users(db), roles=ROLES)


@router.post("/admin/users")
def add_user(
    *,
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=16)],
    hospital: Annotated[str, Form(max_length=128)] = "",
    display_name: Annotated[str, Form(max_length=128)] = "",
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    crud.create_user(
        db,
        app_state(request).settings,
        username=username,
        password=password,
        role=role,
        hospital=hospital,
        display_name=display_name,
        actor=auth.actor,
    )
    return see_other("/admin/users")


@router.post("/admin/users/{user_id}/active")
def set_active(
    *,
    user_id: int,
    active: Annotated[bool, Form()],
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    user = db.get(User, user_id)
    if user is None:
        raise crud.NotFoundError(f"user {user_id} not found")
    if user.id == auth.user.id and not active:
        raise crud.ConflictError("you cannot disable your own account")
    crud.set_user_active(db, user, active, auth.actor)
    return see_other("/admin/users")


@router.get("/admin/audit")
def audit_page(
    *,
    request: Request,
    action: str = "",
    case_id: int | None = None,
    before_id: int | None = None,
    auth: Annotated[Auth, Depends(admin)],
    db: DbSession,
):
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(AUDIT_PAGE)
    if action:
        stmt = stmt.where(AuditLog.action == action)
    if case_id is not None:
        stmt = stmt.where(AuditLog.case_id == case_id)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    entries = db.scalars(stmt).all()
    crud.audit(db, auth.actor, "admin.audit.view")
    return render(
        request, "admin_audit.html", auth, entries=entries, action=action, case_id=case_id
    )
