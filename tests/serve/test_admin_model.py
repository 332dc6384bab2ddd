"""Admin pages: the active model (card, validated upload, switch without restart, in every
process) and retention (settings, the purge job removing rows and files, audited)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest
from sqlalchemy import select

from tests.predict_fixtures import make_run_dir
from tests.serve.conftest import dispose, login, png_bytes, put_boxes, upload
from vcfnet.serve import jobs
from vcfnet.serve.app import create_app
from vcfnet.serve.models import Analysis, AuditLog, Box, Case, Job


def _zip_folder(folder, prefix: str = "run") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.rglob("*"):
            if path.is_file():
                archive.write(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def _post_model(client, data: bytes, name: str):
    files = {"file": (name, data, "application/octet-stream")}
    return client.post("/admin/model", files=files, data={"csrf_token": client.csrf})


def _actions(app) -> list[str]:
    with app.state.vcfnet.session_factory() as db:
        return list(db.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def _analyse(app, client) -> dict:
    case_id = upload(client, png_bytes()).json()["id"]
    put_boxes(client, case_id)
    response = client.post(
        f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": client.csrf}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_model_card_shows_the_active_model(app):
    page = login(app, "admin").get("/admin/model").text
    info = app.state.vcfnet.models.info()
    assert info["hash"] in page and "acute, chronic, pathologic" in page
    assert "64 px, 3 channels" in page


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("weights.bin", b"x", "upload a training run folder as .zip, or a .onnx model"),
        ("model.onnx", b"not an onnx graph", "not a usable vcfnet model"),
        ("run.zip", b"PK not a zip", "not a readable zip"),
    ],
)
def test_bad_model_upload_is_one_line_and_replaces_nothing(app, name, data, message):
    admin = login(app, "admin")
    before = app.state.vcfnet.models
    response = _post_model(admin, data, name)
    assert response.status_code == 422 and message in response.text
    assert app.state.vcfnet.models is before
    data_dir = app.state.vcfnet.settings.data_dir
    assert not list((data_dir / "model-cache").glob("*/*")) and not (data_dir / "models").exists()
    assert "admin.model.activate" not in _actions(app)


def test_zip_with_an_unsafe_path_is_refused(app):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.pt", b"x")
    response = _post_model(login(app, "admin"), buffer.getvalue(), "run.zip")
    assert response.status_code == 422 and "unsafe path" in response.text


def test_switch_model_without_restart_in_every_process(app, settings, tmp_path):
    clin, admin = login(app, "clin"), login(app, "admin")
    old_hash = _analyse(app, clin)["model"]["hash"]
    new_run = make_run_dir(tmp_path / "new-run", seed=7)
    (new_run / "metrics.csv").write_text("epoch,val_auc\n1,0.5\n2,0.75\n")
    response = _post_model(admin, _zip_folder(new_run), "new-run.zip")
    assert response.status_code == 303, response.text
    page = admin.get("/admin/model").text
    new_hash = app.state.vcfnet.models.info()["hash"]
    assert new_hash != old_hash and new_hash in page and "val_auc (last epoch)" in page
    assert _analyse(app, clin)["model"]["hash"] == new_hash
    assert "admin.model.activate" in _actions(app)
    other = create_app(settings)  # a second server process on the same database and storage
    try:
        assert _analyse(other, login(other, "clin"))["model"]["hash"] == new_hash
    finally:
        dispose(other)


def _backdate(app, case_id: int, days: int) -> None:
    with app.state.vcfnet.session_factory() as db:
        db.get(Case, case_id).created_at -= dt.timedelta(days=days)
        db.commit()


def test_purge_removes_expired_cases_rows_and_files(app):
    clin, admin = login(app, "clin"), login(app, "admin")
    form = {"csrf_token": admin.csrf, "keep_originals": "true", "delete_after_days": "30"}
    assert admin.post("/admin/retention", data=form).status_code == 303
    old = _analyse(app, clin)  # with a heatmap and (originals kept) its original
    with app.state.vcfnet.session_factory() as db:
        old_case = db.get(Case, db.get(Analysis, old["id"]).case_id)
        keys = [old_case.image_key, old_case.original_key, db.get(Analysis, old["id"]).heatmap_key]
    held = upload(clin, png_bytes(seed=2)).json()["id"]
    form = {"csrf_token": clin.csrf, "radiologist": "rad"}
    assert clin.post(f"/cases/{held}/reads", data=form).status_code == 303
    recent = upload(clin, png_bytes(seed=3)).json()["id"]
    for case_id in (old_case.id, held):
        _backdate(app, case_id, 40)
    with app.state.vcfnet.session_factory() as db:
        stale = Job(kind="analyse", payload={}, state="done", finished_at=jobs.utcnow())
        stale.finished_at -= dt.timedelta(days=31)
        db.add(stale)
        db.commit()
        stale_id = stale.id
    storage = app.state.vcfnet.storage
    assert all(storage.exists(k) for k in keys) and None not in keys
    assert "1 case(s) are older than 30 days" in admin.get("/admin/retention").text
    assert admin.post("/admin/retention/purge", data={"csrf_token": admin.csrf}).status_code == 303
    assert not any(storage.exists(k) for k in keys)
    with app.state.vcfnet.session_factory() as db:
        assert set(db.scalars(select(Case.id))) == {held, recent}
        assert not db.scalars(select(Box).where(Box.case_id == old_case.id)).all()
        assert not db.scalars(select(Analysis).where(Analysis.case_id == old_case.id)).all()
        assert db.get(Job, stale_id) is None
        assert not db.scalars(select(Job).where(Job.case_id == old_case.id)).all()
    actions = _actions(app)
    assert "admin.retention.set" in actions and "case.purge" in actions
    assert actions[-1] == "admin.retention.purge" and actions[-2] == "case.purge"
    page = admin.get("/admin/retention").text
    assert "Last purge: done" in page and "1 case(s), 0 original(s), 3 file(s) deleted" in page


def test_originals_off_purges_kept_originals_and_stops_keeping(app):
    clin, admin = login(app, "clin"), login(app, "admin")
    keep = {"csrf_token": admin.csrf, "keep_originals": "true", "delete_after_days": ""}
    assert admin.post("/admin/retention", data=keep).status_code == 303
    case_id = upload(clin, png_bytes()).json()["id"]
    with app.state.vcfnet.session_factory() as db:
        original = db.get(Case, case_id).original_key
    assert original and app.state.vcfnet.storage.exists(original)
    assert admin.post("/admin/retention", data={"csrf_token": admin.csrf}).status_code == 303
    assert admin.post("/admin/retention/purge", data={"csrf_token": admin.csrf}).status_code == 303
    assert not app.state.vcfnet.storage.exists(original)
    new_case = upload(clin, png_bytes(seed=4)).json()["id"]
    with app.state.vcfnet.session_factory() as db:
        assert db.get(Case, case_id).original_key is None
        assert db.get(Case, new_case).original_key is None


def test_retention_days_must_be_a_number(app):
    admin = login(app, "admin")
    form = {"csrf_token": admin.csrf, "delete_after_days": "ten"}
    response = admin.post("/admin/retention", data=form)
    assert response.status_code == 422 and "whole number" in response.text


def test_purge_is_scheduled_daily_once_a_policy_is_set(app):
    from vcfnet.serve import retention

    factory = app.state.vcfnet.session_factory
    with factory() as db:
        assert retention.schedule_purge(db) is None  # no policy: nothing expires
    admin = login(app, "admin")
    form = {"csrf_token": admin.csrf, "delete_after_days": "30"}
    assert admin.post("/admin/retention", data=form).status_code == 303
    with factory() as db:
        job = retention.schedule_purge(db)
        assert job is not None and retention.schedule_purge(db) is None  # once a day
        tomorrow = jobs.utcnow() + dt.timedelta(days=1, minutes=1)
        assert retention.schedule_purge(db, now=tomorrow) is not None
    state = app.state.vcfnet
    assert jobs.run_one(factory, state.jobs.handlers, "w")
    with factory() as db:
        assert jobs.outcome(db, job.id).state == "done"
    assert "admin.retention.purge" in _actions(app)
