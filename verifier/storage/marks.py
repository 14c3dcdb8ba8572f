"""Publishers' marks: the watermarks, credit lines and logos a publisher overlays on its photos,
enrolled by an operator so that the matcher never counts a query's keypoints on them as evidence
(`matching.marks`, `simprov.marks`; BENCHMARKS.md, "Publisher marks"). This module keeps the
files; whether a file can serve as a mark is matching's to say (`matching.marks.model_of`),
before `add_mark`.

An operator's act, like enrolling a signer: a mark changes what every verification sees, so a
publisher key may list its own marks but not add or remove them.
"""

from __future__ import annotations

import hashlib
import io
import uuid

from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from verifier.errors import Conflict, NotFound
from verifier.storage.models import Publisher, PublisherMark

MAX_MARKS_PER_PUBLISHER = 16


def add_mark(session: Session, publisher_id: uuid.UUID, data: bytes, label: str | None = None) -> PublisherMark:
    """`data` already checked (`matching.marks.model_of`); the same file again returns its row,
    also when another request enrols it at the same moment (the unique constraint decides)."""
    if session.get(Publisher, publisher_id) is None:
        raise NotFound(f"no publisher {publisher_id}")
    sha = hashlib.sha256(data).hexdigest()
    existing = _find(session, publisher_id, sha)
    if existing is not None:
        return existing
    n = session.scalar(select(func.count()).select_from(PublisherMark).where(PublisherMark.publisher_id == publisher_id))
    if (n or 0) >= MAX_MARKS_PER_PUBLISHER:
        raise Conflict(f"a publisher holds at most {MAX_MARKS_PER_PUBLISHER} marks; remove one first")
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
    row = PublisherMark(id=uuid.uuid4(), publisher_id=publisher_id, sha256=sha, image=data, width=width,
                        height=height, label=label)
    try:
        with session.begin_nested():  # a savepoint: a clash rolls back this insert, not the caller's work
            session.add(row)
    except IntegrityError:
        existing = _find(session, publisher_id, sha)  # committed by the request that won
        if existing is None:
            raise
        return existing
    return row


def _find(session: Session, publisher_id: uuid.UUID, sha: str) -> PublisherMark | None:
    return session.scalar(select(PublisherMark).where(PublisherMark.publisher_id == publisher_id,
                                                      PublisherMark.sha256 == sha))


def marks_of(session: Session, publisher_id: uuid.UUID) -> list[PublisherMark]:
    stmt = select(PublisherMark).where(PublisherMark.publisher_id == publisher_id)
    return list(session.scalars(stmt.order_by(PublisherMark.created_at, PublisherMark.id)))


def remove_mark(session: Session, publisher_id: uuid.UUID, mark_id: uuid.UUID) -> None:
    row = session.scalar(select(PublisherMark).where(PublisherMark.id == mark_id,
                                                     PublisherMark.publisher_id == publisher_id))
    if row is None:
        raise NotFound(f"no mark {mark_id} for this publisher")
    session.delete(row)


def mark_ids(session: Session) -> frozenset[uuid.UUID]:
    """Every enrolled mark's id: what the matcher compares to know its set is current."""
    return frozenset(session.scalars(select(PublisherMark.id)))


def rows_with_publisher(session: Session, ids: set[uuid.UUID] | frozenset[uuid.UUID]) -> list[tuple[PublisherMark, str]]:
    """The marks `ids`, each with its publisher's name, oldest first."""
    if not ids:
        return []
    stmt = (select(PublisherMark, Publisher.name).join(Publisher, Publisher.id == PublisherMark.publisher_id)
            .where(PublisherMark.id.in_(list(ids))).order_by(PublisherMark.created_at, PublisherMark.id))
    return [(row, name) for row, name in session.execute(stmt)]
