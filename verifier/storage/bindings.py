"""Soft-binding values of registered originals, and originals by manifest id: the tables
behind the C2PA Soft Binding Resolution API."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from verifier.storage.database import Database
from verifier.storage.models import Original, SoftBinding


class BindingStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def originals_with(self, alg: str, value: str, limit: int) -> list[Original]:
        """Originals whose manifest binds exactly this (alg, canonical base64 value), earliest
        registered first; only originals with a manifest id to answer with."""
        with self.db.session() as session:
            stmt = (select(Original).join(SoftBinding, SoftBinding.original_id == Original.id)
                    .where(SoftBinding.alg == alg, SoftBinding.value == value,
                           Original.active_manifest_label.is_not(None))
                    .order_by(Original.created_at, Original.id).distinct().limit(limit))
            return list(session.scalars(stmt))

    def by_manifest_id(self, manifest_id: str) -> Original | None:
        """The earliest registered original whose active manifest has this label."""
        with self.db.session() as session:
            stmt = (select(Original).where(Original.active_manifest_label == manifest_id)
                    .order_by(Original.created_at, Original.id).limit(1))
            return session.scalar(stmt)

    def labels(self, original_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Manifest ids of these originals (those registered unsigned have none)."""
        if not original_ids:
            return {}
        with self.db.session() as session:
            rows = session.execute(select(Original.id, Original.active_manifest_label)
                                   .where(Original.id.in_(original_ids), Original.active_manifest_label.is_not(None)))
            return {oid: label for oid, label in rows}

    def algorithms(self) -> list[str]:
        """Distinct algorithm ids the registry holds values for (deprecated ones excluded)."""
        with self.db.session() as session:
            return list(session.scalars(select(SoftBinding.alg).where(SoftBinding.alg_status != "deprecated")
                                        .distinct().order_by(SoftBinding.alg)))

    def of_original(self, original_id: uuid.UUID) -> list[SoftBinding]:
        with self.db.session() as session:
            return list(session.scalars(select(SoftBinding).where(SoftBinding.original_id == original_id)
                                        .order_by(SoftBinding.id)))
