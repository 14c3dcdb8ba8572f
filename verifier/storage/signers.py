"""Publishers' signing identities: the certificates (or issuing CAs) a publisher signs its
originals with, enrolled by an operator, matched by key at ingest.

Matching is by key, never by name: a claim signer matches an enrolled certificate when one
of the certificates in its chain has the same SPKI SHA-256, or when the top of its chain
was issued (signature checked) by an enrolled CA certificate.
"""

from __future__ import annotations

import datetime as dt
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from manifests.signer import anchored_by, identity_of
from verifier.errors import BadRequest, Conflict, NotFound
from verifier.storage.models import PublisherSigner

MAX_PEM_BYTES = 64 * 1024


def parse_certificate(pem: bytes) -> x509.Certificate:
    """One PEM (or DER) certificate from an operator's file or an admin request."""
    if len(pem) > MAX_PEM_BYTES:
        raise BadRequest(f"a certificate is at most {MAX_PEM_BYTES} bytes")
    try:
        certs = x509.load_pem_x509_certificates(pem) if b"-----BEGIN" in pem else [x509.load_der_x509_certificate(pem)]
    except ValueError as exc:
        raise BadRequest(f"not an X.509 certificate: {exc}") from exc
    if len(certs) != 1:
        raise BadRequest(f"expected one certificate, found {len(certs)}; enroll each separately")
    return certs[0]


def enroll(session: Session, publisher_id: uuid.UUID, cert: x509.Certificate, label: str | None = None) -> PublisherSigner:
    ident = identity_of(cert)
    existing = session.scalar(select(PublisherSigner).where(PublisherSigner.spki_sha256 == ident.spki_sha256))
    if existing is not None:
        if existing.publisher_id == publisher_id:
            return existing
        raise Conflict("this signing key is enrolled by another publisher", spki_sha256=ident.spki_sha256)

    row = PublisherSigner(
        id=uuid.uuid4(),
        publisher_id=publisher_id,
        spki_sha256=ident.spki_sha256,
        subject=ident.subject,
        issuer=ident.issuer,
        serial_number=ident.serial_number[:64],
        is_ca=ident.is_ca,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        label=label,
    )
    session.add(row)
    session.flush()
    return row


def signers_of(session: Session, publisher_id: uuid.UUID) -> list[PublisherSigner]:
    stmt = select(PublisherSigner).where(PublisherSigner.publisher_id == publisher_id)
    return list(session.scalars(stmt.order_by(PublisherSigner.created_at, PublisherSigner.id)))


def remove(session: Session, publisher_id: uuid.UUID, signer_id: uuid.UUID) -> None:
    row = session.scalar(
        select(PublisherSigner).where(PublisherSigner.id == signer_id, PublisherSigner.publisher_id == publisher_id)
    )
    if row is None:
        raise NotFound(f"no enrolled signer {signer_id} for this publisher")
    session.delete(row)


def matching_signer(enrolled: list[PublisherSigner], chain: list[x509.Certificate]) -> PublisherSigner | None:
    """The enrolled identity that `chain` (leaf first, as validated by c2pa) belongs to."""
    certs = [x509.load_pem_x509_certificate(s.certificate_pem.encode()) for s in enrolled]
    hit = anchored_by(chain, certs)
    return None if hit is None else enrolled[certs.index(hit)]


def describe(s: PublisherSigner) -> dict[str, str | bool]:
    return {"id": str(s.id), "subject": s.subject, "issuer": s.issuer, "spki_sha256": s.spki_sha256, "is_ca": s.is_ca,
            "not_after": s.not_after.astimezone(dt.UTC).isoformat()}
