"""Alembic environment: uses a connection handed in by `verifier db`, else a URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from verifier.storage.database import normalise_url
from verifier.storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("VERIFIER_DATABASE_URL")
    if not url:
        raise SystemExit(
            "No database URL: set VERIFIER_DATABASE_URL, or use `verifier db upgrade` "
            "(which also handles the embedded database)."
        )
    return normalise_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
