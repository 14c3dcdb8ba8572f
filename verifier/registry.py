"""The trusted registry of originals: publisher ingest, lookup, listing and deletion.

Every write follows one order so that a crash loses nothing: the blob is written
(atomically, content-addressed) before the row that points at it is committed, and a blob
is unlinked only after the last row pointing at it is gone. A per-sha256 PostgreSQL
advisory lock serialises the two so that a delete never removes a blob that a concurrent
registration is about to reference.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from manifests import (
    ManifestError,
    ManifestSummary,
    RemoteManifestError,
    UnsupportedFormatError,
    ValidationState,
    read_manifest,
)
from verifier.blobs import BlobStore
from verifier.db import Database
from verifier.db.models import AuditEvent, Original
from verifier.errors import (
    BadRequest,
    InvalidManifest,
    NotFound,
    UnreadableManifest,
    UnsignedOriginal,
)
from verifier.images import load_image
from verifier.search import ProvenanceSearch
from verifier.settings import Settings, UnsignedPolicy
from verifier.views import CandidateViews

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OriginalMetadata:
    title: str | None = None
    caption: str | None = None
    source_url: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> OriginalMetadata:
        raw = raw or {}
        unknown = set(raw) - {"title", "caption", "source_url"}
        if unknown:
            raise BadRequest(f"unknown metadata fields: {', '.join(sorted(unknown))}")
        values: dict[str, str | None] = {}
        for name in ("title", "caption", "source_url"):
            value = raw.get(name)
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"metadata.{name} must be a string")
            if value is not None and len(value) > 10_000:
                raise BadRequest(f"metadata.{name} is too long")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class Registration:
    original: Original
    created: bool  # False: the same publisher had already registered these bytes


class Registry:
    def __init__(self, settings: Settings, db: Database, search: ProvenanceSearch | None = None, views: CandidateViews | None = None) -> None:
        self.settings = settings
        self.db = db
        self.blobs = BlobStore(settings.blob_dir)
        self.search = search  # when set, originals are embedded and indexed at ingest
        self.views = views  # when set, stage 2-3 data of each original is prepared at ingest

    # -- ingest -------------------------------------------------------------------------

    def register(
        self,
        data: bytes,
        publisher_id: uuid.UUID,
        metadata: OriginalMetadata | None = None,
        *,
        api_key_id: uuid.UUID | None = None,
    ) -> Registration:
        """Validate and store an original for a publisher; raise a VerifierError on refusal.

        `api_key_id` is recorded in the audit log (None when registered from the CLI)."""
        actor = _Actor(publisher_id, api_key_id)
        info, image = load_image(data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_image_pixels)
        existing = self._find(publisher_id, info.sha256)
        if existing is not None:
            self._audit_only("duplicate", actor, existing.id, info.sha256)
            return Registration(existing, created=False)

        summary = self._check_provenance(data, info.mime)
        metadata = metadata or OriginalMetadata()
        vector = self.search.embed(image) if self.search else None  # slow part, outside any lock
        embedding = None
        with self._blob_lock(info.sha256):
            blob_key = self.blobs.put(data)
            try:
                with self.db.session() as session:
                    original = Original(
                        id=uuid.uuid4(),
                        publisher_id=publisher_id,
                        sha256=info.sha256,
                        mime=info.mime,
                        width=info.width,
                        height=info.height,
                        size_bytes=info.size_bytes,
                        blob_key=blob_key,
                        title=metadata.title or _manifest_title(summary),
                        caption=metadata.caption,
                        source_url=metadata.source_url,
                        **_provenance_columns(summary),
                    )
                    session.add(original)
                    session.flush()
                    if self.search is not None and vector is not None:
                        embedding = self.search.stage(session, original.id, vector)
                    session.add(_event("register", actor, original.id, info.sha256, {"state": original.validation_state}))
            except IntegrityError:
                # A concurrent request registered the same bytes first: answer like a duplicate.
                self._unlink_if_unreferenced(info.sha256, blob_key)
                existing = self._find(publisher_id, info.sha256)
                if existing is None:
                    raise
                return Registration(existing, created=False)
            except BaseException:
                self._unlink_if_unreferenced(info.sha256, blob_key)
                raise
        if embedding is not None and vector is not None:
            self.search.commit_added(embedding, vector)  # type: ignore[union-attr]
        if self.views is not None:
            try:
                self.views.put(original.id, image)
            except OSError as exc:  # derived data: recomputed on first use
                log.warning("could not cache the view of %s: %s", original.id, exc)
        log.info("registered original %s (%s) for publisher %s", original.id, info.sha256[:12], publisher_id)
        return Registration(self.get(original.id), created=True)

    def _check_provenance(self, data: bytes, mime: str) -> ManifestSummary:
        try:
            summary = read_manifest(data, trust=self.settings.trust, mime=mime)
        except UnsupportedFormatError:
            summary = ManifestSummary.absent()
        except RemoteManifestError as exc:
            raise UnreadableManifest(
                "the manifest is stored remotely and remote manifests are not fetched; "
                "embed the manifest in the image",
                remote_url=exc.url,
            ) from exc
        except ManifestError as exc:
            raise UnreadableManifest(f"the C2PA data cannot be read: {exc}") from exc
        if not summary.present:
            if self.settings.unsigned_originals is UnsignedPolicy.ALLOW:
                return summary
            raise UnsignedOriginal(
                "originals must carry a C2PA manifest (Content Credentials); "
                "this deployment does not accept unsigned originals"
            )
        if summary.state is ValidationState.INVALID:
            raise InvalidManifest(
                "the C2PA manifest does not validate",
                failure_codes=summary.failure_codes,
            )
        return summary

    # -- read ---------------------------------------------------------------------------

    def get(self, original_id: uuid.UUID, *, publisher_id: uuid.UUID | None = None) -> Original:
        """Fetch one original; with `publisher_id`, only that publisher's (else NotFound)."""
        with self.db.session() as session:
            stmt = select(Original).where(Original.id == original_id)
            if publisher_id is not None:
                stmt = stmt.where(Original.publisher_id == publisher_id)
            original = session.scalar(stmt)
            if original is None:
                raise NotFound(f"no original {original_id}")
            _ = original.publisher.name  # load before the session closes
            return original

    def list(
        self, *, publisher_id: uuid.UUID | None, limit: int, offset: int
    ) -> tuple[list[Original], int]:
        with self.db.session() as session:
            stmt = select(Original)
            count = select(func.count()).select_from(Original)
            if publisher_id is not None:
                stmt = stmt.where(Original.publisher_id == publisher_id)
                count = count.where(Original.publisher_id == publisher_id)
            rows = list(session.scalars(stmt.order_by(Original.created_at.desc(), Original.id).limit(limit).offset(offset)))
            for row in rows:
                _ = row.publisher.name
            return rows, int(session.scalar(count) or 0)

    def find_by_sha256(self, sha256: str) -> Original | None:
        """The earliest registration of exactly these bytes, by any publisher."""
        with self.db.session() as session:
            original = session.scalar(
                select(Original).where(Original.sha256 == sha256).order_by(Original.created_at, Original.id).limit(1)
            )
            if original is not None:
                _ = original.publisher.name
            return original

    def original_bytes(self, original: Original) -> bytes:
        return self.blobs.get(original.blob_key)

    # -- delete -------------------------------------------------------------------------

    def delete(self, original_id: uuid.UUID, publisher_id: uuid.UUID, *, api_key_id: uuid.UUID | None = None) -> None:
        """Delete one of the publisher's originals (others' are NotFound, not Forbidden,
        so that ids of other publishers' originals cannot be probed)."""
        actor = _Actor(publisher_id, api_key_id)
        original = self.get(original_id, publisher_id=publisher_id)
        with self._blob_lock(original.sha256):
            with self.db.session() as session:
                row = session.get(Original, original.id)
                if row is None:
                    raise NotFound(f"no original {original_id}")
                session.delete(row)
                session.add(_event("delete", actor, original.id, original.sha256, None))
            self._unlink_if_unreferenced(original.sha256, original.blob_key)
        if self.search is not None:
            self.search.forget(original.id)
        if self.views is not None:
            self.views.forget(original.id)
        log.info("deleted original %s", original.id)

    # -- helpers ------------------------------------------------------------------------

    def _find(self, publisher_id: uuid.UUID, sha256: str) -> Original | None:
        with self.db.session() as session:
            original = session.scalar(
                select(Original).where(Original.publisher_id == publisher_id, Original.sha256 == sha256)
            )
            if original is not None:
                _ = original.publisher.name
            return original

    def _audit_only(self, action: str, actor: _Actor, original_id: uuid.UUID, sha256: str) -> None:
        with self.db.session() as session:
            session.add(_event(action, actor, original_id, sha256, None))

    def _unlink_if_unreferenced(self, sha256: str, blob_key: str) -> None:
        with self.db.session() as session:
            refs = session.scalar(select(func.count()).select_from(Original).where(Original.sha256 == sha256))
        if not refs:
            self.blobs.delete(blob_key)

    @contextmanager
    def _blob_lock(self, sha256: str) -> Iterator[None]:
        lock_id = int(sha256[:15], 16)  # fits a signed bigint
        with self.db.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()


@dataclass(frozen=True)
class _Actor:
    publisher_id: uuid.UUID
    api_key_id: uuid.UUID | None


def _event(action: str, actor: _Actor, original_id: uuid.UUID | None, sha256: str | None, detail: dict[str, Any] | None) -> AuditEvent:
    return AuditEvent(
        action=action,
        publisher_id=actor.publisher_id,
        api_key_id=actor.api_key_id,
        original_id=original_id,
        sha256=sha256,
        detail=detail,
    )


def _manifest_title(summary: ManifestSummary) -> str | None:
    return summary.active_manifest.title if summary.active_manifest else None


def _provenance_columns(summary: ManifestSummary) -> dict[str, Any]:
    if not summary.present:
        return {}
    active = summary.active_manifest
    return {
        "manifest_store": summary.manifest_store,
        "manifest_json": summary.manifest_json,
        "validation_state": summary.state.value if summary.state else None,
        "status_codes": {
            "success": sorted({c.code for c in summary.codes.success}),
            "informational": summary.informational_codes,
            "failure": summary.failure_codes,
        },
        "active_manifest_label": active.label if active else None,
        "signer": (
            {
                "issuer": active.signer.issuer,
                "common_name": active.signer.common_name,
                "signing_time": active.signer.signing_time,
                "alg": active.signer.alg,
            }
            if active
            else None
        ),
    }

