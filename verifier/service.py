"""The running service: settings, database and registry, opened and closed together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from verifier.db import Database
from verifier.registry import Registry
from verifier.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    db: Database
    registry: Registry

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Service:
        """Connect (starting the embedded PostgreSQL when no URL is set) and migrate."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.open(settings.database_url, settings.pg_dir)
        try:
            if migrate:
                db.upgrade()
        except BaseException:
            db.close()
            raise
        return cls(settings=settings, db=db, registry=Registry(settings, db))

    def close(self) -> None:
        self.db.close()
