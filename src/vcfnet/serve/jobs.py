"""Background jobs claimed from the database, so any number of serve processes (and machines
sharing one PostgreSQL database and one storage) run them.

A job is a row of ``jobs`` (kind, JSON payload, state queued -> running -> done | failed). A worker
claims the oldest queued job with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL: concurrent
claimers skip each other's locked rows and never wait) followed by a compare-and-set
``UPDATE ... WHERE state = 'queued'``; SQLite ignores ``FOR UPDATE`` but serialises writers, and
the compare-and-set alone keeps two claimers from taking one job. While a job runs, its worker
updates ``heartbeat_at`` every ``stale_after_s / 4``; a job whose heartbeat is older than
``stale_after_s`` (its worker died) is requeued, up to ``MAX_ATTEMPTS`` claims, then failed. A
long job is therefore never taken twice while its worker lives.

``JobRunner`` runs worker threads in one serve process; ``wait`` lets a request enqueue a job and
block (on a worker thread of the web server, never the event loop) until it finishes, so the pages
and the API stay synchronous where they were.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from vcfnet.serve.models import Job, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
#: Handler: (session, job) -> result dict; it commits its own work. An exception fails the job
#: with its one-line message.
Handler = Callable[[Session, Job], dict[str, Any]]


class JobFailedError(RuntimeError):
    """A job ended ``failed``; the message is the one-line reason the user sees."""

    def __init__(self, message: str, status_code: int = 500):
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class JobOutcome:
    id: int
    state: str
    attempts: int
    result: dict[str, Any] | None
    error: str | None


def enqueue(db: Session, kind: str, payload: dict[str, Any], case_id: int | None = None) -> Job:
    """Add a queued job (the caller commits)."""
    job = Job(kind=kind, payload=payload, state="queued", case_id=case_id)
    db.add(job)
    db.flush()
    return job


def claim(db: Session, worker: str, kinds: tuple[str, ...] | None = None) -> Job | None:
    """Claim the oldest queued job for ``worker`` (committed); None if there is none."""
    while True:
        stmt = select(Job.id).where(Job.state == "queued").order_by(Job.id).limit(1)
        if kinds is not None:
            stmt = stmt.where(Job.kind.in_(kinds))
        job_id = db.scalars(stmt.with_for_update(skip_locked=True)).first()
        if job_id is None:
            db.rollback()
            return None
        taken = db.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "queued")
            .values(
                state="running",
                claimed_by=worker[:128],
                claimed_at=(now := utcnow()),
                heartbeat_at=now,
                attempts=Job.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        db.commit()
        if taken == 1:
            return db.get(Job, job_id, populate_existing=True)
        # another claimer (SQLite, no row locks) took it between our select and update: next one


def finish(db: Session, job_id: int, worker: str, result=None, error: str | None = None) -> bool:
    """Record the outcome if ``worker`` still holds the job (False: it was reclaimed meanwhile)."""
    values: dict[str, Any] = {"state": "failed" if error else "done", "finished_at": utcnow()}
    values["result"] = result
    values["error"] = error[:500] if error else None
    done = db.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "running", Job.claimed_by == worker[:128])
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    return done == 1


def reclaim_stale(db: Session, stale_after_s: float, now: dt.datetime | None = None) -> int:
    """Requeue jobs ``running`` without a heartbeat for ``stale_after_s`` (their worker died);
    after ``MAX_ATTEMPTS`` claims they fail instead. Returns how many were touched."""
    cutoff = (now or utcnow()) - dt.timedelta(seconds=stale_after_s)
    stale = Job.state == "running", Job.heartbeat_at < cutoff
    failed = db.execute(
        update(Job)
        .where(*stale, Job.attempts >= MAX_ATTEMPTS)
        .values(
            state="failed",
            finished_at=utcnow(),
            error=f"the job stopped {MAX_ATTEMPTS} times without finishing (its worker died); "
            "try again or ask an admin to check the server log",
            result={"status": 500},
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    requeued = db.execute(
        update(Job)
        .where(*stale)
        .values(state="queued", claimed_by=None, claimed_at=None, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.commit()
    if failed or requeued:
        log.warning("stale jobs: %d requeued, %d failed", requeued, failed)
    return failed + requeued


def outcome(db: Session, job_id: int) -> JobOutcome:
    job = db.get(Job, job_id, populate_existing=True)
    if job is None:
        raise LookupError(f"job {job_id} not found")
    return JobOutcome(job.id, job.state, job.attempts, job.result, job.error)


@contextmanager
def heartbeat(factory: sessionmaker[Session], job_id: int, worker: str, every_s: float):
    """Beat ``heartbeat_at`` of a running job every ``every_s`` from a side thread."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                with factory() as db:
                    db.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.state == "running", Job.claimed_by == worker)
                        .values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
                    db.commit()
            except Exception:  # a missed beat is harmless unless they all fail
                log.warning("heartbeat of job %d failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_one(
    factory: sessionmaker[Session],
    handlers: dict[str, Handler],
    worker: str,
    status_of: Callable[[Exception], int] = lambda exc: 500,
    heartbeat_s: float = 150.0,
) -> bool:
    """Claim and run one job; False if none was queued. ``status_of`` maps a handler's exception
    to the HTTP status a waiting request answers with (>= 500: a server fault, logged)."""
    with factory() as db:
        job = claim(db, worker, tuple(handlers))
        if job is None:
            return False
        job_id = job.id
        try:
            with heartbeat(factory, job_id, worker[:128], heartbeat_s):
                result = handlers[job.kind](db, job)
        except Exception as exc:
            db.rollback()
            status = status_of(exc)
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if status >= 500:
                log.exception("job %d (%s) failed", job_id, job.kind)
                message = f"the job failed ({type(exc).__name__}: {message})"
            finish(db, job_id, worker, result={"status": status}, error=message)
            return True
        finish(db, job_id, worker, result=result)
    return True


class JobRunner:
    """``threads`` worker threads of this process that claim and run jobs until stopped.

    Idle workers poll the table every ``poll_s`` (jobs of other processes); a job enqueued in this
    process wakes them at once (``notify``), and a finished one wakes this process's waiters.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        handlers: dict[str, Handler],
        threads: int = 2,
        poll_s: float = 0.5,
        stale_after_s: float = 600.0,
        status_of: Callable[[Exception], int] = lambda exc: 500,
        periodic: tuple[Callable[[Session], None], ...] = (),
    ):
        self.factory = factory
        self.handlers = handlers
        self.threads = threads
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s
        self.status_of = status_of
        self.periodic = periodic  # called with a session at each housekeeping tick (<= 60 s)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._wake = threading.Condition()
        self._done = threading.Condition()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._workers)

    def start(self) -> None:
        with self._lock:
            if self.running or self.threads < 1:
                return
            self._stop.clear()
            self._workers = [
                threading.Thread(
                    target=self._loop, args=(f"{self.name}:{i}",), name=f"job-{i}", daemon=True
                )
                for i in range(self.threads)
            ]
            for thread in self._workers:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.notify()
        for thread in self._workers:
            thread.join(timeout)

    def notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _loop(self, worker: str) -> None:
        last_reclaim = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_reclaim > min(self.stale_after_s / 4, 60):
                    last_reclaim = time.monotonic()
                    with self.factory() as db:
                        reclaim_stale(db, self.stale_after_s)
                        for task in self.periodic:
                            task(db)
                ran = run_one(
                    self.factory, self.handlers, worker, self.status_of, self.stale_after_s / 4
                )
            except Exception:  # the database went away for a moment: retry after a pause
                log.exception("job worker %s", worker)
                ran = False
            if ran:
                with self._done:
                    self._done.notify_all()
                continue
            with self._wake:
                self._wake.wait(self.poll_s)

    def wait(self, job_id: int, timeout_s: float) -> JobOutcome:
        """The job's outcome once done or failed, or its current state after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.factory() as db:
                current = outcome(db, job_id)
            left = deadline - time.monotonic()
            if current.state in ("done", "failed") or left <= 0:
                return current
            with self._done:  # a local worker's finish wakes us; another process's: the poll
                self._done.wait(min(left, 0.25))


def result_or_raise(current: JobOutcome) -> dict[str, Any]:
    """The result of a done job; JobFailedError (with the job's message) for a failed one."""
    if current.state == "failed":
        status = (current.result or {}).get("status", 500)
        raise JobFailedError(current.error or "the job failed", status)
    return current.result or {}
