"""The job runner: one thread per serving process that takes queued jobs (`storage.jobs`) one at a time
and runs the handler for their kind. One at a time, because a job is heavy CPU work beside the
verifications this process serves; more processes run more at once.

The handler runs in its own thread while the runner renews the job's lease, so that a job longer
than the lease is not taken by another process while this one is alive, and a dead process's job
is taken again within one lease. A handler's typed error (`VerifierError`) is the job's problem as
it is; anything else is logged here and reported as an internal error without its details.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from verifier.errors import VerifierError
from verifier.storage import jobs as store
from verifier.storage.database import Database

log = logging.getLogger(__name__)

# (publisher id or None, the job's params) -> the job's result as JSON
Handler = Callable[[uuid.UUID | None, dict[str, Any]], dict[str, Any]]

INTERNAL = {"type": "urn:provenance-verifier:problem:internal", "title": "Internal error", "status": 500,
            "detail": "the job failed; the service's log has the reason"}


class JobRunner:
    def __init__(self, db: Database, handlers: Mapping[str, Handler], *, poll_s: float = 2.0,
                 lease_s: float = 60.0, nice: int = 10) -> None:
        self.db = db
        self.nice = nice  # the handler thread's niceness: verifications come first on a busy machine
        self.handlers = dict(handlers)
        self.poll_s = poll_s  # how soon another process's submission is seen (this process's: at once)
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: tuple[uuid.UUID, uuid.UUID] | None = None  # (job, claim token) while a handler runs

    def start(self) -> None:
        if self._thread is not None or not self.handlers:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="job-runner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking jobs. A job still running is given back to the queue (its handler cannot be interrupted:
        its outcome is then not recorded here, and another runner, or this one after a restart, runs it again)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        running = self._running
        if running is not None:
            try:
                with self.db.session() as session:
                    store.release(session, *running)
            except Exception:  # noqa: BLE001 - the database may be gone at shutdown: the lease then lapses
                log.warning("job %s not given back; it runs again when its lease lapses", running[0])

    @property
    def active(self) -> bool:
        """Whether this process takes jobs."""
        return self._thread is not None and self._thread.is_alive()

    def submitted(self) -> None:
        """A job was queued by this process: look now rather than at the next poll."""
        self._wake.set()

    def run_once(self) -> bool:
        """Claim one job and run it to its end; False when none was waiting."""
        with self.db.session() as session:
            job = store.claim(session, list(self.handlers), self.lease_s)
            if job is None:
                return False
            job_id, token, kind, publisher_id, params = job.id, job.claim, job.kind, job.publisher_id, dict(job.params)
        assert token is not None
        self._running = (job_id, token)
        outcome: dict[str, Any] = {}

        def work() -> None:
            _lower_priority(self.nice)
            try:
                outcome["result"] = self.handlers[kind](publisher_id, params)
            except VerifierError as exc:
                outcome["error"] = exc.problem()
            except Exception:
                log.exception("job %s (%s) failed", job_id, kind)
                outcome["error"] = INTERNAL

        worker = threading.Thread(target=work, name=f"job-{kind}", daemon=True)
        log.info("job %s (%s) started", job_id, kind)
        worker.start()
        mine, renew_at = True, time.monotonic() + self.lease_s / 3
        while worker.is_alive():
            worker.join(0.25)
            if self._stop.is_set() and worker.is_alive():
                return True  # stop() gives it back
            if worker.is_alive() and time.monotonic() >= renew_at:
                with self.db.session() as session:
                    mine = store.renew(session, job_id, token, self.lease_s)
                renew_at = time.monotonic() + self.lease_s / 3
                if not mine:
                    break
        self._running = None
        if not mine:
            log.warning("job %s lost its lease while running; its outcome is another runner's to record", job_id)
            return True
        with self.db.session() as session:
            store.finish(session, job_id, token, result=outcome.get("result"), error=outcome.get("error"))
        log.info("job %s (%s) %s", job_id, kind, "failed" if "error" in outcome else "done")
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:  # the database away for a moment: try again after a poll
                log.warning("job runner: could not take or record a job", exc_info=True)
            self._wake.wait(self.poll_s)
            self._wake.clear()


def _lower_priority(nice: int) -> None:
    """This thread (and the threads it starts) at a lower CPU priority: on Linux a thread has its own nice value."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    except OSError:  # not permitted here: the job runs at the process's priority
        log.debug("could not lower the job thread's priority", exc_info=True)
