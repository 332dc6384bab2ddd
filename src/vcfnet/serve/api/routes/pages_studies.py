"""Reader studies: the researcher's design and results pages, the radiologist's reading pages.

Readers never get the truth (it is only on researcher pages and downloads) and get the model's
output only for the current case of an aided session (``studies.require_ai``).
"""

from __future__ import annotations

import io
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from vcfnet.labels import CLASS_NAMES
from vcfnet.preprocess import CropSpec
from vcfnet.reader_study.analysis import table3_auc_cells
from vcfnet.serve import studies, study_cases, study_results
from vcfnet.serve.analysis import analysis_dict
from vcfnet.serve.api.deps import Auth, DbSession, app_state, page_user
from vcfnet.serve.api.routes import render, see_other
from vcfnet.serve.crud import NotFoundError
from vcfnet.serve.models import STUDY_DESIGNS, Study, StudyCase
from vcfnet.serve.study_ratings import FIVE_POINT, RATING_LABELS

router = APIRouter(include_in_schema=False)
researcher = page_user("researcher")
radiologist = page_user("radiologist")


# ------------------------------------------------------------------------------------ researcher


@router.get("/studies")
def study_list(*, request: Request, auth: Annotated[Auth, Depends(researcher)], db: DbSession):
    return render(request, "studies.html", auth, studies=studies.list_studies(db, auth.actor))


@router.post("/studies")
def study_create(
    *,
    name: Annotated[str, Form(max_length=128)] = "",
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.create_study(db, auth.actor, name)
    return see_other(f"/studies/{study.id}")


def _fmt(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "—" if v != v else f"{v:.3f}"


@router.get("/studies/{study_id}")
def study_page(
    *,
    request: Request,
    study_id: int,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id)
    draft = study.status == "draft"
    results = None if draft else study_results.analyse(db, study)
    table = comparisons = None
    if results is not None and results.comparisons is not None:
        comparisons = [
            {
                **{c: row[c] for c in ("reader", "comparison", "class", "test")},
                **{c: _fmt(row[c]) for c in ("estimate_a", "estimate_b", "difference", "p")},
            }
            for row in results.comparisons.to_dict("records")
        ]
    if results is not None and results.table is not None:
        columns = ("reader", "reader_level", "mode", "class", "n")
        metrics = ("sensitivity", "specificity", "accuracy")
        rows = results.table.to_dict("records")
        table = [
            {**{c: row[c] for c in columns}, **{m: _fmt(row[m]) for m in metrics}, "auc": auc}
            for row, auc in zip(rows, table3_auc_cells(results.table), strict=True)
        ]
    return render(
        request,
        "study.html",
        auth,
        study=study,
        draft=draft,
        designs=STUDY_DESIGNS,
        rating_labels=RATING_LABELS,
        import_dirs=[str(d) for d in app_state(request).settings.study_import_dirs],
        classes=CLASS_NAMES,
        level_suggestions=studies.LEVEL_SUGGESTIONS,
        candidates=studies.candidate_cases(db, study) if draft else [],
        radiologists=studies.radiologist_choices(db, study) if draft else [],
        progress=study_results.progress(db, study),
        results=results,
        table=table,
        comparisons=comparisons,
        fmt=_fmt,
    )


@router.post("/studies/{study_id}/settings")
def study_settings(
    *,
    study_id: int,
    name: Annotated[str, Form(max_length=128)] = "",
    design: Annotated[str, Form(max_length=16)] = "sequential",
    washout_days: Annotated[int, Form()] = 28,
    seed: Annotated[int, Form()] = 0,
    ratings: Annotated[str, Form(max_length=16)] = "none",
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.update_settings(
        db,
        auth.actor,
        study,
        name=name,
        design=design,
        washout_days=washout_days,
        seed=seed,
        ratings=ratings,
    )
    return see_other(f"/studies/{study.id}")


async def box_truths(request: Request) -> dict[int, str]:
    """``truth_<box index>`` form fields -> {index: class}."""
    form = await request.form()
    out = {}
    for key, value in form.items():
        if key.startswith("truth_") and key[6:].isdigit():
            out[int(key[6:])] = str(value)
    return out


@router.post("/studies/{study_id}/cases")
def study_add_case(
    *,
    study_id: int,
    case_id: Annotated[int, Form()],
    truths: Annotated[dict, Depends(box_truths)],
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.add_case(db, auth.actor, study, case_id, truths)
    return see_other(f"/studies/{study.id}#cases")


@router.post("/studies/{study_id}/cases/{case_id}/delete")
def study_remove_case(
    *,
    study_id: int,
    case_id: int,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.remove_case(db, auth.actor, study, case_id)
    return see_other(f"/studies/{study.id}#cases")


@router.post("/studies/{study_id}/readers")
def study_add_reader(
    *,
    study_id: int,
    username: Annotated[str, Form(max_length=64)] = "",
    level: Annotated[str, Form(max_length=32)] = "",
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.add_reader(db, auth.actor, study, username, level)
    return see_other(f"/studies/{study.id}#readers")


@router.post("/studies/{study_id}/readers/{user_id}/delete")
def study_remove_reader(
    *,
    study_id: int,
    user_id: int,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.remove_reader(db, auth.actor, study, user_id)
    return see_other(f"/studies/{study.id}#readers")


@router.post("/studies/{study_id}/launch")
def study_launch(
    *,
    request: Request,
    study_id: int,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    """May run the model on cases without a result: a sync route (worker thread)."""
    state = app_state(request)
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.launch(db, state.storage, state.models, auth.actor, study)
    return see_other(f"/studies/{study.id}")


@router.post("/studies/{study_id}/close")
def study_close(
    *,
    study_id: int,
    auth: Annotated[Auth, Depends(researcher)],
    db: DbSession,
):
    study = studies.get_study(db, auth.actor, study_id, action="study.edit")
    studies.close(db, auth.actor, study)
    return see_other(f"/studies/{study.id}")


def _launched(study: Study) -> Study:
    if study.protocol is None:
        raise NotFoundError(f"study {study.id} has not been launched: no protocol or reads yet")
    return study


def _download(data: bytes, media_type: str, name: str) -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _csv(df) -> bytes:
    buffer = io.StringIO()
    df.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@router.get("/studies/{study_id}/reads.csv")
def study_reads_csv(*, study_id: int, auth: Annotated[Auth, Depends(researcher)], db: DbSession):
    """The reads in the layout of ``vcfnet readers --reads``."""
    study = _launched(studies.get_study(db, auth.actor, study_id, action="study.export"))
    data = _csv(study_results.reads_frame(db, study))
    return _download(data, "text/csv", f"study{study.id}_reads.csv")


@router.get("/studies/{study_id}/truth.csv")
def study_truth_csv(*, study_id: int, auth: Annotated[Auth, Depends(researcher)], db: DbSession):
    """The truth (and the model's output) in the layout of ``vcfnet readers --truth``."""
    study = _launched(studies.get_study(db, auth.actor, study_id, action="study.export"))
    data = _csv(study_results.truth_frame(study))
    return _download(data, "text/csv", f"study{study.id}_truth.csv")


@router.get("/studies/{study_id}/export.zip")
def study_export(*, study_id: int, auth: Annotated[Auth, Depends(researcher)], db: DbSession):
    """Protocol, truth, reads and the results of ``vcfnet readers`` (with the report) in a zip."""
    study = _launched(studies.get_study(db, auth.actor, study_id, action="study.export"))
    return _download(study_results.export_zip(db, study), "application/zip", f"study{study.id}.zip")


@router.get("/studies/{study_id}/figure6.png")
def study_figure6(*, study_id: int, auth: Annotated[Auth, Depends(researcher)], db: DbSession):
    """Figure 6 of the reads so far (``vcfnet.reader_study.report.plot_figure6``)."""
    study = _launched(studies.get_study(db, auth.actor, study_id, action="study.results"))
    data = study_results.figure6_png(study_results.analyse(db, study))
    if data is None:
        raise NotFoundError("no figure yet: no case has been read by every reader")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/studies/{study_id}/protocol.json")
def study_protocol(*, study_id: int, auth: Annotated[Auth, Depends(researcher)], db: DbSession):
    """The protocol frozen at launch."""
    study = _launched(studies.get_study(db, auth.actor, study_id, action="study.export"))
    data = (json.dumps(study.protocol, indent=2) + "\n").encode()
    return _download(data, "application/json", f"study{study.id}_protocol.json")


# --------------------------------------------------------------------------------------- reading


@router.get("/reading")
def reading_list(*, request: Request, auth: Annotated[Auth, Depends(radiologist)], db: DbSession):
    rows = [
        (study, reader, studies.reader_state(db, study, reader))
        for study, reader in studies.reader_studies(db, auth.actor)
    ]
    return render(request, "reading_list.html", auth, rows=rows)


def reading_viewer(study: Study, study_case: StudyCase, entry: dict, aided: bool) -> dict:
    """The viewer's data for a reader: the image, the boxes without truth; the model's output
    only in aided mode."""
    base = f"/reading/{study.id}/cases/{study_case.id}"
    analysis = None
    if aided and study_case.analysis is not None:
        analysis = {**analysis_dict(study_case.analysis), "findings": entry["ai"]}
    return {
        "id": study_case.id,
        "width": study_case.case.width,
        "height": study_case.case.height,
        "image_url": f"{base}/image",
        "boxes": studies.blind_boxes(entry),
        "levels": [],
        "analysis": analysis,
        "heatmap_url": f"{base}/heatmap" if analysis and analysis["heatmap"] else None,
    }


@router.get("/reading/{study_id}")
def reading_page(
    *,
    request: Request,
    study_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    study, reader = studies.get_reading(db, auth.actor, study_id)
    state = studies.reader_state(db, study, reader)
    viewer = entry = None
    if state.status == "reading":
        entry = study.protocol["cases"][state.index]
        study_case = db.get(StudyCase, entry["study_case_id"])
        viewer = reading_viewer(study, study_case, entry, state.mode == "aided")
    return render(
        request,
        "reading.html",
        auth,
        study=study,
        reader=reader,
        state=state,
        entry=entry,
        viewer=viewer,
        editable=False,
        classes=CLASS_NAMES,
        crop_margin_pct=round(CropSpec().margin * 100),
        ratings=study.protocol["confidence"],
        five_point=FIVE_POINT,
    )


async def read_form(request: Request) -> dict:
    """``label_<box>``, ``conf_<box>_<class>`` (a slider or a 5-point rating), ``seconds`` and
    ``study_case`` form fields."""
    form = await request.form()
    labels, confidences = {}, {}
    for key, value in form.items():
        parts = key.split("_")
        if parts[0] == "label" and len(parts) == 2 and parts[1].isdigit():
            labels[int(parts[1])] = str(value)
        elif parts[0] == "conf" and len(parts) == 3 and parts[1].isdigit():
            try:
                confidences.setdefault(int(parts[1]), {})[parts[2]] = float(str(value))
            except ValueError:
                confidences.setdefault(int(parts[1]), {})[parts[2]] = -1.0
    try:
        seconds = float(str(form.get("seconds", "0")) or 0)
        study_case = int(str(form.get("study_case", "")))
    except ValueError:
        seconds, study_case = 0.0, -1
    return {
        "labels": labels,
        "confidences": confidences,
        "seconds": seconds,
        "study_case": study_case,
    }


@router.post("/reading/{study_id}/reads")
def reading_submit(
    *,
    study_id: int,
    form: Annotated[dict, Depends(read_form)],
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    study, reader = studies.get_reading(db, auth.actor, study_id, action="study.reading.read")
    studies.submit_read(
        db,
        auth.actor,
        study,
        reader,
        form["study_case"],
        form["labels"],
        form["confidences"],
        form["seconds"],
    )
    return see_other(f"/reading/{study.id}")


@router.get("/reading/{study_id}/cases/{study_case_id}/image")
def reading_image(
    *,
    request: Request,
    study_id: int,
    study_case_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    study, _ = studies.get_reading(db, auth.actor, study_id, action="study.reading.image")
    studies.study_case_for_reader(study, study_case_id)
    study_case = db.get(StudyCase, study_case_id)
    data = app_state(request).storage.read_bytes(study_case.case.image_key)
    return Response(data, media_type="image/png")


@router.get("/reading/{study_id}/cases/{study_case_id}/heatmap")
def reading_heatmap(
    *,
    request: Request,
    study_id: int,
    study_case_id: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    study, reader = studies.get_reading(db, auth.actor, study_id, action="study.reading.ai")
    studies.require_ai(db, study, reader, study_case_id)
    study_case = db.get(StudyCase, study_case_id)
    if study_case.analysis is None or not study_case.analysis.heatmap_key:
        raise NotFoundError("this case's AI result has no heatmap")
    data = app_state(request).storage.read_bytes(study_case.analysis.heatmap_key)
    return Response(data, media_type="image/png")


@router.get("/reading/{study_id}/cases/{study_case_id}/crops/{box}")
def reading_crop(
    *,
    request: Request,
    study_id: int,
    study_case_id: int,
    box: int,
    auth: Annotated[Auth, Depends(radiologist)],
    db: DbSession,
):
    """The crop of a study box as the model sees it (CropSpec margin), beside the whole film."""
    study, _ = studies.get_reading(db, auth.actor, study_id, action="study.reading.image")
    _, entry = studies.study_case_for_reader(study, study_case_id)
    if not 0 <= box < len(entry["boxes"]):
        raise NotFoundError(f"case {study_case_id} has no box {box + 1}")
    study_case = db.get(StudyCase, study_case_id)
    data = app_state(request).storage.read_bytes(study_case.case.image_key)
    return Response(study_cases.crop_png(data, entry["boxes"][box]), media_type="image/png")
