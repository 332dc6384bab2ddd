"""Suggest boxes: the vertebra localiser's boxes, levels and Genant grades for a case, and the
audit of what the user did with them (kept unchanged, moved or resized, deleted, added).

The suggestion is recorded in the audit log (``boxes.suggest``, compact: level, box, grade per
body); after the user saves the boxes, ``review_suggestion`` compares the saved boxes with the
last suggestion and records the outcome (``boxes.suggest.review``). No patient data in either.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from vcfnet.serve.analysis import case_pixels
from vcfnet.serve.crud import Actor, audit
from vcfnet.serve.models import AuditLog, Case
from vcfnet.serve.storage import LocalStorage

log = logging.getLogger(__name__)

SUGGEST_ACTION = "boxes.suggest"
REVIEW_ACTION = "boxes.suggest.review"
#: a saved box within this many pixels of the suggested one (every edge) counts as unchanged
UNCHANGED_PX = 1.0


class LocaliserUnavailableError(RuntimeError):
    """No localiser is configured: start the server with --localiser LOC."""


class LocaliserService:
    """One localiser per process, loaded on first use (thread-safe)."""

    def __init__(self, path: Path | str | None):
        self.path = Path(path) if path else None
        self._localiser = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.path is not None

    def get(self):
        if self.path is None:
            raise LocaliserUnavailableError("no localiser: start vcfnet serve with --localiser LOC")
        with self._lock:
            if self._localiser is None:
                from vcfnet.localiser.model import Localiser

                self._localiser = Localiser(self.path)
                log.info("loaded localiser %s (Suggest boxes)", self.path)
        return self._localiser


_SERVICES: dict[str, LocaliserService] = {}


def localiser_service(path: Path | str | None) -> LocaliserService:
    """The process's service for ``path`` (one per configured path)."""
    key = str(path or "")
    if key not in _SERVICES:
        _SERVICES[key] = LocaliserService(path)
    return _SERVICES[key]


def _encode(boxes: list[dict]) -> str:
    """'L1 10,20,60,70 g2;…' (integers; fits the audit log's 255 characters for 8 bodies)."""
    parts = []
    for b in boxes:
        coords = ",".join(str(round(b[k])) for k in ("x1", "y1", "x2", "y2"))
        grade = "-" if b.get("grade") is None else str(b["grade"])
        parts.append(f"{b['level']} {coords} g{grade}")
    return ";".join(parts)


def _decode(detail: str) -> list[dict]:
    out = []
    for part in filter(None, detail.split(";")):
        level, coords, _grade = part.split(" ")
        x1, y1, x2, y2 = (float(v) for v in coords.split(","))
        out.append({"level": level, "x1": x1, "y1": y1, "x2": x2, "y2": y2})
    return out


def suggest_boxes(
    db: Session, storage: LocalStorage, service: LocaliserService, actor: Actor, case: Case
) -> list[dict]:
    """The localiser's bodies on the case's image: level, box, Genant grade, confidence."""
    from vcfnet.localiser.results import body_records

    localiser = service.get()
    bodies = localiser.predict_pixels(case_pixels(storage, case))
    out = []
    for rec in body_records(bodies, localiser.levels, None):
        x1, y1, x2, y2 = rec["box"]
        x2, y2 = min(x2, float(case.width)), min(y2, float(case.height))
        if not (0 <= x1 < x2 and 0 <= y1 < y2):
            continue
        grade = (rec.get("morphometry") or {}).get("grade")
        out.append(
            {
                "level": rec["level"],
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "grade": grade,
                "confidence": rec["confidence"],
            }
        )
    audit(db, actor, SUGGEST_ACTION, case_id=case.id, detail=_encode(out))
    return out


def review_suggestion(db: Session, actor: Actor, case: Case) -> dict | None:
    """Compare the case's saved boxes with its last suggestion; audit and return the counts
    (unchanged, changed, deleted, added); None when nothing was suggested for the case."""
    entry = db.scalars(
        select(AuditLog)
        .where(AuditLog.case_id == case.id, AuditLog.action == SUGGEST_ACTION)
        .order_by(AuditLog.id.desc())
        .limit(1)
    ).first()
    if entry is None:
        return None
    suggested = {b["level"]: b for b in _decode(entry.detail)}
    counts = {"unchanged": [], "changed": [], "deleted": [], "added": []}
    saved_levels = set()
    for box in case.boxes:
        saved_levels.add(box.level)
        s = suggested.get(box.level)
        if s is None:
            counts["added"].append(box.level)
            continue
        same = all(abs(getattr(box, k) - s[k]) <= UNCHANGED_PX for k in ("x1", "y1", "x2", "y2"))
        counts["unchanged" if same else "changed"].append(box.level)
    counts["deleted"] = [lv for lv in suggested if lv not in saved_levels]
    detail = "; ".join(f"{k} {','.join(v) or '-'}" for k, v in counts.items())
    audit(db, actor, REVIEW_ACTION, case_id=case.id, detail=detail)
    return counts
