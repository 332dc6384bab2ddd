"""Retention: whether uploads' original files are kept, and deleting cases after N days.

The admin's choice lives in ``platform_settings['retention']`` (all processes read it); without
one, ``Settings.keep_originals`` applies and nothing expires. ``purge`` (run as a job) deletes the
cases older than the limit with their boxes, analyses and files, and, while originals are not
kept, the originals of every case. Cases in a reader study or with a second-read request are kept
(the study's protocol and the reports are records). Rows are deleted and committed first, files
afterwards: a crash in between leaves orphan files, which the start-up sweep removes, never a case
without its image. Every deleted case and the purge itself are audited. Finished jobs older than
``JOB_DAYS`` go too. The job workers enqueue a purge once a day once an admin has set a policy
(``schedule_purge``); an admin can also run it at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from vcfnet.serve.crud import Actor, InvalidInputError, audit
from vcfnet.serve.models import Case, Job, ReadRequest, StudyCase, User, utcnow
from vcfnet.serve.platform_settings import get_setting, put_setting
from vcfnet.serve.settings import Settings

log = logging.getLogger(__name__)

SETTING = "retention"
JOB_KIND = "purge"
MAX_DAYS = 36500
JOB_DAYS = 30  # finished jobs are kept this long (their outcome is shown; the audit log stays)


@dataclass(frozen=True)
class Retention:
    keep_originals: bool
    delete_after_days: int | None  # None: cases never expire

    def to_dict(self) -> dict[str, Any]:
        return {"keep_originals": self.keep_originals, "delete_after_days": self.delete_after_days}


def current(db: Session, settings: Settings) -> Retention:
    value = get_setting(db, SETTING)
    if value is None:
        return Retention(settings.keep_originals, None)
    return Retention(bool(value["keep_originals"]), value.get("delete_after_days"))


def save(db: Session, actor: Actor, keep_originals: bool, days: int | None) -> Retention:
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"delete cases after 1 to {MAX_DAYS} days, or leave it empty")
    policy = Retention(keep_originals, days)
    put_setting(db, SETTING, policy.to_dict())
    audit(db, actor, "admin.retention.set", detail=f"originals {keep_originals}, days {days}")
    db.commit()
    return policy


def expired_cases(db: Session, days: int, now: dt.datetime | None = None) -> list[Case]:
    """Cases older than ``days`` that no reader study and no read request holds."""
    cutoff = (now or utcnow()) - dt.timedelta(days=days)
    held = exists().where(StudyCase.case_id == Case.id)
    read = exists().where(ReadRequest.case_id == Case.id)
    stmt = select(Case).where(Case.created_at < cutoff, ~held, ~read).order_by(Case.id)
    return list(db.scalars(stmt))


def purge(db: Session, storage, actor: Actor, policy: Retention, now=None) -> dict[str, int]:
    """Delete expired cases (rows, then files) and, if originals are not kept, all originals."""
    doomed = expired_cases(db, policy.delete_after_days, now) if policy.delete_after_days else []
    keys: list[str] = []
    for case in doomed:
        keys += [case.image_key, case.original_key or ""]
        keys += [a.heatmap_key or "" for a in case.analyses]
        audit(db, actor, "case.purge", case_id=case.id, detail="retention")
        db.delete(case)
    originals = 0
    if not policy.keep_originals:
        for case in db.scalars(select(Case).where(Case.original_key.is_not(None))):
            if case in doomed:
                continue
            keys.append(case.original_key)
            case.original_key = None
            originals += 1
    db.flush()
    # finished jobs of deleted cases, and any finished job older than JOB_DAYS (the table stays small)
    finished = Job.state.in_(("done", "failed"))
    old = Job.finished_at < (now or utcnow()) - dt.timedelta(days=JOB_DAYS)
    gone = Job.case_id.in_([c.id for c in doomed])
    for job in db.scalars(select(Job).where(finished, gone | old)):
        db.delete(job)
    detail = f"{len(doomed)} case(s), {originals} original(s)"
    audit(db, actor, "admin.retention.purge", detail=detail)
    db.commit()
    for key in filter(None, keys):
        storage.delete(key)
    log.info("retention purge: %s", detail)
    return {"cases": len(doomed), "originals": originals, "files": len(list(filter(None, keys)))}


PURGE_EVERY = dt.timedelta(days=1)


def schedule_purge(db: Session, now: dt.datetime | None = None) -> Job | None:
    """Enqueue a purge once a day when an admin set a retention policy (called by the job
    workers' housekeeping; two processes racing at worst purge twice, which is harmless)."""
    if get_setting(db, SETTING) is None:
        return None
    since = (now or utcnow()) - PURGE_EVERY
    recent = select(Job.id).where(Job.kind == JOB_KIND, Job.created_at > since).limit(1)
    if db.scalars(recent).first() is not None:
        return None
    job = Job(kind=JOB_KIND, payload={"user_id": None, "client": "scheduler"}, state="queued")
    db.add(job)
    db.commit()
    return job


def purge_handler(state):
    """The ``purge`` job handler (payload: the admin's user id and client)."""

    def run(db: Session, job: Job) -> dict[str, Any]:
        user_id = job.payload.get("user_id")
        actor = Actor(db.get(User, user_id) if user_id else None, job.payload.get("client", ""))
        return purge(db, state.storage, actor, current(db, state.settings))

    return run
