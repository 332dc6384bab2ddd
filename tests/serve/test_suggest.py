"""Suggest boxes: the localiser's boxes, levels and grades for a case; the audit of what the
clinician kept, changed, deleted and added."""

from __future__ import annotations

import pytest

from tests.serve.conftest import login, make_settings, png_bytes, running_app, upload
from tests.serve.suggest_fixtures import FakeLocaliser, untrained_localiser
from vcfnet.serve import suggest
from vcfnet.serve.models import AuditLog


@pytest.fixture()
def suggest_app(tmp_path, tiny_run_dir):
    loc = untrained_localiser(tmp_path / "loc")
    with running_app(make_settings(tmp_path, tiny_run_dir, localiser_path=loc)) as app:
        yield app


def _post(client, path: str):
    return client.post(path, headers={"X-CSRF-Token": client.csrf})


def _audit(app) -> list[tuple[str, str]]:
    with app.state.vcfnet.session_factory() as db:
        return [(a.action, a.detail) for a in db.query(AuditLog).order_by(AuditLog.id)]


def test_real_localiser_answers(suggest_app):
    """The untrained network finds whatever it finds; the route runs it end to end."""
    clin = login(suggest_app, "clin")
    case = upload(clin, png_bytes()).json()["id"]
    response = _post(clin, f"/api/v1/cases/{case}/suggested-boxes")
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["boxes"], list)
    page = clin.get(f"/cases/{case}").text
    assert 'data-action="suggest"' in page and "/static/suggest.js" in page


def test_suggest_then_review_is_audited(suggest_app, monkeypatch):
    monkeypatch.setattr(suggest.LocaliserService, "get", lambda self: FakeLocaliser())
    clin = login(suggest_app, "clin")
    case = upload(clin, png_bytes()).json()["id"]
    boxes = _post(clin, f"/api/v1/cases/{case}/suggested-boxes").json()["boxes"]
    assert [b["level"] for b in boxes] == ["T12", "L1", "L2"]
    assert [b["grade"] for b in boxes] == [0, 3, 0]  # L1: 30 px against neighbours of 50
    assert boxes[0]["x1"] == 55.0 and boxes[0]["y2"] == 73.0
    # the clinician keeps T12, moves L1 down 5 px, deletes L2 and draws L3
    kept = [{k: b[k] for k in ("level", "x1", "y1", "x2", "y2")} for b in boxes[:2]]
    kept[1]["y1"] += 5
    kept.append({"level": "L3", "x1": 50, "y1": 200, "x2": 150, "y2": 238})
    headers = {"X-CSRF-Token": clin.csrf}
    assert clin.put(f"/api/v1/cases/{case}/boxes", json={"boxes": kept}, headers=headers).is_success
    review = _post(clin, f"/api/v1/cases/{case}/suggested-boxes/review").json()["review"]
    assert review == {"unchanged": ["T12"], "changed": ["L1"], "deleted": ["L2"], "added": ["L3"]}
    entries = _audit(suggest_app)
    suggested = [d for a, d in entries if a == "boxes.suggest"]
    assert suggested == ["T12 55,17,145,73 g0;L1 55,87,145,123 g3;L2 55,137,145,195 g0"]
    reviewed = [d for a, d in entries if a == "boxes.suggest.review"]
    assert reviewed == ["unchanged T12; changed L1; deleted L2; added L3"]


def test_review_without_suggestion_is_none(suggest_app):
    clin = login(suggest_app, "clin")
    case = upload(clin, png_bytes()).json()["id"]
    assert _post(clin, f"/api/v1/cases/{case}/suggested-boxes/review").json() == {"review": None}


def test_no_localiser_no_button(tmp_path, tiny_run_dir):
    with running_app(make_settings(tmp_path, tiny_run_dir)) as app:
        clin = login(app, "clin")
        case = upload(clin, png_bytes()).json()["id"]
        assert 'data-action="suggest"' not in clin.get(f"/cases/{case}").text
        response = _post(clin, f"/api/v1/cases/{case}/suggested-boxes")
        assert response.status_code == 503 and "--localiser" in response.json()["detail"]
