"""SQLAlchemy 2 ORM schema. The tables themselves are created only by Alembic migrations."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def _now_column() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Publisher(Base):
    __tablename__ = "publishers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    created_at: Mapped[dt.datetime] = _now_column()

    originals: Mapped[list[Original]] = relationship(back_populates="publisher")


class ApiKey(Base):
    """An API key. Only its SHA-256 is stored: keys are 256-bit random, so a fast hash is
    enough (no dictionary to attack), and lookups stay a single indexed equality."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("scope IN ('publisher', 'verifier', 'admin')", name="ck_api_keys_scope"),
        CheckConstraint(
            "(scope = 'publisher') = (publisher_id IS NOT NULL)", name="ck_api_keys_publisher_scope"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("publishers.id", ondelete="CASCADE"), nullable=True, index=True
    )
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _now_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    publisher: Mapped[Publisher | None] = relationship()


class PublisherSigner(Base):
    """A certificate a publisher signs its originals with (or the CA that issues them),
    identified by its key (SPKI SHA-256): names can be copied, keys cannot. A key belongs
    to one publisher, so nobody can enroll another publisher's certificate as their own."""

    __tablename__ = "publisher_signers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("publishers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    spki_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    issuer: Mapped[str] = mapped_column(Text, nullable=False)
    serial_number: Mapped[str] = mapped_column(String(64), nullable=False)
    is_ca: Mapped[bool] = mapped_column(Boolean, nullable=False)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _now_column()


class PublisherMark(Base):
    """A publisher's mark (watermark, credit line, logo) as it overlays its photos, enrolled by an
    operator: the matcher never counts a query's keypoints on it as evidence (`simprov.marks`)."""

    __tablename__ = "publisher_marks"
    __table_args__ = (UniqueConstraint("publisher_id", "sha256", name="uq_publisher_marks_image"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("publishers.id", ondelete="CASCADE"), nullable=False, index=True
    )
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    image: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # the file as uploaded (PNG/WebP keep alpha)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = _now_column()


class Job(Base):
    """Heavy work a request asked for and a client polls (`storage.jobs`, `verifier.jobs`): queued here so
    that no HTTP request holds a worker for it, and so that any process can run it and any can answer."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="ck_jobs_state"),
        Index("ix_jobs_pending", "state", "created_at"),
        Index("ix_jobs_publisher_kind", "publisher_id", "kind", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("publishers.id", ondelete="CASCADE"), nullable=True
    )
    requested_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claim: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # who runs it now (one token per claim)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _now_column()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # a problem+json body


class Original(Base):
    """A registered original: the exact bytes (in the blob store) and its C2PA provenance."""

    __tablename__ = "originals"
    __table_args__ = (UniqueConstraint("publisher_id", "sha256", name="uq_originals_publisher_sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    publisher_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("publishers.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    mime: Mapped[str] = mapped_column(String(100), nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    blob_key: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str | None] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text)
    # C2PA: the exact manifest store bytes, the reference JSON, and the validation outcome at ingest.
    manifest_store: Mapped[bytes | None] = mapped_column(LargeBinary)
    manifest_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    validation_state: Mapped[str | None] = mapped_column(String(16))
    status_codes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    active_manifest_label: Mapped[str | None] = mapped_column(Text, index=True)
    signer: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A declared derivative: its manifest lists this (another publisher's) original as an ingredient.
    derived_from: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("originals.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[dt.datetime] = _now_column()

    publisher: Mapped[Publisher] = relationship(back_populates="originals")
    soft_bindings: Mapped[list[SoftBinding]] = relationship(
        back_populates="original", cascade="all, delete-orphan", passive_deletes=True)


class SoftBinding(Base):
    """A soft-binding value (watermark or fingerprint) from a registered original's manifest
    (`c2pa.soft-binding` assertions), for the Soft Binding Resolution API's exact lookup."""

    __tablename__ = "soft_bindings"
    __table_args__ = (Index("ix_soft_bindings_alg_value", "alg", "value"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    original_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("originals.id", ondelete="CASCADE"), nullable=False, index=True)
    alg: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)  # canonical base64
    scope: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # listed | deprecated | unknown (not on the algorithm list) | unchecked (no list configured)
    alg_status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = _now_column()

    original: Mapped[Original] = relationship(back_populates="soft_bindings")


class AuditEvent(Base):
    """Append-only ingest audit log: who registered, re-submitted or deleted what, and when."""

    __tablename__ = "ingest_audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = _now_column()
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    publisher_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    original_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    sha256: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class RegistryChange(Base):
    """The registry's change sequence, written by database triggers (migration 0008): a vector
    added (`add`, with its embedding id and model), an original deleted (`delete`), or the
    index rebuilt (`rebuild`). Every API process follows it, so that replicas agree."""

    __tablename__ = "registry_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = _now_column()
    action: Mapped[str] = mapped_column(String(8), nullable=False)
    original_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    embedding_id: Mapped[int | None] = mapped_column(BigInteger)
    model_id: Mapped[str | None] = mapped_column(String(100))


class Embedding(Base):
    """A stage-1 embedding of an original under one model. `id` is the FAISS id."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("original_id", "model_id", name="uq_embeddings_original_model"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    original_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("originals.id", ondelete="CASCADE"), nullable=False, index=True
    )
    model_id: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    vector: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # float32, little endian
    created_at: Mapped[dt.datetime] = _now_column()


class Report(Base):
    """A signed verification report, kept so that it can be fetched again by id."""

    __tablename__ = "reports"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    input_sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    verdict: Mapped[str] = mapped_column(String(32), nullable=False)
    matched_original_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    jws: Mapped[str] = mapped_column(Text, nullable=False)
    heatmap_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    heatmap_layer_png: Mapped[bytes | None] = mapped_column(LargeBinary)  # transparent, for overlays
    # What the overlay PNG is rendered from on its first request (not in the verify path):
    # the query at most 1024 px (JPEG) and the heat over it (8-bit grey PNG).
    heatmap_query_jpeg: Mapped[bytes | None] = mapped_column(LargeBinary)
    heatmap_heat_png: Mapped[bytes | None] = mapped_column(LargeBinary)
