"""``vcfnet serve --demo [DEMO_OUT]``: the platform opened on a ``vcfnet demo`` output folder.

The demo's model (DEMO_OUT/run), a few radiographs of its external test sites uploaded as cases
with their annotated boxes, and one account per role with a random password printed once.
Everything is synthetic, so the demo's fixed pseudonym key is harmless.

Two reader studies of demo-researcher on those cases (truth from the annotations): a closed one
read by three SIMULATED readers (``vcfnet synth-readers``' profiles, unaided then aided), so its
results page shows Table 3 and the MRMC test at once; and a launched one that demo-radiologist
can read (washout 0).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from vcfnet.errors import ConfigError

log = logging.getLogger(__name__)

DEMO_CASES = 8
DEMO_HOSPITAL = "Demo County Hospital"
DEMO_READING_CENTER = "Demo Reading Center"
DEMO_STUDY = "Demo: Table 3 with simulated readers"
DEMO_READING_STUDY = "Demo: read these cases yourself"
DEMO_ACCOUNTS = (
    ("demo-clinician", "clinician", DEMO_HOSPITAL),
    ("demo-radiologist", "radiologist", DEMO_READING_CENTER),
    ("demo-researcher", "researcher", ""),
    ("demo-admin", "admin", ""),
)


def prepare_demo(settings, demo_out: Path, *, data_given: bool):
    """(settings with the demo's model and key, {account: new password}); the accounts and
    cases are loaded. The caller shows the passwords once."""
    from vcfnet.study.config import DEMO_ID_KEY

    run_dir = demo_out / "run"
    if not (run_dir / "checkpoints" / "best.pt").is_file():
        raise ConfigError(
            f"{demo_out} has no trained demo model; run 'vcfnet demo --quick --out {demo_out}' "
            "first, or pass its output folder to --demo"
        )
    settings = replace(settings, model_path=run_dir, id_key=DEMO_ID_KEY)
    localiser = demo_out / "localiser" / "run"
    if settings.localiser_path is None and (localiser / "checkpoints" / "best.pt").is_file():
        settings = replace(settings, localiser_path=localiser)
    if not data_given:
        settings = replace(settings, data_dir=demo_out / "serve-data")
    from vcfnet.serve.app import build_state

    state = build_state(settings)
    with state.session_factory() as db:
        passwords = reset_demo_accounts(db, settings)
        db.commit()
        loaded = load_demo_cases(db, state, demo_out)
        load_demo_studies(db, state, demo_out)
    log.info("demo: %d case(s) loaded from %s", loaded, demo_out)
    return settings, passwords


def reset_demo_accounts(db, settings) -> dict[str, str]:
    """Create the demo accounts, or give them new random passwords; {username: password}."""
    from vcfnet.serve import crud, security
    from vcfnet.serve.models import User

    actor = crud.Actor(None, "demo")
    passwords = {}
    for username, role, hospital in DEMO_ACCOUNTS:
        password = security.random_password()
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            crud.create_user(
                db,
                settings,
                username=username,
                password=password,
                role=role,
                hospital=hospital,
                actor=actor,
            )
        else:
            crud.set_password(db, settings, user, password, actor)
        passwords[username] = password
    return passwords


def demo_images(demo_out: Path, limit: int = DEMO_CASES) -> list[tuple[Path, Path]]:
    """(image, LabelImg XML) pairs of the cohort's external test sites, sorted, at most ``limit``."""
    cohort = demo_out / "cohort"
    info = json.loads((cohort / "cohort.json").read_text())
    pairs = []
    for name, site in sorted(info["sites"].items()):
        if site.get("split", "none") != "none":
            continue  # a development site: its images trained the model
        for xml in sorted((cohort / name / "annotations").glob("*.xml")):
            images = sorted((cohort / name / "images").glob(xml.stem + ".*"))
            if images:
                pairs.append((images[0], xml))
    return pairs[:limit]


def demo_truths(demo_out: Path) -> list[dict[str, str]]:
    """Per demo image (in upload order): {level: true class} of its fractured vertebrae."""
    from vcfnet.io.voc import read_voc
    from vcfnet.labels import parse_object_name
    from vcfnet.serve.models import BOX_LEVELS

    out = []
    for _, xml in demo_images(demo_out):
        truth = {}
        for obj in read_voc(xml).objects:
            parsed = parse_object_name(obj.name, allow_normal=True)
            if parsed.level in BOX_LEVELS and parsed.label != "normal":
                truth[parsed.level] = parsed.label
        out.append(truth)
    return out


def _simulated_readers(db, state, users: dict, researcher) -> list[tuple[Any, str]]:
    """(account, level) per simulated reader profile; the accounts (which cannot log in:
    is_active False) are made where missing and added to ``users``."""
    from vcfnet.serve import crud, security
    from vcfnet.synth.readers import READER_PROFILES

    readers = []
    for profile in READER_PROFILES:
        name = f"demo-sim-{profile.level}"
        if name not in users:
            users[name] = crud.create_user(
                db,
                state.settings,
                username=name,
                password=security.random_password(),
                role="radiologist",
                display_name=f"SIMULATED {profile.level}",
                actor=researcher,
            )
        readers.append((users[name], profile.level))
    return readers


def _launched_study(db, state, researcher, name: str, seed: int, cases, readers, *, sliders: bool):
    """A sequential study (washout 0) of ``cases`` [(case, {level: truth})] read by ``readers``
    [(account, level)], launched; the readers' accounts are activated for it."""
    from vcfnet.serve import studies

    study = studies.create_study(db, researcher, name)
    studies.update_settings(
        db,
        researcher,
        study,
        name=name,
        design="sequential",
        washout_days=0,
        seed=seed,
        ratings="sliders" if sliders else "none",
    )
    for case, truth in cases:
        by_index = {i: truth.get(b.level, "") for i, b in enumerate(case.boxes)}
        studies.add_case(db, researcher, study, case.id, by_index)
    for user, level in readers:
        user.is_active = True
        studies.add_reader(db, researcher, study, user.username, level)
    studies.launch(db, state.storage, state.models, researcher, study)
    return study


def _add_simulated_reads(db, study, seed: int) -> None:
    """The study's reads by its simulated readers (``synth.readers.simulate_reads``: unaided in
    session 1, aided in session 2) on each box, from its truth and the model's probabilities."""
    import numpy as np

    from vcfnet.labels import CLASS_NAMES
    from vcfnet.serve import study_results
    from vcfnet.serve.models import StudyRead
    from vcfnet.synth.readers import simulate_reads

    study.protocol = {**study.protocol, "simulated": True}
    truth_df = study_results.truth_frame(study)
    boxes = [
        (entry["study_case_id"], i)
        for entry in study.protocol["cases"]
        for i in range(len(entry["boxes"]))
    ]
    y = truth_df["label"].map({c: k for k, c in enumerate(CLASS_NAMES)}).to_numpy()
    probs = truth_df[[f"p_{c}" for c in CLASS_NAMES]].to_numpy(dtype=float)
    by_level = {r.level: r for r in study.readers}
    for read in simulate_reads(y, probs, np.random.default_rng(seed)):
        study_case_id, box = boxes[read["case"]]
        db.add(
            StudyRead(
                reader_id=by_level[read["reader_level"]].id,
                study_case_id=study_case_id,
                mode=read["mode"],
                session=1 if read["mode"] == "unaided" else 2,
                box=box,
                label=CLASS_NAMES[read["label"]],
                confidences={
                    c: float(p) * 100 for c, p in zip(CLASS_NAMES, read["p"], strict=True)
                },
            )
        )


def load_demo_studies(db, state, demo_out: Path, seed: int = 0) -> None:
    """The two demo studies (once): simulated reads on the first, demo-radiologist on the second."""
    from vcfnet.serve import crud, studies
    from vcfnet.serve.models import Case, Study, User

    if db.scalar(select(Study.id).where(Study.name == DEMO_STUDY)):
        return
    users = {u.username: u for u in db.scalars(select(User))}
    researcher = crud.Actor(users["demo-researcher"], "demo")
    clinician = users[DEMO_ACCOUNTS[0][0]]
    cases = db.scalars(select(Case).where(Case.created_by_id == clinician.id).order_by(Case.id))
    truths = demo_truths(demo_out)
    simulated = _simulated_readers(db, state, users, researcher)
    cases = [
        (case, truth)
        for case, truth in zip(cases, truths, strict=False)
        if any(truth.get(b.level) for b in case.boxes)
    ]
    if not cases:
        log.warning("demo: no annotated fracture among the demo cases; no reader study made")
        return
    study = _launched_study(db, state, researcher, DEMO_STUDY, seed, cases, simulated, sliders=True)
    _add_simulated_reads(db, study, seed)
    studies.close(db, researcher, study)
    for user, _ in simulated:
        user.is_active = False
    reading = [(users["demo-radiologist"], "competent")]
    _launched_study(db, state, researcher, DEMO_READING_STUDY, seed, cases, reading, sliders=False)
    db.commit()


def load_demo_cases(db, state, demo_out: Path) -> int:
    """Upload the demo images as the demo clinician's cases (once) with their boxes."""
    from vcfnet.io.voc import read_voc
    from vcfnet.labels import parse_object_name
    from vcfnet.serve import crud
    from vcfnet.serve.ingest import ingest_upload
    from vcfnet.serve.models import BOX_LEVELS, Case, User

    clinician = db.scalar(select(User).where(User.username == DEMO_ACCOUNTS[0][0]))
    if db.scalar(select(Case.id).where(Case.created_by_id == clinician.id).limit(1)):
        return 0
    actor = crud.Actor(clinician, "demo")
    loaded = 0
    for image, xml in demo_images(demo_out):
        with open(image, "rb") as stream:
            case = ingest_upload(
                db, state.storage, state.settings, state.id_key, actor, stream, image.name
            )
        boxes = []
        for obj in read_voc(xml).objects:
            parsed = parse_object_name(obj.name, allow_normal=True)
            if parsed.level in BOX_LEVELS and parsed.label != "normal":
                x1, y1, x2, y2 = obj.box
                x2, y2 = min(x2, case.width), min(y2, case.height)
                boxes.append(
                    {"level": parsed.level, "x1": max(0, x1), "y1": max(0, y1), "x2": x2, "y2": y2}
                )
        crud.replace_boxes(db, actor, case, boxes)
        db.commit()
        loaded += 1
    return loaded
