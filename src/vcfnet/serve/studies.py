"""Reader studies on the platform (issue 14): design (researcher) and blind reading
(radiologist); ``study_results`` analyses the reads with the same library as ``vcfnet readers``.

A study's cases are radiographs already in the platform; each box of a study case is one study
"case" of the analysis (a vertebra, as the paper's 168), named ``<case id>-<level>``. The truth of
each box is set by the researcher and never leaves the researcher's pages. At launch the protocol
(cases, boxes, truth, the model output that aided reads show, readers, levels, design, washout,
seed) is frozen into ``Study.protocol``; nothing of the design can change afterwards.

Sessions: reader at protocol position ``p`` reads every case once per session, in the order
``numpy.random.default_rng([seed, p, session]).permutation(n_cases)``. Sequential design: session
1 unaided, session 2 aided. Crossover: the first ``n // 2`` cases of
``default_rng([seed, p, 0]).permutation(n)`` are aided in session 1 and unaided in session 2, the
others the reverse. Session 2 opens ``washout_days`` after the reader's last session-1 read.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vcfnet.labels import CLASS_NAMES
from vcfnet.serve.analysis import analyse_case, analysis_dict
from vcfnet.serve.crud import (
    Actor,
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    audit,
)
from vcfnet.serve.ml import ModelService
from vcfnet.serve.models import (
    STUDY_DESIGNS,
    Analysis,
    Case,
    Study,
    StudyCase,
    StudyRead,
    StudyReader,
    User,
    utcnow,
)
from vcfnet.serve.storage import LocalStorage
from vcfnet.serve.study_ratings import check_ratings, check_scale

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
MAX_WASHOUT_DAYS = 365
MAX_SECONDS = 24 * 3600.0
#: suggested experience levels (free text is allowed too)
LEVEL_SUGGESTIONS: tuple[str, ...] = ("trainee", "competent", "expert")


# ------------------------------------------------------------------------------------ researcher


def list_studies(db: Session, actor: Actor) -> Sequence[Study]:
    """The researcher's own studies, newest first."""
    audit(db, actor, "study.list")
    return db.scalars(
        select(Study).where(Study.owner_id == actor.user.id).order_by(Study.id.desc())
    ).all()


def create_study(db: Session, actor: Actor, name: str) -> Study:
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInputError("give the study a name of 1-128 characters")
    study = Study(owner_id=actor.user.id, name=name)
    db.add(study)
    db.flush()
    audit(db, actor, "study.create", detail=f"study {study.id}")
    return study


def get_study(db: Session, actor: Actor, study_id: int, action: str = "study.view") -> Study:
    """A study of the researcher ``actor`` (others' studies are not found)."""
    study = db.get(Study, study_id)
    if study is None or study.owner_id != actor.user.id:
        raise NotFoundError(f"study {study_id} not found")
    audit(db, actor, action, detail=f"study {study.id}")
    return study


def require_draft(study: Study) -> None:
    if study.status != "draft":
        raise ConflictError(
            f"study {study.id} was launched on {study.launched_at:%Y-%m-%d}: its protocol is "
            "frozen (create a new study to change the design)"
        )


def update_settings(
    db: Session,
    actor: Actor,
    study: Study,
    *,
    name: str,
    design: str,
    washout_days: int,
    seed: int,
    ratings: str,
) -> None:
    require_draft(study)
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInputError("give the study a name of 1-128 characters")
    if design not in STUDY_DESIGNS:
        raise InvalidInputError(f"design {design!r} is not one of {', '.join(STUDY_DESIGNS)}")
    if not 0 <= washout_days <= MAX_WASHOUT_DAYS:
        raise InvalidInputError(f"the washout must be 0-{MAX_WASHOUT_DAYS} days")
    if not 0 <= seed < 2**31:
        raise InvalidInputError("the seed must be an integer from 0 to 2147483647")
    study.name, study.design, study.washout_days = name, design, washout_days
    study.ratings = check_scale(ratings)
    study.seed, study.confidence = seed, ratings == "sliders"
    audit(db, actor, "study.settings", detail=f"study {study.id}")


def candidate_cases(db: Session, study: Study) -> Sequence[Case]:
    """Cases of the platform with boxes that are not in the study yet (de-identified)."""
    taken = select(StudyCase.case_id).where(StudyCase.study_id == study.id)
    return db.scalars(
        select(Case).where(Case.boxes.any(), Case.id.not_in(taken)).order_by(Case.id.desc())
    ).all()


def add_case(
    db: Session, actor: Actor, study: Study, case_id: int, truths: Mapping[int, str]
) -> StudyCase:
    """Add a case with the true class of its boxes (``truths``: box index -> class); boxes left
    blank are not part of the study. The boxes are copied (the case's may change later)."""
    require_draft(study)
    case = db.get(Case, case_id)
    if case is None or not case.boxes:
        raise NotFoundError(f"case {case_id} not found, or it has no boxes")
    if any(sc.case_id == case.id for sc in study.cases):
        raise ConflictError(f"case {case_id} is already in the study")
    boxes = []
    for i, box in enumerate(case.boxes):
        truth = (truths.get(i) or "").strip().lower()
        if not truth:
            continue
        if truth not in CLASS_NAMES:
            raise InvalidInputError(
                f"box {i + 1} ({box.level}): class {truth!r} is not one of {', '.join(CLASS_NAMES)}"
            )
        boxes.append(
            {
                "level": box.level,
                "x1": box.x1,
                "y1": box.y1,
                "x2": box.x2,
                "y2": box.y2,
                "truth": truth,
            }
        )
    if not boxes:
        raise InvalidInputError("give the true class of at least one box of the case")
    levels = [b["level"] for b in boxes]
    if len(set(levels)) != len(levels):
        raise InvalidInputError("each level may appear once per case in a study")
    study_case = StudyCase(study=study, case_id=case.id, boxes=boxes)
    db.add(study_case)
    db.flush()
    audit(db, actor, "study.case.add", case_id=case.id, detail=f"study {study.id}")
    return study_case


def remove_case(db: Session, actor: Actor, study: Study, case_id: int) -> None:
    require_draft(study)
    study_case = next((sc for sc in study.cases if sc.case_id == case_id), None)
    if study_case is None:
        raise NotFoundError(f"case {case_id} is not in study {study.id}")
    study.cases.remove(study_case)
    db.flush()
    audit(db, actor, "study.case.remove", case_id=case_id, detail=f"study {study.id}")


def add_reader(db: Session, actor: Actor, study: Study, username: str, level: str) -> StudyReader:
    require_draft(study)
    user = db.scalar(select(User).where(User.username == username.strip()))
    if user is None or user.role != "radiologist" or not user.is_active:
        raise InvalidInputError(f"no active radiologist {username!r}")
    if any(r.user_id == user.id for r in study.readers):
        raise ConflictError(f"{user.username} already reads in this study")
    level = level.strip()
    if not level or len(level) > 32:
        raise InvalidInputError("give the reader's experience level (e.g. trainee, expert)")
    reader = StudyReader(study=study, user_id=user.id, level=level)
    db.add(reader)
    db.flush()
    audit(db, actor, "study.reader.add", detail=f"study {study.id}: {user.username}")
    return reader


def radiologist_choices(db: Session, study: Study) -> Sequence[User]:
    """Active radiologists not reading in the study yet."""
    taken = {r.user_id for r in study.readers}
    users = db.scalars(
        select(User).where(User.role == "radiologist", User.is_active).order_by(User.username)
    ).all()
    return [u for u in users if u.id not in taken]


def remove_reader(db: Session, actor: Actor, study: Study, user_id: int) -> None:
    require_draft(study)
    reader = next((r for r in study.readers if r.user_id == user_id), None)
    if reader is None:
        raise NotFoundError(f"user {user_id} does not read in study {study.id}")
    study.readers.remove(reader)
    db.flush()
    audit(db, actor, "study.reader.remove", detail=f"study {study.id}: user {user_id}")


def _same_boxes(analysis: Analysis, boxes: Sequence[Mapping[str, Any]]) -> dict | None:
    """The analysis's output per study box (in study-box order), or None if a box is missing."""
    by_box = {(f.level, f.x1, f.y1, f.x2, f.y2): f for f in analysis.findings}
    out = []
    for b in boxes:
        finding = by_box.get((b["level"], b["x1"], b["y1"], b["x2"], b["y2"]))
        if finding is None:
            return None
        out.append(
            {
                "level": b["level"],
                "probabilities": finding.probabilities,
                "predicted": finding.predicted,
            }
        )
    return {"findings": out}


def _study_analysis(
    db: Session, storage: LocalStorage, models: ModelService, actor: Actor, sc: StudyCase
) -> tuple[Analysis, dict]:
    """The newest analysis of the case covering the study's boxes; the model is run on the case
    when none does and the case's boxes are still those of the study."""
    for analysis in reversed(sc.case.analyses):
        ai = _same_boxes(analysis, sc.boxes)
        if ai is not None:
            return analysis, ai
    current = [(b.level, b.x1, b.y1, b.x2, b.y2) for b in sc.case.boxes]
    if not models.available or any(
        (b["level"], b["x1"], b["y1"], b["x2"], b["y2"]) not in current for b in sc.boxes
    ):
        raise ConflictError(
            f"case {sc.case_id} has no AI result for the study's boxes (aided reads show it): "
            "analyse the case, or remove it and add it again"
        )
    analysis = analyse_case(db, storage, models, actor, sc.case)
    return analysis, _same_boxes(analysis, sc.boxes)


def launch(
    db: Session, storage: LocalStorage, models: ModelService, actor: Actor, study: Study
) -> None:
    """Freeze the protocol and open session 1 to the readers."""
    require_draft(study)
    if not study.cases or not study.readers:
        raise ConflictError("a study needs at least one case and one reader before its launch")
    cases = []
    for sc in study.cases:
        analysis, ai = _study_analysis(db, storage, models, actor, sc)
        sc.analysis_id = analysis.id
        cases.append(
            {
                "study_case_id": sc.id,
                "case_id": sc.case_id,
                "boxes": sc.boxes,
                "analysis_id": analysis.id,
                "model": analysis_dict(analysis)["model"],
                "ai": ai["findings"],
            }
        )
    now = utcnow()
    study.protocol = {
        "version": PROTOCOL_VERSION,
        "name": study.name,
        "design": study.design,
        "washout_days": study.washout_days,
        "seed": study.seed,
        "confidence": study.ratings,  # none | sliders | five_point
        "order": "numpy.random.default_rng([seed, reader position, session]).permutation(n)",
        "readers": [
            {"position": i, "username": r.user.username, "user_id": r.user_id, "level": r.level}
            for i, r in enumerate(study.readers)
        ],
        "cases": cases,
        "launched_at": now.isoformat() + "Z",
        "launched_by": actor.user.username,
    }
    study.status, study.launched_at = "launched", now
    audit(db, actor, "study.launch", detail=f"study {study.id}")


def close(db: Session, actor: Actor, study: Study) -> None:
    if study.status != "launched":
        raise ConflictError(f"study {study.id} is {study.status}; only a launched study closes")
    study.status, study.closed_at = "closed", utcnow()
    audit(db, actor, "study.close", detail=f"study {study.id}")


# -------------------------------------------------------------------------------------- schedule


def case_order(seed: int, position: int, session: int, n: int) -> list[int]:
    """Indices into the protocol's cases: reader ``position``'s order in ``session``."""
    return np.random.default_rng([seed, position, session]).permutation(n).tolist()


def aided_first(seed: int, position: int, n: int) -> set[int]:
    """Crossover: the case indices reader ``position`` reads aided in session 1."""
    return set(np.random.default_rng([seed, position, 0]).permutation(n)[: n // 2].tolist())


def session_mode(protocol: Mapping[str, Any], position: int, session: int, index: int) -> str:
    if protocol["design"] == "sequential":
        return "unaided" if session == 1 else "aided"
    first = index in aided_first(protocol["seed"], position, len(protocol["cases"]))
    return "aided" if first == (session == 1) else "unaided"


@dataclass
class ReaderState:
    """Where a reader stands: the session, the case to read now (and in which mode)."""

    status: str  # reading | washout | done | closed
    session: int | None
    done: dict[int, int] = field(default_factory=dict)  # session -> cases read
    n_cases: int = 0
    index: int | None = None  # into protocol["cases"]
    mode: str | None = None
    opens_at: dt.datetime | None = None  # washout: when session 2 opens


def reader_position(study: Study, reader: StudyReader) -> int:
    for entry in study.protocol["readers"]:
        if entry["user_id"] == reader.user_id:
            return entry["position"]
    raise NotFoundError(f"reader {reader.user_id} is not in the protocol of study {study.id}")


def reader_state(
    db: Session, study: Study, reader: StudyReader, now: dt.datetime | None = None
) -> ReaderState:
    protocol = study.protocol
    n = len(protocol["cases"])
    position = reader_position(study, reader)
    index_of = {c["study_case_id"]: i for i, c in enumerate(protocol["cases"])}
    read_at: dict[int, dict[int, dt.datetime]] = {1: {}, 2: {}}
    for r in db.scalars(select(StudyRead).where(StudyRead.reader_id == reader.id)):
        at = read_at[r.session]
        i = index_of[r.study_case_id]
        at[i] = max(at.get(i, r.created_at), r.created_at)
    done = {s: len(v) for s, v in read_at.items()}
    state = ReaderState("reading", None, done, n)
    if done[1] == n and done[2] == n:
        state.status = "done"
        return state
    if study.status != "launched":
        state.status = "closed"
        return state
    session = 1 if done[1] < n else 2
    if session == 2:
        opens = max(read_at[1].values()) + dt.timedelta(days=protocol["washout_days"])
        if (now or utcnow()) < opens:
            state.status, state.opens_at = "washout", opens
            return state
    state.session = session
    state.index = next(
        i for i in case_order(protocol["seed"], position, session, n) if i not in read_at[session]
    )
    state.mode = session_mode(protocol, position, session, state.index)
    return state


# --------------------------------------------------------------------------------------- reading


def reader_studies(db: Session, actor: Actor) -> list[tuple[Study, StudyReader]]:
    """The launched or closed studies in which the radiologist ``actor`` reads."""
    audit(db, actor, "study.reading.list")
    rows = db.execute(
        select(Study, StudyReader)
        .join(StudyReader, StudyReader.study_id == Study.id)
        .where(StudyReader.user_id == actor.user.id, Study.status != "draft")
        .order_by(Study.id.desc())
    ).all()
    return [(s, r) for s, r in rows]


def get_reading(
    db: Session, actor: Actor, study_id: int, action: str = "study.reading.view"
) -> tuple[Study, StudyReader]:
    """A launched (or closed) study in which ``actor`` reads; others are not found."""
    row = db.execute(
        select(Study, StudyReader)
        .join(StudyReader, StudyReader.study_id == Study.id)
        .where(Study.id == study_id, StudyReader.user_id == actor.user.id, Study.status != "draft")
    ).first()
    if row is None:
        raise NotFoundError(f"study {study_id} not found")
    audit(db, actor, action, detail=f"study {study_id}")
    return row[0], row[1]


def study_case_for_reader(study: Study, study_case_id: int) -> tuple[int, dict]:
    """(index, protocol entry) of a study case; NotFoundError if it is not in the study."""
    for i, entry in enumerate(study.protocol["cases"]):
        if entry["study_case_id"] == study_case_id:
            return i, entry
    raise NotFoundError(f"case {study_case_id} is not in study {study.id}")


def blind_boxes(entry: Mapping[str, Any]) -> list[dict]:
    """The boxes of a protocol case as a reader sees them: level and coordinates, no truth."""
    return [{k: b[k] for k in ("level", "x1", "y1", "x2", "y2")} for b in entry["boxes"]]


def require_ai(db: Session, study: Study, reader: StudyReader, study_case_id: int) -> dict:
    """The model's output on a study case, only while it is the reader's current case in an aided
    session (ForbiddenError otherwise: unaided reads never get it)."""
    index, entry = study_case_for_reader(study, study_case_id)
    state = reader_state(db, study, reader)
    if state.status != "reading" or state.index != index or state.mode != "aided":
        raise ForbiddenError("the AI result is shown only with the case of an aided read")
    return entry


def submit_read(
    db: Session,
    actor: Actor,
    study: Study,
    reader: StudyReader,
    study_case_id: int,
    labels: Mapping[int, str],
    confidences: Mapping[int, Mapping[str, float]] | None,
    seconds: float,
) -> list[StudyRead]:
    """Record the reader's class for every box of their current case (never changed after)."""
    index, entry = study_case_for_reader(study, study_case_id)
    state = reader_state(db, study, reader)
    if state.status == "washout":
        raise ConflictError(
            f"the washout runs until {state.opens_at:%Y-%m-%d %H:%M} UTC; session 2 opens then"
        )
    if state.status != "reading":
        raise ConflictError(f"nothing left to read in this study ({state.status})")
    if state.index != index:
        raise ConflictError("this is not your current case; reload the reading page")
    n_boxes = len(entry["boxes"])
    rows = []
    for box in range(n_boxes):
        label = (labels.get(box) or "").strip().lower()
        if label not in CLASS_NAMES:
            raise InvalidInputError(
                f"box {box + 1}: choose one of {', '.join(CLASS_NAMES)} (keys 1, 2, 3)"
            )
        conf = check_ratings(study.protocol["confidence"], box, (confidences or {}).get(box))
        rows.append(
            StudyRead(
                reader_id=reader.id,
                study_case_id=study_case_id,
                mode=state.mode,
                session=state.session,
                box=box,
                label=label,
                confidences=conf,
                seconds=float(min(max(seconds, 0.0), MAX_SECONDS)),
            )
        )
    db.add_all(rows)
    try:
        db.flush()
    except IntegrityError as exc:  # the same read submitted twice at once
        raise ConflictError("this case was already read; reload the reading page") from exc
    audit(
        db,
        actor,
        "study.read",
        case_id=entry["case_id"],
        detail=f"study {study.id} session {state.session} {state.mode}",
    )
    return rows
