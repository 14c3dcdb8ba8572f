"""Jobs in PostgreSQL (`storage.jobs`) and the runner that takes them (`verifier.jobs`): each job runs once
however many runners share the queue, a dead runner's job is taken again when its lease lapses (at most
twice), a live runner keeps its job past the lease, and only the current claim records an outcome."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from verifier.errors import NotFound, Overloaded
from verifier.jobs import INTERNAL, JobRunner
from verifier.storage import jobs
from verifier.storage.accounts import create_publisher
from verifier.storage.database import Database
from verifier.storage.models import Job

KIND = "test-kind"  # no service runner handles it: only the runners a test builds take these jobs


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.open(database_url, None)
    database.upgrade()
    yield database
    database.close()


def _publisher(db: Database, name: str = "Newswire") -> uuid.UUID:
    with db.session() as session:
        publisher, _ = create_publisher(session, name)
        return publisher.id


def _submit(db: Database, pid: uuid.UUID | None, **params: Any) -> uuid.UUID:
    with db.session() as session:
        job, created = jobs.submit(session, KIND, pid, dict(params), max_pending=100)
        assert created
        return job.id


def _job(db: Database, job_id: uuid.UUID) -> Job:
    with db.session() as session:
        job = jobs.get(session, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_asking_again_while_one_is_pending_returns_it_and_the_queue_is_bounded(db: Database) -> None:
    a, b, c = (_publisher(db, n) for n in ("A", "B", "C"))
    with db.session() as session:
        first, created = jobs.submit(session, KIND, a, {"n": 1}, max_pending=2)
        again, created_again = jobs.submit(session, KIND, a, {"n": 2}, max_pending=2)
        assert created and not created_again and again.id == first.id and again.params == {"n": 1}
        other, _ = jobs.submit(session, "another-kind", a, {}, max_pending=2)  # another kind is another job
        assert other.id != first.id
    with db.session() as session, pytest.raises(Overloaded) as refused:
        jobs.submit(session, KIND, b, {}, max_pending=2)
    assert refused.value.status == 503 and refused.value.extra["retry_after"] == 10
    with db.session() as session:
        claimed = jobs.claim(session, [KIND], 60)
        assert claimed is not None and claimed.id == first.id
        assert jobs.finish(session, claimed.id, claimed.claim, result={"ok": True})  # type: ignore[arg-type]
        _, created = jobs.submit(session, KIND, c, {}, max_pending=2)  # room again
        assert created


def test_only_the_newest_outcomes_are_kept(db: Database) -> None:
    pid = _publisher(db)
    ids = []
    for k in range(jobs.KEEP_FINISHED + 3):
        ids.append(_submit(db, pid, k=k))
        with db.session() as session:
            job = jobs.claim(session, [KIND], 60)
            assert job is not None and job.id == ids[-1]
            jobs.finish(session, job.id, job.claim, result={"k": k})  # type: ignore[arg-type]
    with db.session() as session:
        kept = {j.id for j in session.query(Job).all()}
    assert kept == set(ids[-jobs.KEEP_FINISHED:])  # the ten newest (the last one asked for among them)


def test_two_runners_never_take_the_same_job(db: Database) -> None:
    pid = _publisher(db)
    first, second = _submit(db, pid), _submit(db, None)
    with db.session() as one, db.session() as two:  # both transactions open at once
        a, b = jobs.claim(one, [KIND], 60), jobs.claim(two, [KIND], 60)
        assert a is not None and b is not None and {a.id, b.id} == {first, second}
        with db.session() as three:
            assert jobs.claim(three, [KIND], 60) is None
    assert _job(db, first).state == _job(db, second).state == jobs.RUNNING


def test_a_lapsed_lease_is_taken_again_at_most_twice_and_only_the_current_claim_records(db: Database) -> None:
    job_id = _submit(db, _publisher(db))
    with db.session() as session:
        first = jobs.claim(session, [KIND], 0.2)
        assert first is not None and first.attempts == 1
        token1 = first.claim
    with db.session() as session:
        assert jobs.claim(session, [KIND], 60) is None  # still leased
    time.sleep(0.4)
    with db.session() as session:
        second = jobs.claim(session, [KIND], 0.2)
        assert second is not None and second.id == job_id and second.attempts == 2 and second.claim != token1
    with db.session() as session:
        assert not jobs.finish(session, job_id, token1, result={"late": True})  # type: ignore[arg-type]
        assert not jobs.renew(session, job_id, token1, 60)  # type: ignore[arg-type]
    time.sleep(0.4)
    with db.session() as session:
        assert jobs.claim(session, [KIND], 60) is None  # two attempts used: failed, not run a third time
    job = _job(db, job_id)
    assert job.state == jobs.FAILED and job.error is not None and job.error["status"] == 500
    assert "stopped 2 times" in job.error["detail"] and job.result is None


def test_a_released_job_goes_back_to_the_queue_without_using_an_attempt(db: Database) -> None:
    job_id = _submit(db, None)
    with db.session() as session:
        job = jobs.claim(session, [KIND], 60)
        assert job is not None
        assert jobs.release(session, job_id, job.claim)  # type: ignore[arg-type]
    with db.session() as session:
        again = jobs.claim(session, [KIND], 60)
        assert again is not None and again.id == job_id and again.attempts == 1


def _wait_for(db: Database, job_id: uuid.UUID, state: str, timeout: float = 20) -> Job:
    deadline = time.monotonic() + timeout
    while (job := _job(db, job_id)).state != state:
        assert time.monotonic() < deadline, job.state
        time.sleep(0.05)
    return job


def test_the_runner_records_results_typed_problems_and_hides_unexpected_errors(db: Database) -> None:
    def handler(pid: uuid.UUID | None, params: dict[str, Any]) -> dict[str, Any]:
        if params["do"] == "fail":
            raise NotFound("no such thing")
        if params["do"] == "crash":
            raise RuntimeError("secret internals /etc/passwd")
        return {"twice": params["n"] * 2, "publisher": str(pid)}

    pid = _publisher(db)
    runner = JobRunner(db, {KIND: handler}, poll_s=0.05)
    runner.start()
    try:
        done = _submit(db, pid, do="ok", n=21)
        assert _wait_for(db, done, jobs.DONE).result == {"twice": 42, "publisher": str(pid)}
        failed = _wait_for(db, _submit(db, pid, do="fail"), jobs.FAILED)
        assert failed.error is not None and failed.error["status"] == 404 and failed.error["detail"] == "no such thing"
        crashed = _wait_for(db, _submit(db, pid, do="crash"), jobs.FAILED)
        assert crashed.error == INTERNAL and crashed.result is None
        finished = _job(db, done)
        assert finished.claim is None and finished.lease_until is None and finished.attempts == 1
        assert finished.created_at <= finished.started_at <= finished.finished_at  # type: ignore[operator]
    finally:
        runner.stop()


def test_a_live_runner_keeps_its_job_past_the_lease_and_a_stopped_one_gives_it_back(db: Database) -> None:
    gate = threading.Event()

    def slow(pid: uuid.UUID | None, params: dict[str, Any]) -> dict[str, Any]:
        gate.wait(10)
        return {"waited": True}

    runner = JobRunner(db, {KIND: slow}, poll_s=0.05, lease_s=0.6)
    runner.start()
    try:
        job_id = _submit(db, None)
        _wait_for(db, job_id, jobs.RUNNING)
        time.sleep(1.5)  # two and a half leases: renewed meanwhile
        with db.session() as session:
            assert jobs.claim(session, [KIND], 60) is None
        gate.set()
        assert _wait_for(db, job_id, jobs.DONE).result == {"waited": True}
    finally:
        runner.stop()

    gate.clear()
    runner = JobRunner(db, {KIND: slow}, poll_s=0.05, lease_s=60)
    runner.start()
    job_id = _submit(db, None)
    _wait_for(db, job_id, jobs.RUNNING)
    runner.stop()  # mid-job: the job waits for the next runner, its attempt not counted
    job = _job(db, job_id)
    assert job.state == jobs.QUEUED and job.attempts == 0 and job.claim is None
    gate.set()
    time.sleep(0.3)  # the abandoned handler ends; its outcome is not recorded
    assert _job(db, job_id).state == jobs.QUEUED
    runner = JobRunner(db, {KIND: slow}, poll_s=0.05)
    runner.start()
    try:
        assert _wait_for(db, job_id, jobs.DONE).attempts == 1
    finally:
        runner.stop()


def test_jobs_go_with_their_publisher(db: Database) -> None:
    from verifier.storage.models import Publisher

    pid = _publisher(db)
    job_id = _submit(db, pid)
    with db.session() as session:
        session.delete(session.get(Publisher, pid))
    with db.session() as session:
        assert jobs.get(session, job_id) is None


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread priorities are Linux's")
def test_a_job_runs_at_a_lower_cpu_priority_than_the_requests(db: Database) -> None:
    def niceness(pid: uuid.UUID | None, params: dict[str, Any]) -> dict[str, Any]:
        return {"nice": os.getpriority(os.PRIO_PROCESS, threading.get_native_id())}

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for nice, expected in ((5, min(19, mine + 5)), (0, mine)):
        runner = JobRunner(db, {KIND: niceness}, poll_s=0.05, nice=nice)
        runner.start()
        try:
            assert _wait_for(db, _submit(db, None), jobs.DONE).result == {"nice": expected}
        finally:
            runner.stop()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # the caller's own is untouched
