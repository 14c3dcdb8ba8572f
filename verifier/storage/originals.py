"""Registered originals in PostgreSQL, their bytes in the blob store, and the ingest audit log.

The crash-safety rules live here because they are about storage: a blob is written
(atomically, content-addressed) before the row that points at it is committed, and is
unlinked only after the last row pointing at it is gone; a per-sha256 PostgreSQL advisory
lock serialises the two, so a delete never removes a blob that a concurrent registration is
about to reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from PIL import Image
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from verifier.errors import NotFound
from verifier.images import load_stored
from verifier.storage.blobs import BlobStore
from verifier.storage.database import Database
from verifier.storage.models import AuditEvent, Original

T = TypeVar("T")


class OriginalStore:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    # -- read ---------------------------------------------------------------------------

    def get(self, original_id: uuid.UUID, *, publisher_id: uuid.UUID | None = None) -> Original:
        """One original (its publisher loaded); with `publisher_id`, only that publisher's."""
        with self.db.session() as session:
            stmt = select(Original).where(Original.id == original_id)
            if publisher_id is not None:
                stmt = stmt.where(Original.publisher_id == publisher_id)
            original = session.scalar(stmt)
            if original is None:
                raise NotFound(f"no original {original_id}")
            _ = original.publisher.name  # load before the session closes
            return original

    def list(self, *, publisher_id: uuid.UUID | None, limit: int, offset: int, title: str | None = None) -> tuple[list[Original], int]:
        """Newest first, and how many there are in all; `title`: only titles containing it (any case)."""
        with self.db.session() as session:
            stmt = select(Original)
            count = select(func.count()).select_from(Original)
            if publisher_id is not None:
                stmt = stmt.where(Original.publisher_id == publisher_id)
                count = count.where(Original.publisher_id == publisher_id)
            if title:
                pattern = "%" + title.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                stmt = stmt.where(Original.title.ilike(pattern, escape="\\"))
                count = count.where(Original.title.ilike(pattern, escape="\\"))
            rows = list(session.scalars(stmt.order_by(Original.created_at.desc(), Original.id).limit(limit).offset(offset)))
            for row in rows:
                _ = row.publisher.name
            return rows, int(session.scalar(count) or 0)

    def find_by_sha256(self, sha256: str, *, publisher_id: uuid.UUID | None = None) -> Original | None:
        """The earliest registration of exactly these bytes (by `publisher_id` if given)."""
        with self.db.session() as session:
            stmt = select(Original).where(Original.sha256 == sha256)
            if publisher_id is not None:
                stmt = stmt.where(Original.publisher_id == publisher_id)
            original = session.scalar(stmt.order_by(Original.created_at, Original.id).limit(1))
            if original is not None:
                _ = original.publisher.name
            return original

    def registered_digests(self, publisher_id: uuid.UUID, digests: list[str]) -> set[str]:
        """Which of these file digests the publisher has registered (a bulk job's resume)."""
        found: set[str] = set()
        with self.db.session() as session:
            for k in range(0, len(digests), 1000):
                stmt = select(Original.sha256).where(Original.publisher_id == publisher_id,
                                                     Original.sha256.in_(digests[k : k + 1000]))
                found.update(session.scalars(stmt))
        return found

    def all_by_sha256(self, sha256: str) -> list[Original]:
        """Every registration of exactly these bytes, earliest first."""
        with self.db.session() as session:
            stmt = select(Original).where(Original.sha256 == sha256).order_by(Original.created_at, Original.id)
            rows = list(session.scalars(stmt))
            for row in rows:
                _ = row.publisher.name
            return rows

    def read_bytes(self, original: Original) -> bytes:
        return self.blobs.get(original.blob_key)

    def image(self, original: Original, max_side: int | None = None) -> Image.Image:
        """The stored original decoded as at ingest (EXIF orientation applied, RGB): at full size, or
        at most `max_side` long the way ingest reduced it (`work_max_side`: what its vectors and
        view were computed from, so that anything recomputed from it is the same)."""
        return load_stored(self.read_bytes(original), original.width, original.height, max_side)

    # -- write --------------------------------------------------------------------------

    def insert(self, original: Original, event: AuditEvent, also: Callable[[Session], T] | None = None) -> T | None:
        """Commit the row, its audit event and whatever `also` adds, in one transaction.
        The caller has already put the blob (under `blob_lock`)."""
        with self.db.session() as session:
            session.add(original)
            session.flush()
            staged = also(session) if also is not None else None
            session.add(event)
        return staged

    def insert_many(self, rows: list[tuple[Original, AuditEvent, Callable[[Session], T] | None]]) -> list[T | None]:
        """`insert` for a batch, in one transaction: all rows or none."""
        staged: list[T | None] = []
        with self.db.session() as session:
            for original, event, also in rows:
                session.add(original)
                session.flush()
                staged.append(also(session) if also is not None else None)
                session.add(event)
        return staged

    def delete(self, original_id: uuid.UUID, event: AuditEvent) -> None:
        """Remove the row (its embeddings cascade) and record why, in one transaction."""
        with self.db.session() as session:
            row = session.get(Original, original_id)
            if row is None:
                raise NotFound(f"no original {original_id}")
            session.delete(row)
            session.add(event)

    def audit(self, event: AuditEvent) -> None:
        with self.db.session() as session:
            session.add(event)

    def unlink_if_unreferenced(self, sha256: str, blob_key: str) -> None:
        with self.db.session() as session:
            refs = session.scalar(select(func.count()).select_from(Original).where(Original.sha256 == sha256))
        if not refs:
            self.blobs.delete(blob_key)

    @contextmanager
    def blob_lock(self, sha256: str) -> Iterator[None]:
        """Serialise blob writes and unlinks of the same bytes across processes."""
        lock_id = int(sha256[:15], 16)  # fits a signed bigint
        with self.db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()


def audit_event(action: str, publisher_id: uuid.UUID | None, api_key_id: uuid.UUID | None,
                original_id: uuid.UUID | None, sha256: str | None, detail: dict[str, Any] | None) -> AuditEvent:
    return AuditEvent(action=action, publisher_id=publisher_id, api_key_id=api_key_id, original_id=original_id,
                      sha256=sha256, detail=detail)
