"""The trusted registry of originals: publisher ingest, lookup, listing and deletion.

Ingest decides what may enter (a whole image within the limits, a C2PA manifest that
validates, unless the deployment allows unsigned originals) and writes it in the order that
loses nothing in a crash (`storage.originals`: blob, then row). What search needs of an
original is prepared through the `Indexer` interface that `service.py` wires to matching;
the registry never imports matching.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from manifests import (
    ManifestError,
    ManifestSummary,
    RemoteManifestError,
    UnsupportedFormatError,
    ValidationState,
    read_manifest,
)
from verifier.errors import (
    BadRequest,
    InvalidManifest,
    UnreadableManifest,
    UnsignedOriginal,
)
from verifier.images import load_image
from verifier.settings import Settings, UnsignedPolicy
from verifier.storage.models import AuditEvent, Original
from verifier.storage.originals import OriginalStore, audit_event

log = logging.getLogger(__name__)


class Indexer(Protocol):
    """What provenance search needs to know about registered originals (matching implements it)."""

    def prepare(self, image: Image.Image) -> Any:
        """Slow, pure work on a new original (its embedding), done before any lock is taken."""

    def stage(self, session: Session, original_id: uuid.UUID, prepared: Any) -> Any:
        """Rows written in the registration's own transaction (its vector)."""

    def committed(self, original_id: uuid.UUID, image: Image.Image, staged: Any) -> None:
        """After the commit: make the original searchable (index, stage 2-3 views)."""

    def forget(self, original_id: uuid.UUID) -> None:
        """After a delete: the original must no longer be found."""


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
    def __init__(self, settings: Settings, store: OriginalStore, indexer: Indexer | None = None) -> None:
        self.settings = settings
        self.store = store
        self.indexer = indexer  # when set, originals are made searchable at ingest

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
        existing = self.store.find_by_sha256(info.sha256, publisher_id=publisher_id)
        if existing is not None:
            self.store.audit(_event("duplicate", actor, existing.id, info.sha256, None))
            return Registration(existing, created=False)

        summary = self._check_provenance(data, info.mime)
        metadata = metadata or OriginalMetadata()
        indexer = self.indexer
        prepared = indexer.prepare(image) if indexer is not None else None  # slow part, outside any lock
        original = Original(
            id=uuid.uuid4(),
            publisher_id=publisher_id,
            sha256=info.sha256,
            mime=info.mime,
            width=info.width,
            height=info.height,
            size_bytes=info.size_bytes,
            title=metadata.title or _manifest_title(summary),
            caption=metadata.caption,
            source_url=metadata.source_url,
            **_provenance_columns(summary),
        )
        event = _event("register", actor, original.id, info.sha256, {"state": original.validation_state})
        also = (lambda session: indexer.stage(session, original.id, prepared)) if indexer is not None else None
        with self.store.blob_lock(info.sha256):
            original.blob_key = self.store.blobs.put(data)
            try:
                staged = self.store.insert(original, event, also)
            except IntegrityError:
                # A concurrent request registered the same bytes first: answer like a duplicate.
                self.store.unlink_if_unreferenced(info.sha256, original.blob_key)
                existing = self.store.find_by_sha256(info.sha256, publisher_id=publisher_id)
                if existing is None:
                    raise
                return Registration(existing, created=False)
            except BaseException:
                self.store.unlink_if_unreferenced(info.sha256, original.blob_key)
                raise
        if indexer is not None:
            indexer.committed(original.id, image, staged)
        log.info("registered original %s (%s) for publisher %s", original.id, info.sha256[:12], publisher_id)
        return Registration(self.store.get(original.id), created=True)

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
        return self.store.get(original_id, publisher_id=publisher_id)

    def list(self, *, publisher_id: uuid.UUID | None, limit: int, offset: int) -> tuple[list[Original], int]:
        return self.store.list(publisher_id=publisher_id, limit=limit, offset=offset)

    # -- delete -------------------------------------------------------------------------

    def delete(self, original_id: uuid.UUID, publisher_id: uuid.UUID, *, api_key_id: uuid.UUID | None = None) -> None:
        """Delete one of the publisher's originals (others' are NotFound, not Forbidden,
        so that ids of other publishers' originals cannot be probed)."""
        actor = _Actor(publisher_id, api_key_id)
        original = self.store.get(original_id, publisher_id=publisher_id)
        with self.store.blob_lock(original.sha256):
            self.store.delete(original.id, _event("delete", actor, original.id, original.sha256, None))
            self.store.unlink_if_unreferenced(original.sha256, original.blob_key)
        if self.indexer is not None:
            self.indexer.forget(original.id)
        log.info("deleted original %s", original.id)


@dataclass(frozen=True)
class _Actor:
    publisher_id: uuid.UUID
    api_key_id: uuid.UUID | None


def _event(action: str, actor: _Actor, original_id: uuid.UUID | None, sha256: str | None, detail: dict[str, Any] | None) -> AuditEvent:
    return audit_event(action, actor.publisher_id, actor.api_key_id, original_id, sha256, detail)


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

