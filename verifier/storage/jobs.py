"""Jobs: heavy work a request asks for and a client polls, queued in PostgreSQL (migration 0010).

Why a table and not a thread pool: the request that asks returns at once (no worker slot or proxy minute held
for half a minute), any replica can run a job and any can answer the poll, and a job outlives the process
that accepted it. A runner claims the oldest queued job with `FOR UPDATE SKIP LOCKED` (several processes share
one queue, each job runs once) and holds a lease that it renews while the job runs; a job whose process died is
claimed again when its lease lapses, at most `MAX_ATTEMPTS` times in all (a job that kills its process must
not go on to kill every other). Each claim has its own token: only the runner that holds the current claim
can record the outcome.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from verifier.errors import Overloaded
from verifier.storage.models import Job

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
MAX_ATTEMPTS = 2
KEEP_FINISHED = 10  # per publisher and kind: older outcomes are deleted when a new job is asked for


def submit(session: Session, kind: str, publisher_id: uuid.UUID | None, params: dict[str, Any], *,
           requested_by: uuid.UUID | None = None, max_pending: int = 16) -> tuple[Job, bool]:
    """Queue a job; (job, True). The same kind already pending for this publisher is returned instead, (job,
    False): asking twice does not run the work twice. Beyond `max_pending` jobs waiting or running in all:
    `Overloaded` (503)."""
    # one submission per publisher and kind at a time, so that two requests at once cannot both queue
    session.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                    {"k": zlib.crc32(f"job:{kind}:{publisher_id}".encode()) - 2**31})
    pending = session.scalars(
        select(Job).where(Job.kind == kind, Job.publisher_id == publisher_id, Job.state.in_((QUEUED, RUNNING)))
        .order_by(Job.created_at).limit(1)).first()
    if pending is not None:
        return pending, False
    n = session.scalar(select(func.count()).select_from(Job).where(Job.state.in_((QUEUED, RUNNING)))) or 0
    if n >= max_pending:
        raise Overloaded(f"{n} jobs are waiting or running; ask again shortly", retry_after=10)
    old = select(Job.id).where(Job.kind == kind, Job.publisher_id == publisher_id, Job.state.in_((DONE, FAILED))) \
        .order_by(Job.created_at.desc()).offset(KEEP_FINISHED - 1)
    session.execute(delete(Job).where(Job.id.in_(old)))
    job = Job(kind=kind, publisher_id=publisher_id, requested_by=requested_by, params=params, state=QUEUED,
              attempts=0)
    session.add(job)
    session.flush()
    session.refresh(job)  # created_at from the database
    return job, True


def get(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.get(Job, job_id)


def claim(session: Session, kinds: Sequence[str], lease_s: float) -> Job | None:
    """The oldest job of `kinds` that is queued or whose runner's lease lapsed, now running under a new claim
    token; None when there is none. A lapsed job that has used its attempts is failed instead."""
    while True:
        lapsed = (Job.state == RUNNING) & (Job.lease_until < func.now())
        job = session.scalars(
            select(Job).where(Job.kind.in_(list(kinds)), (Job.state == QUEUED) | lapsed)
            .order_by(Job.created_at).limit(1).with_for_update(skip_locked=True)).first()
        if job is None:
            return None
        if job.attempts >= MAX_ATTEMPTS:
            job.state, job.claim, job.lease_until, job.finished_at = FAILED, None, None, func.clock_timestamp()
            job.error = {"type": "urn:provenance-verifier:problem:job-interrupted", "title": "Job interrupted",
                         "status": 500, "detail": f"the process running it stopped {job.attempts} times; "
                         "ask again, with a smaller sample if it keeps stopping"}
            session.flush()
            continue
        job.state, job.claim, job.attempts = RUNNING, uuid.uuid4(), job.attempts + 1
        # the clock, not now(): now() is this transaction's start, which can precede the commit that queued the
        # job (a claim that began just before it sees it), and a job would start before it was created
        job.started_at = func.clock_timestamp()
        job.lease_until = func.now() + dt.timedelta(seconds=lease_s)
        session.flush()
        session.refresh(job)
        return job


def renew(session: Session, job_id: uuid.UUID, token: uuid.UUID, lease_s: float) -> bool:
    """Extend the lease; False when the claim is no longer this runner's (its lease lapsed and another took it)."""
    done = session.execute(update(Job).where(Job.id == job_id, Job.claim == token, Job.state == RUNNING)
                           .values(lease_until=func.now() + dt.timedelta(seconds=lease_s)))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def finish(session: Session, job_id: uuid.UUID, token: uuid.UUID, *, result: dict[str, Any] | None = None,
           error: dict[str, Any] | None = None) -> bool:
    """Record the outcome (`result`, or a problem+json `error`) if the claim is still this runner's."""
    done = session.execute(update(Job).where(Job.id == job_id, Job.claim == token, Job.state == RUNNING).values(
        state=FAILED if error is not None else DONE, result=result, error=error, claim=None, lease_until=None,
        finished_at=func.clock_timestamp()))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def release(session: Session, job_id: uuid.UUID, token: uuid.UUID) -> bool:
    """Give a job back to the queue (a process stopping mid-job): the next runner takes it at once, and this
    attempt does not count."""
    done = session.execute(update(Job).where(Job.id == job_id, Job.claim == token, Job.state == RUNNING).values(
        state=QUEUED, claim=None, lease_until=None, started_at=None, attempts=Job.attempts - 1))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def pending_summary(session: Session) -> dict[str, Any]:
    """What /healthz shows of the queue: jobs waiting and running, and how long the oldest has waited."""
    queued, running, oldest = session.execute(select(
        func.count().filter(Job.state == QUEUED), func.count().filter(Job.state == RUNNING),
        func.extract("epoch", func.now() - func.min(Job.created_at).filter(Job.state == QUEUED)))).one()
    return {"queued": int(queued), "running": int(running),
            "oldest_queued_s": None if oldest is None else round(float(oldest), 1)}
