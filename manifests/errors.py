"""Typed errors raised while reading C2PA data.

Callers map these to user-facing answers (HTTP 4xx, CLI JSON); none of them is a crash.
"""


class ManifestError(Exception):
    """Base class: the asset's C2PA data could not be read."""

    kind = "manifest_error"


class UnsupportedFormatError(ManifestError):
    """c2pa-python cannot parse this container format."""

    kind = "unsupported_format"


class RemoteManifestError(ManifestError):
    """The manifest lives at a remote URL that was not (or could not be) fetched."""

    kind = "remote_manifest_unavailable"

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class MalformedManifestError(ManifestError):
    """C2PA data is present but cannot be parsed (corrupt JUMBF, bad CBOR, ...)."""

    kind = "malformed_manifest"
