"""Log in and out, the account page (password, API keys), and the start page per role."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from vcfnet.serve import crud, security
from vcfnet.serve.api.deps import Auth, DbSession, app_state, client_address, page_user
from vcfnet.serve.api.routes import HOME_BY_ROLE, render, see_other
from vcfnet.serve.models import ApiKey

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "vcfnet-login-csrf"


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    settings = app_state(request).settings
    response.set_cookie(
        settings.cookie_name,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
    )


@router.get("/")
def home(*, auth: Annotated[Auth, Depends(page_user())]) -> RedirectResponse:
    return RedirectResponse(HOME_BY_ROLE[auth.user.role], status_code=302)


@router.get("/login")
def login_page(*, request: Request) -> Response:
    return login_form(request)


def login_form(request: Request, status_code: int = 200, error: str = "") -> Response:
    """The login form; a double-submit cookie protects the form itself against CSRF."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status_code, login_csrf=token, error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=app_state(request).settings.secure_cookies,
        path="/login",
    )
    return response


@router.post("/login")
def login(
    *,
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
    db: DbSession,
) -> Response:
    settings = app_state(request).settings
    client = client_address(request)
    if not security.csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        return login_form(request, 403, "the login form expired; reload the page")
    if security.login_blocked(db, username, client, settings):
        crud.audit(db, crud.Actor(None, client), "login.blocked", detail=f"username={username}")
        return login_form(
            request, 429, f"too many failed logins; wait {settings.login_window_minutes:g} minutes"
        )
    user = security.authenticate(db, username, password, settings)
    if user is None:
        crud.audit(
            db,
            crud.Actor(None, client),
            security.LOGIN_FAILED,
            detail=security.login_failure_detail(username),
        )
        return login_form(request, 401, "wrong user name or password")
    token, _ = security.create_session(db, user, settings)
    crud.audit(db, crud.Actor(user, client), "login")
    response = see_other(HOME_BY_ROLE[user.role])
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    *,
    request: Request,
    auth: Annotated[Auth, Depends(page_user())],
    db: DbSession,
):
    auth.session.revoked_at = crud.utcnow()
    crud.audit(db, auth.actor, "logout")
    response = see_other("/login")
    response.delete_cookie(app_state(request).settings.cookie_name, path="/")
    return response


@router.get("/account")
def account_page(
    *,
    request: Request,
    auth: Annotated[Auth, Depends(page_user())],
    db: DbSession,
):
    keys = db.scalars(
        select(ApiKey).where(ApiKey.user_id == auth.user.id, ApiKey.revoked_at.is_(None))
    ).all()
    return render(request, "account.html", auth, api_keys=keys, new_key="", message="")


@router.post("/account/password")
def change_password(
    *,
    request: Request,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=1024)],
    auth: Annotated[Auth, Depends(page_user())],
    db: DbSession,
) -> Response:
    """New password: every session is revoked, this browser gets a fresh one."""
    settings = app_state(request).settings
    if not security.verify_password(auth.user.password_hash, current_password, settings):
        crud.audit(db, auth.actor, "user.password_failed")
        return render(
            request,
            "account.html",
            auth,
            403,
            api_keys=[],
            new_key="",
            message="the current password is wrong",
        )
    crud.set_password(db, settings, auth.user, new_password, auth.actor)
    token, _ = security.create_session(db, auth.user, settings)
    response = see_other("/account")
    set_session_cookie(request, response, token)
    return response


@router.post("/account/api-keys")
def create_api_key(
    *,
    request: Request,
    name: Annotated[str, Form(max_length=64)] = "",
    auth: Annotated[Auth, Depends(page_user())],
    db: DbSession,
) -> Response:
    key, _ = security.create_api_key(db, auth.user, name)
    crud.audit(db, auth.actor, "apikey.create")
    db.flush()
    keys = db.scalars(
        select(ApiKey).where(ApiKey.user_id == auth.user.id, ApiKey.revoked_at.is_(None))
    ).all()
    return render(request, "account.html", auth, api_keys=keys, new_key=key, message="")


@router.post("/account/api-keys/{key_id}/revoke")
def revoke_api_key(
    *,
    key_id: int,
    auth: Annotated[Auth, Depends(page_user())],
    db: DbSession,
):
    row = db.get(ApiKey, key_id)
    if row is None or row.user_id != auth.user.id:
        raise crud.NotFoundError(f"API key {key_id} not found")
    row.revoked_at = crud.utcnow()
    crud.audit(db, auth.actor, "apikey.revoke")
    return see_other("/account")
