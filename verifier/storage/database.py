"""Database lifecycle: the embedded pgserver PostgreSQL or an external one, plus migrations."""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from verifier.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as pgserver and most tools print them)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def alembic_config(url: str) -> Any:
    """Alembic config that works from a source checkout and from an installed wheel.
    (Alembic is imported only to migrate: it drags in its autogenerate machinery.)"""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class Database:
    """Owns the engine and, when no URL is configured, the embedded PostgreSQL server."""

    def __init__(self, url: str, *, embedded_server: Any | None = None, pg_dir: Path | None = None) -> None:
        self.url = normalise_url(url)
        self.engine: Engine = create_engine(self.url, pool_pre_ping=True, future=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._server = embedded_server
        self._pg_dir = pg_dir
        self._recovering = threading.Lock()

    @classmethod
    def open(cls, database_url: str | None, pg_dir: Path) -> Database:
        if database_url:
            return cls(database_url)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI); pgserver copes.
            warnings.simplefilter("ignore")
            import pgserver  # heavy import only when embedding

        pg_dir.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_handles(pg_dir)
        log.info("starting embedded PostgreSQL in %s", pg_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(pg_dir, cleanup_mode="stop")
        return cls(server.get_uri(), embedded_server=server, pg_dir=pg_dir)

    def recover(self) -> bool:
        """Bring a dead embedded PostgreSQL (kill -9, OOM) back without restarting the
        service; True when the database answers. An external database is only pinged."""
        with self._recovering:
            try:
                self.ping()
                return True
            except OperationalError:
                if self._server is None or self._pg_dir is None:
                    return False
            log.warning("embedded PostgreSQL does not answer: restarting it in %s", self._pg_dir)
            # Lock files left by a killed postmaster: PostgreSQL refuses to start while they
            # name a pid that still exists (a zombie, where nothing reaps it).
            for lock in [self._pg_dir / "postmaster.pid", *self._pg_dir.glob(".s.PGSQL.*.lock")]:
                if lock.exists() and not _alive(_first_int(lock)):
                    lock.unlink(missing_ok=True)
            try:
                self.engine.dispose()  # idle pooled connections: their backends must be gone before a restart
                with self._server._lock:  # pgserver's own start/stop lock
                    self._server.ensure_postgres_running()
                self.engine.dispose()
                self.ping()
            except Exception:
                log.exception("could not restart the embedded PostgreSQL")
                return False
            log.info("embedded PostgreSQL is back")
            return True

    @property
    def embedded(self) -> bool:
        return self._server is not None

    def upgrade(self, revision: str = "head") -> None:
        from alembic import command

        with self.engine.begin() as conn:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def downgrade(self, revision: str = "base") -> None:
        from alembic import command

        with self.engine.begin() as conn:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)

    def current_revision(self) -> str | None:
        """The schema's Alembic revision (None for an empty database)."""
        if "alembic_version" not in self.table_names():
            return None
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def ping(self) -> None:
        """Raise unless the database answers."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def table_names(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on any exception. A lost
        connection to the database is a 503 (and the embedded server is restarted)."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                _rollback_quietly(session)
                recovered = self.recover()
                raise DatabaseUnavailable(
                    "the database did not answer; " + ("it is back, retry now" if recovered else "retry shortly"),
                    retry_after=1 if recovered else 5,
                ) from exc
            except BaseException:
                _rollback_quietly(session)
                raise

    def close(self) -> None:
        self.engine.dispose()
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None


def _rollback_quietly(session: Session) -> None:
    try:
        session.rollback()
    except OperationalError:
        pass  # the connection is gone: nothing to roll back


def _first_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def _alive(pid: int) -> bool:
    """A live process (a zombie left by kill -9 is not)."""
    import psutil

    try:
        return pid > 0 and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _forget_dead_handles(pg_dir: Path) -> None:
    """pgserver counts the processes using the server in `.handle_pids.json` and stops it
    when the last leaves; a service killed with -9 never leaves, so the server would never
    be stopped again. Drop the pids that are gone before joining."""
    path = pg_dir / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(pids, list):
        alive = [p for p in pids if isinstance(p, int) and _alive(p)]
        if alive != pids:
            log.info("forgetting dead handles on the embedded PostgreSQL: %s", sorted(set(pids) - set(alive)))
            path.write_text(json.dumps(alive))
