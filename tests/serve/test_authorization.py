"""Every route x every role (+ anonymous) against the expected status; other users' ids -> 404."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import (
    PASSWORD,
    ROLE_USER,
    add_users,
    dispose,
    login,
    make_settings,
    png_bytes,
    put_boxes,
    upload,
)
from vcfnet.serve.app import create_app

ROLES = ("anonymous", "clinician", "radiologist", "researcher", "admin")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_run_dir, module_db_url):
    """One app with: case 1 (clin, boxes, analysed); reads on it assigned to rad:
    read 1 revealed, read 2 with a draft, read 3 signed, read 4 new. On SQLite and PostgreSQL."""
    root = tmp_path_factory.mktemp("authz")
    app = create_app(make_settings(root, tiny_run_dir, db_url=module_db_url))
    user_ids = add_users(app)
    clin, rad = login(app, "clin"), login(app, "rad")
    case_id = upload(clin, png_bytes()).json()["id"]
    put_boxes(clin, case_id)
    analysis_id = clin.post(
        f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf}
    ).json()["id"]
    findings = {"csrf_token": rad.csrf, "finding_L1": "acute"}
    for _ in range(4):
        form = {"csrf_token": clin.csrf, "radiologist": "rad"}
        assert clin.post(f"/cases/{case_id}/reads", data=form).status_code == 303
    for read_id in (1, 2, 3):
        rad.post(f"/reads/{read_id}/impression", data=findings)
    rad.post("/reads/1/reveal", data={"csrf_token": rad.csrf})
    for read_id in (2, 3):
        rad.post(f"/reads/{read_id}/report", data={**findings, "text": "draft"})
    assert rad.post("/reads/3/sign", data={"csrf_token": rad.csrf}).status_code == 303
    # reader studies of res: one launched (case 1, read by rad), a draft with them, an empty draft
    res = login(app, "res")
    study_ids = [
        int(
            res.post("/studies", data={"csrf_token": res.csrf, "name": "s"}).headers["location"][9:]
        )
        for _ in range(3)
    ]
    for study_id in study_ids[:2]:
        form = {"csrf_token": res.csrf, "case_id": case_id, "truth_0": "acute"}
        assert res.post(f"/studies/{study_id}/cases", data=form).status_code == 303
        form = {"csrf_token": res.csrf, "username": "rad", "level": "expert"}
        assert res.post(f"/studies/{study_id}/readers", data=form).status_code == 303
    launched = res.post(f"/studies/{study_ids[0]}/launch", data={"csrf_token": res.csrf})
    assert launched.status_code == 303, launched.text
    study_case = rad.get(f"/api/v1/reading/{study_ids[0]}").json()["case"]["study_case_id"]
    admin = login(app, "admin")  # a PACS endpoint (nothing listens there)
    form = {"csrf_token": admin.csrf, **PACS_FORM}
    assert admin.post("/admin/pacs", data=form).status_code == 303
    yield {
        "app": app,
        "case": case_id,
        "analysis": analysis_id,
        "user_ids": user_ids,
        "studies": study_ids,
        "study_case": study_case,
    }
    dispose(app)


def ids(world) -> dict:
    return {
        "case": world["case"],
        "analysis": world["analysis"],
        "res": world["user_ids"]["res"],
        "study": world["studies"][0],
        "draft": world["studies"][1],
        "empty": world["studies"][2],
        "sc": world["study_case"],
        "nocase": 888888,
        "nouser": 888888,
        "nooutbox": 888888,
        "job": 1,  # the analysis job of case 1
    }


_ALL = dict.fromkeys(("clinician", "radiologist", "researcher", "admin"))


def only(allowed: dict[str, int], page: bool = True) -> dict[str, int]:
    """Expected codes: the given roles as listed, other roles 403, anonymous 302 or 401."""
    expected = {role: allowed.get(role, 403) for role in _ALL}
    expected["anonymous"] = 302 if page else 401
    return expected


def every(code: int, anonymous: int) -> dict[str, int]:
    return {**dict.fromkeys(_ALL, code), "anonymous": anonymous}


PNG = png_bytes(120, 100, seed=5)
PACS_FORM = {"qido_url": "http://127.0.0.1:9/dicom-web", "auth": "none"}
BOXES = {"boxes": [{"level": "L1", "x1": 40, "y1": 50, "x2": 120, "y2": 110}]}

#: (method, path template, request kwargs, expected status per role)
TABLE = [
    ("GET", "/", {}, every(302, 302)),
    ("GET", "/login", {}, every(200, 200)),
    # without the login form's own cookie (see test_security for a real login)
    ("POST", "/login", {"data": {"username": "clin", "password": PASSWORD}}, every(403, 403)),
    ("POST", "/logout", {}, every(303, 302)),
    ("GET", "/account", {}, every(200, 302)),
    (
        "POST",
        "/account/password",
        {"data": {"current_password": PASSWORD, "new_password": PASSWORD}},
        every(303, 302),
    ),
    ("POST", "/account/api-keys", {"data": {"name": "k"}}, every(200, 302)),
    ("POST", "/account/api-keys/999999/revoke", {}, every(404, 302)),
    ("GET", "/cases", {}, only({"clinician": 200})),
    ("GET", "/cases/new", {}, only({"clinician": 200})),
    ("POST", "/cases", {"files": {"file": ("x.png", PNG)}}, only({"clinician": 303})),
    ("GET", "/cases/{case}", {}, only({"clinician": 200})),
    ("GET", "/cases/{case}/image", {}, only({"clinician": 200, "radiologist": 200})),
    (
        "GET",
        "/cases/{case}/analyses/{analysis}/heatmap",
        {},
        only({"clinician": 200, "radiologist": 200}),
    ),
    (
        "GET",
        "/api/v1/cases/{case}/analyses/{analysis}/heatmap",
        {},
        only({"clinician": 200, "radiologist": 200}, page=False),
    ),
    ("GET", "/cases/{case}/image.dcm", {}, only({"clinician": 200, "radiologist": 200})),
    ("GET", "/cases/{case}/report.dcm", {}, only({"clinician": 200, "radiologist": 200})),
    ("GET", "/cases/{case}/report.pdf", {}, only({"clinician": 200, "radiologist": 200})),
    ("POST", "/cases/{case}/analyse", {}, only({"clinician": 303})),
    ("POST", "/cases/{case}/reads", {"data": {"pool": "Reading Center"}}, only({"clinician": 303})),
    ("GET", "/worklist", {}, only({"radiologist": 200})),
    ("GET", "/reads/1", {}, only({"radiologist": 200})),
    ("GET", "/reads/3/report.dcm", {}, only({"clinician": 200, "radiologist": 200})),
    ("GET", "/reads/3/report.pdf", {}, only({"clinician": 200, "radiologist": 200})),
    ("GET", "/reads/2/report.pdf", {}, only({"clinician": 404, "radiologist": 404})),  # unsigned
    ("POST", "/reads/4/impression", {"data": {"finding_L1": "acute"}}, only({"radiologist": 303})),
    ("POST", "/reads/1/reveal", {}, only({"radiologist": 303})),
    ("POST", "/reads/1/report", {"data": {"text": "t"}}, only({"radiologist": 303})),
    ("POST", "/reads/2/sign", {}, only({"radiologist": 303})),
    ("POST", "/reads/3/addendum", {"data": {"text": "more"}}, only({"radiologist": 303})),
    # reader studies: the researcher designs, launches and analyses; radiologists read
    ("GET", "/studies", {}, only({"researcher": 200})),
    ("POST", "/studies", {"data": {"name": "new study"}}, only({"researcher": 303})),
    ("GET", "/studies/{study}", {}, only({"researcher": 200})),
    ("GET", "/studies/{draft}", {}, only({"researcher": 200})),
    (
        "POST",
        "/studies/{draft}/settings",
        {"data": {"name": "s", "design": "sequential", "washout_days": "0", "seed": "1"}},
        only({"researcher": 303}),
    ),
    (
        "POST",
        "/studies/{study}/settings",  # launched: frozen
        {"data": {"name": "s", "design": "sequential", "washout_days": "0", "seed": "1"}},
        only({"researcher": 409}),
    ),
    ("POST", "/studies/{draft}/cases", {"data": {"case_id": "888888"}}, only({"researcher": 404})),
    ("POST", "/studies/{draft}/cases/{nocase}/delete", {}, only({"researcher": 404})),
    (
        "POST",
        "/studies/{draft}/readers",
        {"data": {"username": "nobody", "level": "expert"}},
        only({"researcher": 422}),
    ),
    ("POST", "/studies/{draft}/readers/{nouser}/delete", {}, only({"researcher": 404})),
    ("POST", "/studies/{empty}/launch", {}, only({"researcher": 409})),  # no cases
    ("POST", "/studies/{draft}/close", {}, only({"researcher": 409})),  # not launched
    ("GET", "/studies/{study}/reads.csv", {}, only({"researcher": 200})),
    ("GET", "/studies/{study}/truth.csv", {}, only({"researcher": 200})),
    ("GET", "/studies/{study}/protocol.json", {}, only({"researcher": 200})),
    ("GET", "/studies/{study}/export.zip", {}, only({"researcher": 200})),
    ("GET", "/studies/{draft}/protocol.json", {}, only({"researcher": 404})),  # not launched
    ("GET", "/studies/{study}/figure6.png", {}, only({"researcher": 404})),  # no reads yet
    ("GET", "/api/v1/studies/{study}/results", {}, only({"researcher": 200}, page=False)),
    (
        "POST",
        "/studies/{draft}/import/labelimg",
        {"files": {"file": ("s.zip", b"not a zip")}},
        only({"researcher": 422}),
    ),
    (
        "POST",
        "/studies/{draft}/import/dataset",
        {"data": {"folder": "/"}},
        only({"researcher": 422}),
    ),
    ("GET", "/reading", {}, only({"radiologist": 200})),
    ("GET", "/reading/{study}", {}, only({"radiologist": 200})),
    ("GET", "/reading/{draft}", {}, only({"radiologist": 404})),  # not launched
    (
        "POST",
        "/reading/{study}/reads",
        {"data": {"study_case": "{sc}"}},
        only({"radiologist": 422}),
    ),
    ("GET", "/reading/{study}/cases/{sc}/image", {}, only({"radiologist": 200})),
    ("GET", "/reading/{study}/cases/{sc}/crops/0", {}, only({"radiologist": 200})),
    ("GET", "/reading/{study}/cases/{sc}/heatmap", {}, only({"radiologist": 403})),  # unaided
    ("GET", "/api/v1/reading/{study}", {}, only({"radiologist": 200}, page=False)),
    ("GET", "/api/v1/reading/{study}/cases/{sc}/ai", {}, only({"radiologist": 403}, page=False)),
    (
        "POST",
        "/api/v1/reading/{study}/reads",
        {"json": {"study_case_id": 1, "labels": []}},
        only({"radiologist": 422}, page=False),
    ),
    ("GET", "/admin/users", {}, only({"admin": 200})),
    (
        "POST",
        "/admin/users",
        {"data": {"username": "new-user", "password": PASSWORD, "role": "clinician"}},
        only({"admin": 303}),
    ),
    ("POST", "/admin/users/{res}/active", {"data": {"active": "true"}}, only({"admin": 303})),
    ("GET", "/admin/audit", {}, only({"admin": 200})),
    ("GET", "/admin/pacs", {}, only({"admin": 200})),
    ("POST", "/admin/pacs", {"data": PACS_FORM}, only({"admin": 303})),
    ("POST", "/admin/pacs/outbox/{nooutbox}/retry", {}, only({"admin": 404})),
    ("POST", "/admin/pacs/purge", {}, only({"admin": 303})),
    ("GET", "/pacs", {}, only({"clinician": 200})),
    ("POST", "/pacs/search", {"data": {"study_date": "2023-13"}}, only({"clinician": 422})),
    ("POST", "/pacs/import", {"data": {"study_uid": "not-a-uid"}}, only({"clinician": 422})),
    ("GET", "/admin/model", {}, only({"admin": 200})),
    ("POST", "/admin/model", {"files": {"file": ("x.txt", b"x")}}, only({"admin": 422})),
    ("GET", "/admin/retention", {}, only({"admin": 200})),
    ("POST", "/admin/retention", {"data": {"delete_after_days": ""}}, only({"admin": 303})),
    ("POST", "/admin/retention/purge", {}, only({"admin": 303})),
    ("GET", "/api/v1/me", {}, every(200, 401)),
    ("GET", "/api/v1/cases", {}, only({"clinician": 200, "radiologist": 200}, page=False)),
    ("POST", "/api/v1/cases", {"files": {"file": ("x.png", PNG)}}, only({"clinician": 201}, False)),
    (
        "GET",
        "/api/v1/cases/{case}",
        {},
        only({"clinician": 200, "radiologist": 200}, page=False),
    ),
    ("PUT", "/api/v1/cases/{case}/boxes", {"json": BOXES}, only({"clinician": 200}, page=False)),
    ("POST", "/api/v1/cases/{case}/analyses", {}, only({"clinician": 201}, page=False)),
    ("GET", "/api/v1/jobs/{job}", {}, only({"clinician": 200}, page=False)),
    # no localiser configured here: 503 (tests/serve/test_suggest.py runs one)
    ("POST", "/api/v1/cases/{case}/suggested-boxes", {}, only({"clinician": 503}, page=False)),
    (
        "POST",
        "/api/v1/cases/{case}/suggested-boxes/review",
        {},
        only({"clinician": 200}, page=False),
    ),
    ("GET", "/api/v1/worklist", {}, only({"radiologist": 200}, page=False)),
    (
        "POST",
        "/api/v1/predict",
        {"files": {"file": ("x.png", PNG)}, "data": {"box": ["10,10,60,60"]}},
        only({"clinician": 200, "radiologist": 200, "researcher": 200}, page=False),
    ),
    ("GET", "/api/v1/openapi.json", {}, every(200, 200)),
    ("GET", "/healthz", {}, every(200, 200)),
    ("GET", "/static/app.css", {}, every(200, 200)),
]


def _client(world, role: str) -> TestClient:
    if role == "anonymous":
        client = TestClient(world["app"], follow_redirects=False)
        client.csrf = ""
        return client
    return login(world["app"], ROLE_USER[role])


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    TABLE,
    ids=[f"{m} {p}" for m, p, _, _ in TABLE],
)
def test_route_role_status(world, role, method, path, kwargs, expected):
    client = _client(world, role)
    kwargs = {k: dict(v) if isinstance(v, dict) else v for k, v in kwargs.items()}
    if "data" in kwargs:
        kwargs["data"] = {
            k: v.format(**ids(world)) if isinstance(v, str) else v
            for k, v in kwargs["data"].items()
        }
    if method != "GET" and client.csrf:
        if path.startswith("/api/"):
            kwargs["headers"] = {"X-CSRF-Token": client.csrf}
        else:
            kwargs["data"] = {**kwargs.get("data", {}), "csrf_token": client.csrf}
    response = client.request(method, path.format(**ids(world)), **kwargs)
    assert response.status_code == expected[role], response.text[:300]
    if response.status_code == 302 and role == "anonymous" and path != "/":
        assert response.headers["location"] == "/login"


def test_table_covers_every_route(world):
    """A new route must be added to the table above."""
    routes = set()
    for route in world["app"].routes:
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                routes.add((method, route.path))
    placeholders = {
        "{case}": "{case_id}",
        "{analysis}": "{analysis_id}",
        "{res}": "{user_id}",
        "999999": "{key_id}",
        "{study}": "{study_id}",
        "{draft}": "{study_id}",
        "{empty}": "{study_id}",
        "{sc}": "{study_case_id}",
        "{nocase}": "{case_id}",
        "{nouser}": "{user_id}",
        "{nooutbox}": "{item_id}",
        "{job}": "{job_id}",
    }
    covered = set()
    for method, path, _, _ in TABLE:
        for old, new in placeholders.items():
            path = path.replace(old, new)
        covered.add((method, re.sub(r"^/reads/\d+", "/reads/{read_id}", path)))
    assert routes - covered == set()


OTHERS = [
    ("clin2", "GET", "/cases/{case}"),
    ("clin2", "GET", "/cases/{case}/image"),
    ("clin2", "GET", "/api/v1/cases/{case}"),
    ("clin2", "PUT", "/api/v1/cases/{case}/boxes"),
    ("clin2", "POST", "/api/v1/cases/{case}/suggested-boxes"),
    ("clin2", "POST", "/api/v1/cases/{case}/suggested-boxes/review"),
    ("clin2", "POST", "/cases/{case}/analyse"),
    ("clin2", "POST", "/cases/{case}/reads"),
    ("clin2", "GET", "/api/v1/jobs/{job}"),
    ("rad2", "GET", "/cases/{case}/image"),
    ("rad2", "GET", "/api/v1/cases/{case}"),
    ("rad2", "GET", "/reads/1"),
    ("rad2", "GET", "/reads/3/report.dcm"),
    ("rad2", "GET", "/cases/{case}/report.pdf"),
    ("clin2", "GET", "/reads/3/report.pdf"),
    ("clin2", "GET", "/cases/{case}/report.dcm"),
    ("clin2", "GET", "/cases/{case}/image.dcm"),
    ("rad2", "POST", "/reads/1/report"),
    ("clin", "GET", "/cases/999999"),
    ("res2", "GET", "/studies/{study}"),
    ("res2", "GET", "/studies/{study}/reads.csv"),
    ("res2", "GET", "/studies/{study}/truth.csv"),
    ("res2", "POST", "/studies/{draft}/settings"),
    ("res2", "POST", "/studies/{draft}/launch"),
    ("rad2", "GET", "/reading/{study}"),
    ("rad2", "GET", "/reading/{study}/cases/{sc}/image"),
    ("rad2", "GET", "/api/v1/reading/{study}"),
    ("rad2", "POST", "/reading/{study}/reads"),
]


@pytest.mark.parametrize(("username", "method", "path"), OTHERS)
def test_other_users_ids_are_not_found(world, username, method, path):
    client = login(world["app"], username)
    kwargs = {}
    if method == "PUT":
        kwargs = {"json": BOXES, "headers": {"X-CSRF-Token": client.csrf}}
    elif method == "POST" and path.startswith("/api/"):
        kwargs = {"headers": {"X-CSRF-Token": client.csrf}}
    elif method == "POST":
        kwargs = {"data": {"csrf_token": client.csrf, "radiologist": "rad", "text": "x"}}
    response = client.request(method, path.format(**ids(world)), **kwargs)
    assert response.status_code == 404, response.text[:300]


def test_api_key_authenticates_without_csrf(world):
    clin = login(world["app"], "clin")
    page = clin.post("/account/api-keys", data={"csrf_token": clin.csrf, "name": "ci"}).text
    key = page.split("<code>vcf_", 1)[1].split("</code>", 1)[0]
    api = TestClient(world["app"], headers={"Authorization": f"Bearer vcf_{key}"})
    assert api.get("/api/v1/me").json()["username"] == "clin"
    response = api.post(
        "/api/v1/predict", files={"file": ("x.png", PNG)}, data={"box": ["10,10,60,60"]}
    )
    assert response.status_code == 200
    [result] = response.json()
    assert set(result) >= {"image", "patient_id", "model", "boxes"}
    assert set(result["boxes"][0]["probabilities"]) == {"acute", "chronic", "pathologic"}
    wrong = TestClient(world["app"], headers={"Authorization": "Bearer vcf_wrong"})
    assert wrong.get("/api/v1/me").status_code == 401
    assert api.get("/cases", follow_redirects=False).status_code == 302  # pages: cookie only
