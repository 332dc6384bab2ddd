"""Routes: they validate input, check the role and call the library (``crud``, ``reads``,
``ingest``, ``analysis``); pages render Jinja2 templates, ``api_v1`` answers JSON."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from vcfnet.serve.api.deps import Auth, app_state

HOME_BY_ROLE = {
    "clinician": "/cases",
    "radiologist": "/worklist",
    "researcher": "/studies",
    "admin": "/admin/users",
}


def render(
    request: Request, name: str, auth: Auth | None, status_code: int = 200, **context
) -> HTMLResponse:
    """A page with the user, their CSRF token and the notice in its context."""
    context.update(user=auth.user if auth else None, csrf_token=auth.csrf_token if auth else "")
    templates = app_state(request).templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    """Post/redirect/get: 303 to ``url``."""
    return RedirectResponse(url, status_code=303)
