"""The clinician -> radiologist loop through pages and the API."""

from __future__ import annotations

import re

from tests.serve.conftest import login, png_bytes, put_boxes, upload


def test_clinician_to_radiologist_loop(app):
    clin = login(app, "clin")
    case = upload(clin, png_bytes()).json()
    assert case["width"] == 200 and case["height"] == 240
    assert case["patient_pseudonym"].startswith("patient-")
    assert put_boxes(clin, case["id"]).status_code == 200

    response = clin.post(f"/cases/{case['id']}/analyse", data={"csrf_token": clin.csrf})
    assert response.status_code == 303
    page = clin.get(f"/cases/{case['id']}").text
    assert "Research software, not a medical device" in page
    assert "p(acute)" in page and "weights" in page
    heatmap = re.search(r"/cases/\d+/analyses/\d+/heatmap", page).group(0)
    image = clin.get(heatmap)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    response = clin.post(
        f"/cases/{case['id']}/reads",
        data={"csrf_token": clin.csrf, "radiologist": "rad", "note": "L1 new pain?"},
    )
    assert response.status_code == 303

    rad = login(app, "rad")
    worklist = rad.get("/api/v1/worklist").json()
    assert [w["status"] for w in worklist] == ["new"]
    read_id = worklist[0]["id"]
    page = rad.get(f"/reads/{read_id}").text
    assert "p(acute)" not in page  # the AI result stays hidden before the first impression
    assert rad.get(heatmap).status_code == 403
    assert rad.post(f"/reads/{read_id}/reveal", data={"csrf_token": rad.csrf}).status_code == 409

    impression = {"csrf_token": rad.csrf, "finding_L1": "acute", "finding_L2": "chronic"}
    assert rad.post(f"/reads/{read_id}/impression", data=impression).status_code == 303
    assert rad.post(f"/reads/{read_id}/reveal", data={"csrf_token": rad.csrf}).status_code == 303
    assert "p(acute)" in rad.get(f"/reads/{read_id}").text
    assert rad.get(heatmap).status_code == 200
    # after the reveal the first impression is closed
    assert rad.post(f"/reads/{read_id}/impression", data=impression).status_code == 409

    report = {**impression, "text": "Acute fracture of L1."}
    assert rad.post(f"/reads/{read_id}/report", data=report).status_code == 303
    assert rad.post(f"/reads/{read_id}/sign", data={"csrf_token": rad.csrf}).status_code == 303
    assert rad.post(f"/reads/{read_id}/sign", data={"csrf_token": rad.csrf}).status_code == 409
    assert rad.post(f"/reads/{read_id}/report", data=report).status_code == 409
    addendum = {"csrf_token": rad.csrf, "text": "Also note L2."}
    assert rad.post(f"/reads/{read_id}/addendum", data=addendum).status_code == 303

    page = clin.get(f"/cases/{case['id']}").text
    assert "Acute fracture of L1." in page and "Addendum v2" in page
    assert rad.get("/api/v1/worklist?status=reported").json()[0]["id"] == read_id
