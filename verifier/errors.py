"""Typed errors of the service. Each knows its HTTP status and problem type (RFC 7807);
the API edge renders them as application/problem+json, the CLI as messages."""

from __future__ import annotations

from typing import Any


class VerifierError(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return f"urn:provenance-verifier:problem:{self.slug}"

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(VerifierError):
    pass


class UriTooLong(VerifierError):
    status, slug, title = 414, "uri-too-long", "Query too long; use POST"


class NotImplementedYet(VerifierError):
    status, slug, title = 501, "not-implemented", "Not implemented"


class PayloadTooLarge(VerifierError):
    status, slug, title = 413, "payload-too-large", "Upload exceeds the byte limit"


class ImageTooLarge(VerifierError):
    status, slug, title = 413, "image-too-large", "Image exceeds the pixel limit"


class NotAnImage(VerifierError):
    status, slug, title = 415, "not-an-image", "Not a supported image"


class CorruptImage(VerifierError):
    status, slug, title = 422, "corrupt-image", "Image is truncated or corrupt"


class InvalidManifest(VerifierError):
    status, slug, title = 422, "invalid-manifest", "C2PA manifest does not validate"


class UnreadableManifest(VerifierError):
    status, slug, title = 422, "unreadable-manifest", "C2PA data could not be read"


class UnsignedOriginal(VerifierError):
    status, slug, title = 422, "unsigned-original", "Original carries no C2PA manifest"


class Unauthorized(VerifierError):
    status, slug, title = 401, "unauthorized", "Missing or unknown API key"


class Forbidden(VerifierError):
    status, slug, title = 403, "forbidden", "API key lacks the required scope"


class NotFound(VerifierError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(VerifierError):
    status, slug, title = 409, "conflict", "Conflict"


class SignerNotEnrolled(VerifierError):
    """The original is signed, but not with a key its publisher enrolled."""

    status, slug, title = 403, "signer-not-enrolled", "Signed by a certificate the publisher has not enrolled"


class UntrustedSigner(VerifierError):
    """The deployment requires originals signed under its trust anchors."""

    status, slug, title = 403, "untrusted-signer", "Signer does not chain to a configured trust anchor"


class AlreadyRegistered(VerifierError):
    """The same content is registered by another publisher, and the new manifest does not
    declare it as an ingredient."""

    status, slug, title = 409, "already-registered", "Same content is registered by another publisher"


class TooManyRequests(VerifierError):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class Overloaded(VerifierError):
    """Every worker is busy and the short queue is full: come back later, rather than wait
    in an unbounded queue that holds memory."""

    status, slug, title = 503, "overloaded", "Service busy"


class RequestTimeout(VerifierError):
    status, slug, title = 408, "request-timeout", "Request body not received in time"


class DatabaseUnavailable(VerifierError):
    status, slug, title = 503, "database-unavailable", "Database unavailable"
