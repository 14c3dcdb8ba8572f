"""Keep this process's search index in step with the registry that other processes change.

Several API replicas (and the CLI, and bulk jobs) share one PostgreSQL. Database triggers
write every added vector, deleted original and index rebuild to `registry_changes`
(migration 0008) and NOTIFY; each process follows that sequence from where it loaded, so an
original registered through one replica is found by every other within a second or two,
without a restart. LISTEN wakes the follower at once; it also polls, so a dropped connection
or a missed notification only delays.

What else follows those changes (the local-feature vote index, `Matcher.sync_votes`) runs on a
thread of its own, `BackgroundSync`, which the follower only wakes: a vote-index sync that
rebuilds an outgrown IVF reads every original's descriptors (91 s at 1.55M, minutes at 10,000
originals), and on the follower's thread it held back every other process's registrations and
deletions from this process's search for that long."""

from __future__ import annotations

import logging
import select
import threading
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sql_select

from verifier.matching.search import ProvenanceSearch
from verifier.matching.views import CandidateViews
from verifier.storage.database import Database
from verifier.storage.models import RegistryChange

log = logging.getLogger(__name__)

CHANNEL = "verifier_registry"
BATCH = 5000


class BackgroundSync:
    """Runs `work` on its own thread whenever poked; pokes that come while it runs make one more
    run after it, never a queue. A failure is logged and waits for the next poke."""

    def __init__(self, work: Callable[[], object], name: str = "vote-sync") -> None:
        self.work = work
        self.name = name
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop after the run in progress; whether the thread ended within `timeout`."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.work()
                self.failures = 0
            except Exception:  # the database away, a view unreadable: the next poke tries again
                self.failures += 1
                log.log(logging.WARNING if self.failures == 1 else logging.DEBUG, "%s failed (%d in a row)",
                        self.name, self.failures, exc_info=True)


class RegistryFollower:
    def __init__(self, db: Database, search: ProvenanceSearch, views: CandidateViews | None = None,
                 interval_s: float = 0.5, on_change: Callable[[], object] | None = None,
                 lagging: Callable[[], bool] | None = None) -> None:
        self.db = db
        # after changes from other processes were applied: must return at once (`BackgroundSync.poke`,
        # which wakes the local-feature index's sync), or it holds back the changes that follow
        self.on_change = on_change
        # True when on_change should run though nothing came from other processes: this process's own
        # registrations, which a request's vote would otherwise catch up with, 64 at a time, and never
        # with a rebuild (`Matcher.votes_behind`)
        self.lagging = lagging
        self.search = search
        self.views = views
        self.interval_s = interval_s
        self.last = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def position(self) -> int:
        """The newest change in the database (what a freshly loaded index already reflects)."""
        with self.db.session() as session:
            return int(session.scalar(sql_select(func.coalesce(func.max(RegistryChange.id), 0))) or 0)

    def start(self, after: int) -> None:
        """Follow changes newer than `after` (taken before the index was loaded, so that
        nothing committed in between is missed; replaying one twice is harmless)."""
        self.last = after
        self._thread = threading.Thread(target=self._run, name="registry-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_listener()

    def catch_up(self) -> dict[str, int]:
        """Apply every change after `last`; what was applied."""
        total = {"added": 0, "deleted": 0, "reloaded": 0}
        while True:
            with self.db.session() as session:
                rows = session.execute(
                    sql_select(RegistryChange.id, RegistryChange.action, RegistryChange.original_id,
                               RegistryChange.embedding_id, RegistryChange.model_id)
                    .where(RegistryChange.id > self.last).order_by(RegistryChange.id).limit(BATCH)).all()
            if not rows:
                return total
            changes: list[tuple[str, uuid.UUID | None, int | None, str | None]] = [
                (r.action, r.original_id, r.embedding_id, r.model_id) for r in rows]
            done = self.search.follow(changes)
            if self.views is not None:
                for action, oid, _, _ in changes:
                    if action == "delete" and oid is not None:
                        self.views.forget(oid)
            self.last = rows[-1].id
            for k, v in done.items():
                total[k] += v
            if len(rows) < BATCH:
                return total

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                done = self.catch_up()
                if any(done.values()):
                    log.info("registry changes applied: %s (up to change %d)", done, self.last)
                if self.on_change is not None and (any(done.values()) or (self.lagging is not None and self.lagging())):
                    self.on_change()
                if failures:
                    log.warning("following registry changes again after %d failed attempts", failures)
                failures = 0
            except Exception:  # the database restarting, a network blip: keep following
                failures += 1
                if failures == 1:
                    log.warning("following registry changes failed; retrying with back-off", exc_info=True)
                self._close_listener()
                # back off while the database is away (1 s, 2 s, 4 s, ... up to 30 s), quietly
                self._stop.wait(min(30.0, self.interval_s * 2 ** min(failures, 6)))
                continue
            self._wait()

    def _wait(self) -> None:
        """Until a NOTIFY or the poll interval, whichever comes first."""
        try:
            conn = self._listener()
            if select.select([conn], [], [], self.interval_s) != ([], [], []):
                conn.poll()
                conn.notifies.clear()
        except Exception:  # noqa: BLE001 - no LISTEN connection now: poll instead, reconnect later
            self._close_listener()
            self._stop.wait(self.interval_s)

    def _listener(self) -> Any:
        if self._conn is None:
            raw = self.db.engine.raw_connection()
            conn = raw.driver_connection  # psycopg2
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            self._raw, self._conn = raw, conn
        return self._conn

    def _close_listener(self) -> None:
        if self._conn is not None:
            try:
                self._raw.invalidate()  # not back into the pool in LISTEN state
            except Exception:
                log.debug("closing the LISTEN connection failed", exc_info=True)
            self._conn = None
