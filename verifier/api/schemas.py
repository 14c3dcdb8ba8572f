"""Response models of the public API (the OpenAPI document is generated from these)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field

from verifier.storage.models import Original


class PublisherRef(BaseModel):
    id: uuid.UUID
    name: str


class C2paRecord(BaseModel):
    """The C2PA outcome recorded when the original was registered."""

    present: bool
    state: str | None = Field(None, description="Valid or Trusted (Invalid originals are refused).")
    failure_codes: list[str] = []
    informational_codes: list[str] = []
    active_manifest_label: str | None = None
    signer: dict[str, Any] | None = None
    manifest_store_bytes: int | None = Field(None, description="Size of the stored raw manifest store.")


class OriginalOut(BaseModel):
    id: uuid.UUID
    publisher: PublisherRef
    sha256: str
    mime: str
    width: int
    height: int
    size_bytes: int
    title: str | None
    caption: str | None
    source_url: str | None
    created_at: dt.datetime
    derived_from: uuid.UUID | None = Field(
        None, description="Another publisher's original that this one's manifest declares as an ingredient."
    )
    c2pa: C2paRecord

    @classmethod
    def of(cls, o: Original) -> OriginalOut:
        codes = o.status_codes or {}
        return cls(
            id=o.id,
            publisher=PublisherRef(id=o.publisher.id, name=o.publisher.name),
            sha256=o.sha256,
            mime=o.mime,
            width=o.width,
            height=o.height,
            size_bytes=o.size_bytes,
            title=o.title,
            caption=o.caption,
            source_url=o.source_url,
            created_at=o.created_at,
            derived_from=o.derived_from,
            c2pa=C2paRecord(
                present=o.validation_state is not None,
                state=o.validation_state,
                failure_codes=codes.get("failure", []),
                informational_codes=codes.get("informational", []),
                active_manifest_label=o.active_manifest_label,
                signer=o.signer,
                manifest_store_bytes=len(o.manifest_store) if o.manifest_store else None,
            ),
        )


class OriginalList(BaseModel):
    items: list[OriginalOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class Problem(BaseModel):
    """RFC 7807 problem details (served as application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class BatchItemOut(BaseModel):
    index: int = Field(description="Position of the file in the request.")
    status: int = Field(description="201 registered, 200 already registered by this publisher, else the refusal's status.")
    original: OriginalOut | None = None
    problem: dict[str, Any] | None = Field(None, description="The refusal as problem+json would carry it.")


class BatchOut(BaseModel):
    results: list[BatchItemOut]
    created: int
    existing: int
    refused: int
