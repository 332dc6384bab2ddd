"""Run the model on a case's boxes and keep the result (probabilities, class, model, heatmap)."""

from __future__ import annotations

import io
import logging
import uuid

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from vcfnet.serve import crud, reads
from vcfnet.serve.crud import Actor, ConflictError, audit
from vcfnet.serve.ingest import png_bytes
from vcfnet.serve.ml import ModelService
from vcfnet.serve.models import Analysis, Case, Finding
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)


def case_pixels(storage: LocalStorage, case: Case) -> np.ndarray:
    """The stored display pixels uint8 (H, W) of a case."""
    with Image.open(io.BytesIO(storage.read_bytes(case.image_key))) as img:
        return np.asarray(img.convert("L"))


def analyse_case(
    db: Session, storage: LocalStorage, models: ModelService, actor: Actor, case: Case
) -> Analysis:
    """Classify every box of ``case``; the heatmap PNG is written before the row commits.

    Blocking (model inference): call it from a worker thread, never on the event loop.
    """
    if not case.boxes:
        raise ConflictError("mark at least one vertebra with a box before analysing")
    boxes = [b.coords for b in case.boxes]
    levels = [b.level for b in case.boxes]
    result = models.analyse(case_pixels(storage, case), boxes, levels)
    heatmap_key = None
    if result.heatmap_rgb is not None:
        heatmap_key = f"heatmaps/{uuid.uuid4().hex}.png"
        storage.write_bytes(heatmap_key, png_bytes(result.heatmap_rgb))
    try:
        analysis = Analysis(
            case=case,
            created_by_id=actor.user.id,
            model_name=result.model["name"],
            model_version=result.model["version"],
            model_hash=result.model["hash"],
            model_runtime=result.model["runtime"],
            heatmap_key=heatmap_key,
            findings=[
                Finding(
                    level=b.level,
                    x1=b.box[0],
                    y1=b.box[1],
                    x2=b.box[2],
                    y2=b.box[3],
                    probabilities=b.probabilities,
                    predicted=b.predicted,
                )
                for b in result.boxes
            ],
        )
        db.add(analysis)
        db.flush()
        audit(db, actor, "case.analyse", case_id=case.id, detail=f"analysis {analysis.id}")
        db.commit()
    except BaseException:
        db.rollback()
        if heatmap_key:
            storage.delete(heatmap_key)
        raise
    return analysis


def analysis_dict(analysis: Analysis) -> dict:
    """JSON view of an analysis (what the case page and the API show)."""
    return {
        "id": analysis.id,
        "created_at": analysis.created_at.isoformat() + "Z",
        "model": {
            "name": analysis.model_name,
            "version": analysis.model_version,
            "hash": analysis.model_hash,
            "runtime": analysis.model_runtime,
        },
        "heatmap": bool(analysis.heatmap_key),
        "heatmap_url": (
            f"/api/v1/cases/{analysis.case_id}/analyses/{analysis.id}/heatmap"
            if analysis.heatmap_key
            else None
        ),
        "findings": [
            {
                "level": f.level,
                "box": [f.x1, f.y1, f.x2, f.y2],
                "probabilities": f.probabilities,
                "predicted": f.predicted,
            }
            for f in analysis.findings
        ],
    }


def heatmap_png(db: Session, actor: Actor, storage, case_id: int, analysis_id: int) -> bytes:
    """The heatmap PNG of analysis ``analysis_id`` of ``case_id``: NotFoundError unless the actor
    may open the case and the analysis has one; ConflictError while the AI result is hidden from
    them (a radiologist before revealing it)."""
    case = crud.get_case(db, actor, case_id, action="analysis.heatmap")
    analysis = db.get(Analysis, analysis_id)
    if analysis is None or analysis.case_id != case.id or not analysis.heatmap_key:
        raise crud.NotFoundError(f"heatmap of analysis {analysis_id} not found")
    reads.require_ai_visible(db, actor, case)
    return storage.read_bytes(analysis.heatmap_key)
