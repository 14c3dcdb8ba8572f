"""Database lifecycle: the embedded pgserver PostgreSQL or an external one, plus migrations."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

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

    def __init__(self, url: str, *, embedded_server: Any | None = None) -> None:
        self.url = normalise_url(url)
        self.engine: Engine = create_engine(self.url, pool_pre_ping=True, future=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._server = embedded_server

    @classmethod
    def open(cls, database_url: str | None, pg_dir: Path) -> Database:
        if database_url:
            return cls(database_url)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI); pgserver copes.
            warnings.simplefilter("ignore")
            import pgserver  # heavy import only when embedding

        pg_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", pg_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(pg_dir, cleanup_mode="stop")
        return cls(server.get_uri(), embedded_server=server)

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
        """One unit of work: commits on success, rolls back on any exception."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()
        if self._server is not None:
            log.info("stopping embedded PostgreSQL")
            self._server.cleanup()
            self._server = None
