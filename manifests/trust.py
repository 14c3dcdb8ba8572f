"""Trust configuration for C2PA validation, turned into a per-call `c2pa.Context`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509

from manifests.signer import anchored_by

MANIFEST_TRUST_URI = "urn:provenance-verifier:trust:manifest"
TSA_TRUST_URI = "urn:provenance-verifier:trust:tsa"


@dataclass(frozen=True)
class TrustConfig:
    """What the validator trusts.

    With no anchors, c2pa validates signatures but reports every signer as
    `signingCredential.untrusted` (state `Valid`, never `Trusted`).

    `remote_manifest_fetch` is off by default: a verification service must not make
    outbound requests to URLs chosen by whoever uploaded the file (SSRF), and the
    deployment may have no network at all.
    """

    trust_anchors_pem: str | None = None
    allowed_list_pem: str | None = None
    trust_config: str | None = None  # EKU OIDs, one per line (c2pa `trust.trust_config`)
    tsa_anchors_pem: str | None = None  # roots of time-stamping authorities only
    extra_settings: dict[str, Any] = field(default_factory=dict)
    remote_manifest_fetch: bool = False

    @classmethod
    def from_files(
        cls,
        *,
        trust_anchors: Path | None = None,
        allowed_list: Path | None = None,
        trust_config: Path | None = None,
        c2pa_settings: Path | None = None,
        remote_manifest_fetch: bool = False,
        tsa_trust_anchors: Path | None = None,
    ) -> TrustConfig:
        """Build from files; `c2pa_settings` is a full c2pa settings JSON (its values are
        overridden by the individual files when both are given)."""
        extra: dict[str, Any] = {}
        if c2pa_settings is not None:
            extra = json.loads(Path(c2pa_settings).read_text())
        return cls(
            trust_anchors_pem=_read(trust_anchors),
            allowed_list_pem=_read(allowed_list),
            trust_config=_read(trust_config),
            tsa_anchors_pem=_read(tsa_trust_anchors),
            extra_settings=extra,
            remote_manifest_fetch=remote_manifest_fetch,
        )

    def to_c2pa_settings(self) -> dict[str, Any]:
        """The SDK's settings. Anchors and the allowed list go into a `trust.anchors[]` entry
        of kind `manifest`: c2pa-rs 0.91 silently ignores a flat `trust.allowed_list` (an
        allowed signer stayed `signingCredential.untrusted`; tests/test_manifests.py proves
        the entry takes effect). The SDK pools anchor kinds, so this entry would also trust a
        time-stamping authority under these roots."""
        settings: dict[str, Any] = json.loads(json.dumps(self.extra_settings))  # deep copy
        settings.setdefault("version", 1)
        trust = settings.setdefault("trust", {})
        if self.trust_anchors_pem or self.allowed_list_pem:
            entry: dict[str, Any] = {"trust_kind": "manifest", "trust_uri": MANIFEST_TRUST_URI,
                                     "trust_anchors": self.trust_anchors_pem or ""}
            if self.allowed_list_pem:
                entry["allowed_list"] = self.allowed_list_pem
            trust.setdefault("anchors", []).append(entry)
        if self.tsa_anchors_pem:
            trust.setdefault("anchors", []).append(
                {"trust_kind": "tsa", "trust_uri": TSA_TRUST_URI, "trust_anchors": self.tsa_anchors_pem})
        if self.trust_config:
            trust["trust_config"] = self.trust_config
        if not trust:
            del settings["trust"]
        verify = settings.setdefault("verify", {})
        verify["remote_manifest_fetch"] = self.remote_manifest_fetch
        return settings

    def claim_signer_anchored(self, chain: list[x509.Certificate]) -> bool | None:
        """Whether a claim signer's chain (leaf first) ends at one of *our manifest* anchors or
        is on the allowed list, checked here because the SDK pools anchor kinds (a TSA root
        would also trust claim signers). None: we configured no manifest trust to judge by.
        Anchors inside `extra_settings` (a full c2pa settings file) are not consulted here."""
        if not (self.trust_anchors_pem or self.allowed_list_pem):
            return None
        return anchored_by(chain, [*_certs(self.allowed_list_pem), *_certs(self.trust_anchors_pem)]) is not None

    def context(self) -> c2pa.Context:
        """A fresh c2pa Context; callers close it (it is a native resource)."""
        return c2pa.Context.from_dict(self.to_c2pa_settings())

    @property
    def has_anchors(self) -> bool:
        trust = self.to_c2pa_settings().get("trust", {})
        entries = trust.get("anchors") or []
        return bool(trust.get("trust_anchors") or trust.get("allowed_list")
                    or any(e.get("trust_anchors") or e.get("allowed_list") for e in entries if isinstance(e, dict)))


def _certs(pem: str | None) -> list[x509.Certificate]:
    if not pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []


def _read(path: Path | None) -> str | None:
    return None if path is None else Path(path).read_text()
