"""Request dependencies: the database session, the current user, roles and CSRF.

Pages authenticate with the session cookie only; anonymous page requests are sent to the login
page (302). The JSON API takes the cookie or ``Authorization: Bearer <api key>``; anonymous API
requests get 401. A user whose role may not use a route gets 403. Every state-changing request
made with the cookie must carry the session's CSRF token (form field or header), else 403.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.templating import Jinja2Templates

from vcfnet.serve import security
from vcfnet.serve.crud import Actor
from vcfnet.serve.db import session_scope
from vcfnet.serve.jobs import JobRunner
from vcfnet.serve.ml import ModelService
from vcfnet.serve.models import ROLES, LoginSession, User
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage import LocalStorage

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class AppState:
    """What every request needs, built once by ``create_app``."""

    settings: Settings
    session_factory: sessionmaker[Session]
    storage: LocalStorage
    models: ModelService
    id_key: bytes
    templates: Jinja2Templates
    jobs: JobRunner | None = None  # background job workers of this process (serve.jobs)


class LoginRequiredError(Exception):
    """An anonymous request for a page: answered with a redirect to the login page."""

    def __init__(self, next_path: str = "/"):
        super().__init__("log in first")
        self.next_path = next_path


@dataclass(frozen=True)
class Auth:
    """The authenticated user of a request, how they came in, and from where."""

    user: User
    session: LoginSession | None  # None when authenticated with an API key
    client: str

    @property
    def actor(self) -> Actor:
        return Actor(self.user, self.client)

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token if self.session else ""


def app_state(request: Request) -> AppState:
    return request.app.state.vcfnet


def get_db(request: Request) -> Iterator[Session]:
    """A session per request: committed when the route returns (rolled back if it raises)."""
    with session_scope(app_state(request).session_factory) as session:
        yield session


#: The request's session, ended with ``scope="function"``: committed before the response is sent.
#: FastAPI's default ends a yield dependency after the response, so a browser following a 303
#: (log in, upload, sign) could ask for the next page before the commit and miss the change.
DbSession = Annotated[Session, Depends(get_db, scope="function")]


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def cookie_auth(request: Request, db: Session) -> Auth | None:
    settings = app_state(request).settings
    session = security.session_for_token(db, request.cookies.get(settings.cookie_name))
    if session is None:
        return None
    return Auth(session.user, session, client_address(request))


def bearer_auth(request: Request, db: Session) -> Auth | None:
    """Auth from ``Authorization: Bearer <key>``; 401 for a header with a wrong key."""
    header = request.headers.get("authorization", "")
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    user = security.user_for_api_key(db, key.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return Auth(user, None, client_address(request))


async def check_csrf(request: Request, auth: Auth) -> None:
    """403 unless a cookie-authenticated state-changing request echoes the session's token."""
    if request.method not in UNSAFE_METHODS or auth.session is None:
        return
    given = request.headers.get(security.CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if given is None and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = (await request.form()).get(security.CSRF_FIELD)
    if not security.csrf_matches(auth.session.csrf_token, given):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


def _check_role(auth: Auth, roles: tuple[str, ...]) -> Auth:
    if roles and auth.user.role not in roles:
        raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
    return auth


def page_user(*roles: str):
    """Dependency: the logged-in user of a page (cookie), with one of ``roles`` (any if none)."""
    _validate(roles)

    def authenticate(request: Request, db: DbSession) -> Auth:
        auth = cookie_auth(request, db)  # a database query: sync, so it runs in a worker thread
        if auth is None:
            raise LoginRequiredError(request.url.path)
        return _check_role(auth, roles)

    async def dependency(request: Request, auth: Annotated[Auth, Depends(authenticate)]) -> Auth:
        await check_csrf(request, auth)
        return auth

    return dependency


def api_user(*roles: str):
    """Dependency: the user of an API request (API key or cookie), with one of ``roles``."""
    _validate(roles)

    def authenticate(request: Request, db: DbSession) -> Auth:
        auth = bearer_auth(request, db) or cookie_auth(request, db)
        if auth is None:
            raise HTTPException(401, "log in or send 'Authorization: Bearer <API key>'")
        return _check_role(auth, roles)

    async def dependency(request: Request, auth: Annotated[Auth, Depends(authenticate)]) -> Auth:
        await check_csrf(request, auth)
        return auth

    return dependency


def _validate(roles: tuple[str, ...]) -> None:
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}")
