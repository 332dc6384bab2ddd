"""Reader studies on the platform (issue 14): blind reads, washout, frozen protocol, the order from
the seed, and the live analysis equal to ``vcfnet readers`` on the exported files."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.serve.conftest import login, png_bytes, put_boxes, upload
from vcfnet.cli.main import main
from vcfnet.evaluation.predictions import PROB_COLUMNS
from vcfnet.labels import CLASS_NAMES
from vcfnet.reader_study.reads import RATING_COLUMNS, READS_COLUMNS
from vcfnet.serve import studies, study_results
from vcfnet.serve.models import ImmutableRowError, Study, StudyRead

BOXES = [
    {"level": "L1", "x1": 40, "y1": 50, "x2": 120, "y2": 110},
    {"level": "L2", "x1": 60, "y1": 130, "x2": 170, "y2": 200},
]


def make_study(
    app,
    n_cases: int = 3,
    readers=(("rad", "trainee"), ("rad2", "expert")),
    *,
    design: str = "sequential",
    washout: int = 0,
    seed: int = 7,
    ratings: str = "none",
    launch: bool = True,
):
    """A study of ``n_cases`` new cases (2 boxes each, truths cycling over the classes)."""
    clin, res = login(app, "clin"), login(app, "res")
    case_ids = []
    for i in range(n_cases):
        case_id = upload(clin, png_bytes(seed=100 + i)).json()["id"]
        assert put_boxes(clin, case_id, BOXES).status_code == 200
        case_ids.append(case_id)
    response = res.post("/studies", data={"csrf_token": res.csrf, "name": "Table 3"})
    assert response.status_code == 303, response.text
    study_id = int(response.headers["location"].rsplit("/", 1)[1])
    settings = {
        "csrf_token": res.csrf,
        "name": "Table 3",
        "design": design,
        "washout_days": washout,
        "seed": seed,
        "ratings": ratings,
    }
    assert res.post(f"/studies/{study_id}/settings", data=settings).status_code == 303
    k = 0
    for case_id in case_ids:
        form = {"csrf_token": res.csrf, "case_id": case_id}
        for box in range(len(BOXES)):
            form[f"truth_{box}"] = CLASS_NAMES[k % len(CLASS_NAMES)]
            k += 1
        response = res.post(f"/studies/{study_id}/cases", data=form)
        assert response.status_code == 303, response.text
    for username, level in readers:
        form = {"csrf_token": res.csrf, "username": username, "level": level}
        assert res.post(f"/studies/{study_id}/readers", data=form).status_code == 303
    if launch:
        response = res.post(f"/studies/{study_id}/launch", data={"csrf_token": res.csrf})
        assert response.status_code == 303, response.text
    return res, study_id, case_ids


def current(client, study_id: int) -> dict:
    response = client.get(f"/api/v1/reading/{study_id}")
    assert response.status_code == 200, response.text
    return response.json()


def submit(client, study_id: int, study_case_id: int, labels, confidences=None, seconds=3.0):
    body = {"study_case_id": study_case_id, "labels": labels, "seconds": seconds}
    if confidences is not None:
        body["confidences"] = confidences
    return client.post(
        f"/api/v1/reading/{study_id}/reads", json=body, headers={"X-CSRF-Token": client.csrf}
    )


def read_session(client, study_id: int, rng, ratings: str = "none") -> list[tuple[int, str]]:
    """Read every case of the reader's open session; returns (study_case_id, mode) in order."""
    served = []
    state = current(client, study_id)
    session = state["session"]
    while state["status"] == "reading" and state["session"] == session:
        case = state["case"]
        labels = [str(rng.choice(CLASS_NAMES)) for _ in case["boxes"]]
        confidences = None
        if ratings == "five_point":
            confidences = [
                {
                    c: int(rng.integers(4, 6)) if c == label else int(rng.integers(1, 4))
                    for c in CLASS_NAMES
                }
                for label in labels
            ]
        elif ratings == "sliders":
            confidences = []
            for label in labels:
                top = int(rng.integers(34, 101))
                rest = 100 - top
                low = int(rng.integers(0, rest + 1))
                others = [c for c in CLASS_NAMES if c != label]
                confidences.append({label: top, others[0]: low, others[1]: rest - low})
        response = submit(client, study_id, case["study_case_id"], labels, confidences)
        assert response.status_code == 201, response.text
        served.append((case["study_case_id"], state["mode"]))
        state = current(client, study_id)
    return served


def viewer_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="viewer-data">(.*?)</script>', html)
    assert match, "the reading page has no viewer"
    return json.loads(match.group(1))


def test_unaided_reads_are_blind_in_the_pages_and_the_api(app):
    _, study_id, case_ids = make_study(app, n_cases=2, readers=(("rad", "expert"),))
    rad, rad2 = login(app, "rad"), login(app, "rad2")
    state = current(rad, study_id)
    assert (state["status"], state["session"], state["mode"]) == ("reading", 1, "unaided")
    case = state["case"]
    assert case["ai_url"] is None
    assert all(set(box) == {"level", "x1", "y1", "x2", "y2"} for box in case["boxes"])
    assert "truth" not in json.dumps(state)
    base = f"/reading/{study_id}/cases/{case['study_case_id']}"
    assert rad.get(f"/api/v1{base}/ai").status_code == 403
    assert rad.get(f"{base}/heatmap").status_code == 403
    assert rad.get(f"{base}/image").status_code == 200

    page = rad.get(f"/reading/{study_id}")
    assert page.status_code == 200
    data = viewer_data(page.text)
    assert data["analysis"] is None and data["heatmap_url"] is None
    assert all("truth" not in box for box in data["boxes"])
    assert "AI result" not in page.text and "p(acute)" not in page.text

    # the truth, the protocol and the results are the researcher's only
    for path in ("", "/truth.csv", "/reads.csv", "/protocol.json"):
        assert rad.get(f"/studies/{study_id}{path}").status_code == 403
    # the study grants no access to the platform's case pages, nor to other radiologists
    assert rad.get(f"/api/v1/cases/{case_ids[0]}").status_code == 404
    assert rad2.get(f"/reading/{study_id}").status_code == 404
    assert rad2.get(f"/api/v1/reading/{study_id}").status_code == 404
    assert rad2.get(f"{base}/image").status_code == 404

    # aided session (washout 0): the current case's AI result and heatmap are given
    read_session(rad, study_id, np.random.default_rng(0))
    state = current(rad, study_id)
    assert (state["session"], state["mode"]) == (2, "aided")
    case = state["case"]
    ai = rad.get(case["ai_url"])
    assert ai.status_code == 200
    assert {f["level"] for f in ai.json()["findings"]} == {"L1", "L2"}
    assert "truth" not in ai.text
    page = rad.get(f"/reading/{study_id}")
    assert "AI result" in page.text and viewer_data(page.text)["analysis"] is not None
    base = f"/reading/{study_id}/cases/{case['study_case_id']}"
    assert rad.get(f"{base}/heatmap").status_code == 200
    # only the current case's
    other = next(c for c in studies_cases(app, study_id) if c != case["study_case_id"])
    assert rad.get(f"/api/v1/reading/{study_id}/cases/{other}/ai").status_code == 403


def studies_cases(app, study_id: int) -> list[int]:
    with app.state.vcfnet.session_factory() as db:
        return [c["study_case_id"] for c in db.get(Study, study_id).protocol["cases"]]


def test_washout_is_enforced_by_the_server(app, monkeypatch):
    _, study_id, _ = make_study(app, n_cases=2, readers=(("rad", "trainee"),), washout=7)
    rad = login(app, "rad")
    read_session(rad, study_id, np.random.default_rng(1))
    state = current(rad, study_id)
    assert state["status"] == "washout" and state["case"] is None
    opens = dt.datetime.fromisoformat(state["opens_at"].rstrip("Z"))
    assert dt.timedelta(days=6, hours=23) < opens - studies.utcnow() <= dt.timedelta(days=7)
    some_case = studies_cases(app, study_id)[0]
    assert submit(rad, study_id, some_case, ["acute", "acute"]).status_code == 409
    assert rad.get(f"/api/v1/reading/{study_id}/cases/{some_case}/ai").status_code == 403
    assert "washout runs until" in rad.get(f"/reading/{study_id}").text

    monkeypatch.setattr(studies, "utcnow", lambda: opens - dt.timedelta(seconds=1))
    assert current(rad, study_id)["status"] == "washout"
    monkeypatch.setattr(studies, "utcnow", lambda: opens + dt.timedelta(seconds=1))
    state = current(rad, study_id)
    assert (state["status"], state["session"], state["mode"]) == ("reading", 2, "aided")
    read_session(rad, study_id, np.random.default_rng(2))
    assert current(rad, study_id)["status"] == "done"


def test_the_protocol_is_frozen_at_launch(app):
    res, study_id, case_ids = make_study(app, n_cases=2)
    with app.state.vcfnet.session_factory() as db:
        protocol = db.get(Study, study_id).protocol
    assert protocol["design"] == "sequential" and protocol["seed"] == 7
    assert [r["username"] for r in protocol["readers"]] == ["rad", "rad2"]
    assert [c["case_id"] for c in protocol["cases"]] == case_ids
    assert protocol["cases"][0]["boxes"][0]["truth"] == "acute"
    assert protocol["cases"][0]["ai"][0]["predicted"] in CLASS_NAMES

    token = {"csrf_token": res.csrf}
    refused = [
        ("/settings", {"name": "x", "design": "crossover", "washout_days": 0, "seed": 1}),
        ("/cases", {"case_id": case_ids[0], "truth_0": "chronic"}),
        (f"/cases/{case_ids[0]}/delete", {}),
        ("/readers", {"username": "rad", "level": "expert"}),
        ("/readers/1/delete", {}),
        ("/launch", {}),
    ]
    for path, form in refused:
        response = res.post(f"/studies/{study_id}{path}", data={**token, **form})
        assert response.status_code == 409, (path, response.text[:200])
    assert res.get(f"/studies/{study_id}/protocol.json").json() == protocol

    # a submitted read never changes (the database refuses it too)
    rad = login(app, "rad")
    case = current(rad, study_id)["case"]
    assert submit(rad, study_id, case["study_case_id"], ["acute", "chronic"]).status_code == 201
    assert submit(rad, study_id, case["study_case_id"], ["chronic", "chronic"]).status_code == 409
    with app.state.vcfnet.session_factory() as db:
        read = db.query(StudyRead).first()
        read.label = "pathologic"
        with pytest.raises(ImmutableRowError):
            db.flush()
    # closing ends the reading
    assert res.post(f"/studies/{study_id}/close", data=token).status_code == 303
    assert current(rad, study_id)["status"] == "closed"


def test_case_order_is_reproducible_from_the_seed(app):
    _, study_id, _ = make_study(app, n_cases=5, seed=11)
    ids = studies_cases(app, study_id)
    orders = {}
    for position, username in enumerate(("rad", "rad2")):
        client = login(app, username)
        served = read_session(client, study_id, np.random.default_rng(position))
        expected = np.random.default_rng([11, position, 1]).permutation(5)
        assert [c for c, _ in served] == [ids[i] for i in expected]
        assert {m for _, m in served} == {"unaided"}
        served2 = read_session(client, study_id, np.random.default_rng(position))
        expected2 = np.random.default_rng([11, position, 2]).permutation(5)
        assert [c for c, _ in served2] == [ids[i] for i in expected2]
        assert {m for _, m in served2} == {"aided"}
        orders[username] = served
    assert orders["rad"] != orders["rad2"]  # per reader
    assert studies.case_order(11, 0, 1, 5) == studies.case_order(11, 0, 1, 5)
    assert studies.case_order(11, 0, 1, 5) != studies.case_order(12, 0, 1, 5)


def test_crossover_reads_half_the_cases_aided_first(app):
    _, study_id, _ = make_study(app, n_cases=4, readers=(("rad", "expert"),), design="crossover")
    rad = login(app, "rad")
    first = read_session(rad, study_id, np.random.default_rng(0))
    second = read_session(rad, study_id, np.random.default_rng(1))
    ids = studies_cases(app, study_id)
    aided_first = {ids[i] for i in studies.aided_first(7, 0, 4)}
    assert {c for c, m in first if m == "aided"} == aided_first and len(aided_first) == 2
    assert {c for c, m in second if m == "unaided"} == aided_first
    assert {c for c, _ in first} == {c for c, _ in second} == set(ids)


SCORES = {  # rating scale -> (score columns of reads.csv, score kind of the MRMC)
    "none": ((), "categorical"),
    "sliders": (PROB_COLUMNS, "probability"),
    "five_point": (RATING_COLUMNS, "rating"),
}


@pytest.mark.parametrize("ratings", list(SCORES))
def test_live_analysis_equals_vcfnet_readers_on_the_export(app, tmp_path, ratings):
    res, study_id, _ = make_study(app, n_cases=6, ratings=ratings, seed=3)
    rng = np.random.default_rng(5)
    for username in ("rad", "rad2"):
        client = login(app, username)
        read_session(client, study_id, rng, ratings)
        page = res.get(f"/studies/{study_id}").text
        assert "interim" in page  # the second session (or reader) is still to come
        read_session(client, study_id, rng, ratings)
    page = res.get(f"/studies/{study_id}")
    assert page.status_code == 200 and "interim" not in page.text

    truth_csv, reads_csv = tmp_path / "truth.csv", tmp_path / "reads.csv"
    truth_csv.write_bytes(res.get(f"/studies/{study_id}/truth.csv").content)
    reads_csv.write_bytes(res.get(f"/studies/{study_id}/reads.csv").content)
    reads = pd.read_csv(reads_csv)
    assert len(reads) == 2 * 2 * 12  # readers x modes x vertebrae
    assert tuple(reads.columns) == (*READS_COLUMNS[:5], *SCORES[ratings][0])
    out = tmp_path / "cli"
    args = ["readers", "--truth", str(truth_csv), "--reads", str(reads_csv), "--out", str(out)]
    assert main(["-q", *args, "--no-figures"]) == 0

    with app.state.vcfnet.session_factory() as db:
        live = study_results.analyse(db, db.get(Study, study_id))
    assert live.complete and live.n_cases == 12 and live.modes == ("unaided", "aided")
    cli_table = pd.read_csv(out / "readers.csv").drop(columns="simulated")
    expected = live.table.reset_index(drop=True)
    for column in expected.columns:  # text columns: '' comes back from the CSV as NaN
        if not pd.api.types.is_numeric_dtype(expected[column]):
            cli_table[column] = cli_table[column].astype(object).fillna("").astype(str)
            expected[column] = expected[column].astype(str)
    pd.testing.assert_frame_equal(cli_table[expected.columns], expected, check_dtype=False)
    cli_mrmc = json.loads((out / "mrmc.json").read_text())
    for cls in CLASS_NAMES:
        for key in ("auc_unaided", "auc_aided", "difference", "ci_low", "ci_high", "f", "p"):
            assert cli_mrmc["classes"][cls][key] == pytest.approx(
                live.mrmc["classes"][cls][key], rel=1e-12, abs=1e-15
            )
        # the page shows them
        assert f"{live.mrmc['classes'][cls]['auc_aided']:.3f}" in page.text
    assert set(live.table["reader"]) == {"model", "rad", "rad2"}
    assert cli_mrmc["score_kind"] == live.mrmc["score_kind"] == SCORES[ratings][1]
    for row in live.comparisons.itertuples():  # McNemar and DeLong per reader on the page
        assert row.comparison in page.text

    # Figure 6 on the page (a PNG by an authorised route) and the results as JSON
    assert f'src="/studies/{study_id}/figure6.png"' in page.text
    figure = res.get(f"/studies/{study_id}/figure6.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    body = res.get(f"/api/v1/studies/{study_id}/results").json()
    assert body["interim"] is False and body["n_cases"] == 12
    assert [r["done"] for r in body["readers"]] == [{"1": 6, "2": 6}] * 2
    assert len(body["table3"]) == len(live.table)
    for cls in CLASS_NAMES:
        assert body["mrmc"]["classes"][cls]["p"] == pytest.approx(live.mrmc["classes"][cls]["p"])

    # the whole study in one zip: protocol, files, and the same results with the report
    archive = zipfile.ZipFile(io.BytesIO(res.get(f"/studies/{study_id}/export.zip").content))
    names = set(archive.namelist())
    assert {"protocol.json", "truth.csv", "reads.csv", "README.txt"} <= names
    assert {"results/readers.csv", "results/mrmc.json", "results/report.html"} <= names
    assert archive.read("reads.csv") == reads_csv.read_bytes()
    zipped = json.loads(archive.read("results/mrmc.json"))
    for cls in CLASS_NAMES:
        assert zipped["classes"][cls]["p"] == pytest.approx(live.mrmc["classes"][cls]["p"])


def test_reading_page_form_records_classes_confidences_and_time(app):
    _, study_id, _ = make_study(app, n_cases=2, readers=(("rad", "expert"),), ratings="sliders")
    rad = login(app, "rad")
    study_case = current(rad, study_id)["case"]["study_case_id"]
    form = {
        "csrf_token": rad.csrf,
        "study_case": study_case,
        "seconds": "12.5",
        "label_0": "acute",
        "label_1": "chronic",
        "conf_0_acute": "70",
        "conf_0_chronic": "20",
        "conf_0_pathologic": "10",
        "conf_1_acute": "10",
        "conf_1_chronic": "80",
        "conf_1_pathologic": "5",  # sums to 95
    }
    response = rad.post(f"/reading/{study_id}/reads", data=form)
    assert response.status_code == 422 and "sum to 100" in response.text
    form["conf_1_pathologic"] = "10"
    response = rad.post(f"/reading/{study_id}/reads", data=form)
    assert response.status_code == 303 and response.headers["location"] == f"/reading/{study_id}"
    with app.state.vcfnet.session_factory() as db:
        reads = db.query(StudyRead).order_by(StudyRead.box).all()
    assert [(r.box, r.label, r.mode, r.session) for r in reads] == [
        (0, "acute", "unaided", 1),
        (1, "chronic", "unaided", 1),
    ]
    assert reads[0].confidences == {"acute": 70, "chronic": 20, "pathologic": 10}
    assert reads[1].seconds == 12.5
    assert current(rad, study_id)["done"] == {"1": 1, "2": 0}
    page = rad.get(f"/reading/{study_id}").text
    assert "case 2 of 2" in page


def test_interim_results_with_unaided_reads_only(app):
    res, study_id, _ = make_study(app, n_cases=3)
    rng = np.random.default_rng(9)
    for username in ("rad", "rad2"):
        read_session(login(app, username), study_id, rng)
    with app.state.vcfnet.session_factory() as db:
        live = study_results.analyse(db, db.get(Study, study_id))
    assert not live.complete and live.modes == ("unaided",) and live.n_cases == 6
    assert set(live.table["mode"]) == {"model", "unaided"}
    assert "skipped" in live.mrmc
    page = res.get(f"/studies/{study_id}").text
    assert "interim" in page and "Table 3" in page and "needs both modes" in page
    # 6 vertebrae: every per-class single-point AUC is a small sample, and says so (issue 19)
    class_rows = live.table[live.table["class"] != "overall"]
    assert page.count("†") >= len(class_rows) > 0


def test_five_point_ratings_on_the_reading_page_with_the_crop(app):
    _, study_id, _ = make_study(app, n_cases=2, readers=(("rad", "expert"),), ratings="five_point")
    rad = login(app, "rad")
    state = current(rad, study_id)
    assert state["ratings"] == "five_point"
    study_case = state["case"]["study_case_id"]
    page = rad.get(f"/reading/{study_id}").text
    assert (
        page.count('type="radio" name="conf_0_acute"') == 5 and 'type="range" id="conf_' not in page
    )
    crop = rad.get(f"/reading/{study_id}/cases/{study_case}/crops/1")  # L2: 110 x 70 + 10 %
    assert crop.status_code == 200
    assert Image.open(io.BytesIO(crop.content)).size == (132, 84)
    assert rad.get(f"/reading/{study_id}/cases/{study_case}/crops/2").status_code == 404
    form = {"csrf_token": rad.csrf, "study_case": study_case, "seconds": "4"}
    form |= {"label_0": "acute", "label_1": "chronic"}
    form |= {f"conf_{b}_{c}": "3" for b in (0, 1) for c in CLASS_NAMES}
    form["conf_1_chronic"] = "6"
    response = rad.post(f"/reading/{study_id}/reads", data=form)
    assert response.status_code == 422 and "rating from 1 to 5" in response.text
    form["conf_1_chronic"] = "5"
    assert rad.post(f"/reading/{study_id}/reads", data=form).status_code == 303
    with app.state.vcfnet.session_factory() as db:
        reads = db.query(StudyRead).order_by(StudyRead.box).all()
    assert reads[1].confidences == {"acute": 3, "chronic": 5, "pathologic": 3}


def test_sliders_are_range_inputs_summing_to_100(app):
    _, study_id, _ = make_study(app, n_cases=1, readers=(("rad", "expert"),), ratings="sliders")
    page = login(app, "rad").get(f"/reading/{study_id}").text
    values = re.findall(
        r'type="range" id="conf_0_\w+" name="conf_0_\w+" min="0" max="100" '
        r'step="1" value="(\d+)"',
        page,
    )
    assert sorted(map(int, values)) == [33, 33, 34] and "<output" in page
