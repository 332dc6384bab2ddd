"""``vcfnet serve --demo [DEMO_OUT]``: the platform opened on a ``vcfnet demo`` output folder.

The demo's model (DEMO_OUT/run), a few radiographs of its external test sites uploaded as cases
with their annotated boxes, and one account per role with a random password printed once.
Everything is synthetic, so the demo's fixed pseudonym key is harmless.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from vcfnet.errors import ConfigError

log = logging.getLogger(__name__)

DEMO_CASES = 8
DEMO_HOSPITAL = "Demo County Hospital"
DEMO_READING_CENTER = "Demo Reading Center"
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
    if not data_given:
        settings = replace(settings, data_dir=demo_out / "serve-data")
    from vcfnet.serve.app import build_state

    state = build_state(settings)
    with state.session_factory() as db:
        passwords = reset_demo_accounts(db, settings)
        db.commit()
        loaded = load_demo_cases(db, state, demo_out)
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
                db, settings, username=username, password=password, role=role,
                hospital=hospital, actor=actor,
            )  # fmt: skip
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
