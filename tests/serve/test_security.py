"""CSRF, login rate limit, session revocation, cookies, security headers, escaping (XSS)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import PASSWORD, login, png_bytes, post_login, put_boxes, upload

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_missing_csrf_token_is_refused(app):
    clin = login(app, "clin")
    case_id = upload(clin, png_bytes()).json()["id"]
    assert clin.post(f"/cases/{case_id}/reads", data={"radiologist": "rad"}).status_code == 403
    assert clin.post("/logout").status_code == 403
    bad = {"csrf_token": "not-the-token", "radiologist": "rad"}
    assert clin.post(f"/cases/{case_id}/reads", data=bad).status_code == 403
    response = clin.put(f"/api/v1/cases/{case_id}/boxes", json={"boxes": []})
    assert response.status_code == 403  # the API with the cookie needs the header too
    files = {"file": ("x.png", png_bytes(), "image/png")}
    assert clin.post("/api/v1/cases", files=files).status_code == 403
    assert clin.get("/api/v1/me").status_code == 200  # reads need no token


def test_login_rate_limit(app):
    client = TestClient(app, follow_redirects=False)
    for _ in range(5):
        assert post_login(client, "clin", "wrong password!").status_code == 401
    response = post_login(client, "clin", PASSWORD)
    assert response.status_code == 429
    assert "too many failed logins" in response.text
    assert "vcfnet-session" not in response.headers.get("set-cookie", "")


def test_unknown_user_and_wrong_password_look_the_same(app):
    client = TestClient(app, follow_redirects=False)
    unknown = post_login(client, "nobody", "whatever password")
    wrong = post_login(client, "clin", "wrong password!")
    assert unknown.status_code == wrong.status_code == 401
    assert "wrong user name or password" in unknown.text and "wrong user name" in wrong.text


def test_session_cookie_flags(app):
    client = TestClient(app, follow_redirects=False)
    cookie = post_login(client, "clin", PASSWORD).headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_secure_cookie_behind_tls(tmp_path, tiny_run_dir):
    from tests.serve.conftest import add_users, make_settings
    from vcfnet.serve.app import create_app

    app = create_app(make_settings(tmp_path, tiny_run_dir, secure_cookies=True))
    add_users(app)
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    cookie = post_login(client, "clin", PASSWORD).headers["set-cookie"]
    assert cookie.startswith("__Host-vcfnet-session=") and "Secure" in cookie


def test_logout_revokes_the_session(app):
    clin = login(app, "clin")
    stolen = dict(clin.cookies)
    assert clin.post("/logout", data={"csrf_token": clin.csrf}).status_code == 303
    replay = TestClient(app, cookies=stolen, follow_redirects=False)
    assert replay.get("/cases").status_code == 302
    assert replay.get("/api/v1/me").status_code == 401


def test_password_change_revokes_other_sessions(app):
    first, second = login(app, "clin"), login(app, "clin")
    new_password = "a brand new passphrase"
    form = {"csrf_token": first.csrf, "current_password": PASSWORD, "new_password": new_password}
    assert first.post("/account/password", data=form).status_code == 303
    assert second.get("/api/v1/me").status_code == 401  # the other browser is logged out
    assert first.get("/api/v1/me").status_code == 200  # this one got a fresh session
    assert post_login(TestClient(app), "clin", PASSWORD).status_code == 401
    login(app, "clin", new_password)


def test_wrong_current_password_changes_nothing(app):
    clin = login(app, "clin")
    form = {"csrf_token": clin.csrf, "current_password": "not it at all", "new_password": "x" * 20}
    assert clin.post("/account/password", data=form).status_code == 403
    login(app, "clin")


def test_disabled_user_is_logged_out(app):
    clin, admin = login(app, "clin"), login(app, "admin")
    assert clin.get("/api/v1/me").status_code == 200
    user_id = _user_id(app, "clin")
    form = {"csrf_token": admin.csrf, "active": "false"}
    assert admin.post(f"/admin/users/{user_id}/active", data=form).status_code == 303
    assert clin.get("/api/v1/me").status_code == 401
    assert post_login(TestClient(app), "clin", PASSWORD).status_code == 401


def _user_id(app, username: str) -> int:
    from vcfnet.serve import crud

    with app.state.vcfnet.session_factory() as db:
        return crud.get_user_by_name(db, username).id


@pytest.mark.parametrize("path", ["/login", "/cases", "/api/v1/me", "/static/viewer.js"])
def test_security_headers(app, path):
    client = login(app, "clin")
    headers = client.get(path).headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    if not path.startswith("/static/"):
        assert headers["cache-control"] == "no-store"


def test_no_inline_script_in_pages(app):
    clin = login(app, "clin")
    case_id = upload(clin, png_bytes()).json()["id"]
    for path in ("/login", "/cases", "/cases/new", f"/cases/{case_id}", "/account"):
        html = clin.get(path).text
        for chunk in html.split("<script")[1:]:
            head = chunk.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, head
        assert " onclick=" not in html and "javascript:" not in html


def test_free_text_is_escaped_everywhere(app):
    """XSS payloads in every free-text field come back escaped on every page showing them."""
    admin = login(app, "admin")
    form = {
        "csrf_token": admin.csrf,
        "username": "xss-user",
        "password": PASSWORD,
        "role": "clinician",
        "hospital": XSS,
        "display_name": XSS,
    }
    assert admin.post("/admin/users", data=form).status_code == 303
    clin = login(app, "clin")
    case_id = upload(clin, png_bytes()).json()["id"]
    put_boxes(clin, case_id)
    form = {"csrf_token": clin.csrf, "radiologist": "rad", "note": XSS}
    assert clin.post(f"/cases/{case_id}/reads", data=form).status_code == 303
    clin.post("/account/api-keys", data={"csrf_token": clin.csrf, "name": XSS})
    rad = login(app, "rad")
    read_id = rad.get("/api/v1/worklist").json()[0]["id"]
    findings = {"csrf_token": rad.csrf, "finding_L1": "acute"}
    rad.post(f"/reads/{read_id}/impression", data=findings)
    rad.post(f"/reads/{read_id}/report", data={**findings, "text": XSS})
    rad.post(f"/reads/{read_id}/sign", data={"csrf_token": rad.csrf})
    rad.post(f"/reads/{read_id}/addendum", data={"csrf_token": rad.csrf, "text": XSS})
    pages = [
        admin.get("/admin/users").text,
        admin.get("/admin/audit").text,
        admin.get("/admin/audit", params={"action": XSS}).text,
        clin.get(f"/cases/{case_id}").text,
        clin.get("/account").text,
        rad.get("/worklist").text,
        rad.get(f"/reads/{read_id}").text,
    ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert sum("&lt;script&gt;alert" in html for html in pages) >= 5
