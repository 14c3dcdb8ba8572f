"""`verifier jobs`: run queued jobs in a process of their own, and list them.

A deployment that keeps heavy background work off its API replicas sets `VERIFIER_RUN_JOBS=false`
there and runs `verifier jobs run` on a machine of its choice (as many as it likes: each job runs once)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from typing import Any

from verifier.cli.common import open_service, settings_from

log = logging.getLogger("verifier")


def cmd_jobs(args: argparse.Namespace) -> int:
    if args.jobs_command == "list":
        return _list(args)
    logging.getLogger("verifier").setLevel(logging.INFO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service = open_service(args)
    try:
        service.jobs.start()  # whatever VERIFIER_RUN_JOBS says: this process is for jobs
        log.info("running queued jobs (%s); stop with SIGINT or SIGTERM", ", ".join(sorted(service.jobs.handlers)))
        stop.wait()
    finally:
        service.close()  # a job still running goes back to the queue
    return 0


def _list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from verifier.storage import Database
    from verifier.storage.models import Job

    settings = settings_from(args)
    db = Database.open(settings.database_url, settings.pg_dir)
    try:
        with db.session() as session:
            query = select(Job).order_by(Job.created_at.desc()).limit(args.limit)
            if args.state:
                query = query.where(Job.state == args.state)
            for job in session.scalars(query):
                print(json.dumps({"id": str(job.id), "kind": job.kind, "publisher_id": str(job.publisher_id) if job.publisher_id else None,
                                  "state": job.state, "attempts": job.attempts, "params": job.params,
                                  "created_at": job.created_at.isoformat(),
                                  "started_at": job.started_at.isoformat() if job.started_at else None,
                                  "finished_at": job.finished_at.isoformat() if job.finished_at else None,
                                  "error": (job.error or {}).get("detail")}))
    finally:
        db.close()
    return 0


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be from 1 to 1000, not {value}")
    return value


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("jobs", help="queued background jobs (a publisher's suggested marks)")
    js = p.add_subparsers(dest="jobs_command", required=True)
    js.add_parser("run", help="run queued jobs until stopped (a worker process beside API replicas that do not)")
    q = js.add_parser("list", help="the newest jobs, one JSON line each")
    q.add_argument("--limit", type=_limit, default=20, help="1-1000 (default 20)")
    q.add_argument("--state", choices=("queued", "running", "done", "failed"))
    p.set_defaults(func=cmd_jobs)
