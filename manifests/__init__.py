"""C2PA (Content Credentials): read, validate and sign manifests with c2pa-python.

This package knows C2PA and nothing else: no database, no HTTP. Everything is read through
`c2pa.Reader` with settings passed per call through a `c2pa.Context`, so two trust
configurations can coexist in one process.
"""

from manifests.errors import (
    MalformedManifestError,
    ManifestError,
    RemoteManifestError,
    UnsupportedFormatError,
)
from manifests.reader import read_manifest
from manifests.summary import (
    Action,
    IngredientSummary,
    ManifestInfo,
    ManifestSummary,
    SignerInfo,
    StatusCode,
    StatusCodes,
    ValidationState,
)
from manifests.trust import TrustConfig

__all__ = [
    "Action",
    "IngredientSummary",
    "MalformedManifestError",
    "ManifestError",
    "ManifestInfo",
    "ManifestSummary",
    "RemoteManifestError",
    "SignerInfo",
    "StatusCode",
    "StatusCodes",
    "TrustConfig",
    "UnsupportedFormatError",
    "ValidationState",
    "read_manifest",
]
