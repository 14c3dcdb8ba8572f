"""API keys: generated once, shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from enum import Enum

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.errors import Conflict, Forbidden, NotFound, Unauthorized
from verifier.storage.models import ApiKey, Publisher

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class Scope(str, Enum):
    PUBLISHER = "publisher"  # registers and manages its own originals
    VERIFIER = "verifier"  # fact-checkers: verification and read-only registry access
    ADMIN = "admin"  # operators: publishers' signing identities


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_key(session: Session, scope: Scope, publisher: Publisher | None = None, label: str | None = None,
              expires_at: dt.datetime | None = None) -> tuple[ApiKey, str]:
    if (scope is Scope.PUBLISHER) != (publisher is not None):
        raise ValueError("publisher keys need a publisher; verifier and admin keys must not have one")
    plaintext = f"pv_{scope.value[:3]}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        key_hash=hash_key(plaintext),
        prefix=plaintext[:12],
        scope=scope.value,
        publisher_id=publisher.id if publisher else None,
        label=label,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return key, plaintext


def create_publisher(session: Session, name: str) -> tuple[Publisher, str]:
    """A new publisher and its first key (plaintext returned once, never stored)."""
    name = name.strip()
    if not name:
        raise ValueError("publisher name must not be empty")
    if session.scalar(select(Publisher).where(Publisher.name == name)) is not None:
        raise Conflict(f"a publisher named {name!r} already exists")
    publisher = Publisher(id=uuid.uuid4(), name=name)
    session.add(publisher)
    session.flush()
    _, plaintext = issue_key(session, Scope.PUBLISHER, publisher, label="initial")
    return publisher, plaintext


def find_publisher(session: Session, name: str) -> Publisher | None:
    return session.scalar(select(Publisher).where(Publisher.name == name))


def list_publishers(session: Session) -> list[Publisher]:
    return list(session.scalars(select(Publisher).order_by(Publisher.created_at)))


def authenticate(session: Session, authorization: str | None) -> ApiKey:
    """Resolve an `Authorization: Bearer <key>` header to a live key."""
    if not authorization:
        raise Unauthorized("send `Authorization: Bearer <api key>`")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be `Bearer <api key>`")
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token.strip())))
    now = dt.datetime.now(dt.UTC)
    if key is None or key.revoked_at is not None:
        raise Unauthorized("unknown or revoked API key")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("this API key has expired")
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now  # at most one write per key and minute, not one per request
        session.flush()  # callers may detach the key before their session commits
    return key


def list_keys(session: Session, publisher: Publisher | None = None) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if publisher is not None:
        stmt = stmt.where(ApiKey.publisher_id == publisher.id)
    return list(session.scalars(stmt))


def revoke_key(session: Session, key_id: uuid.UUID) -> ApiKey:
    """From now on the key gets 401; the row stays (the audit log names it)."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = dt.datetime.now(dt.UTC)
    return key


def require_scope(key: ApiKey, *scopes: Scope) -> None:
    if key.scope not in {s.value for s in scopes}:
        raise Forbidden(f"this endpoint needs a {' or '.join(s.value for s in scopes)} key; this key is {key.scope}")
