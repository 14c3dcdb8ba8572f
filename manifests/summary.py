"""Typed summary of a C2PA manifest store, as the reference implementation reports it."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

# Trust in an identity assertion's credential: never lowers the claim signer's standing.
IDENTITY_TRUST_FAILURES = frozenset({"cawg.x509.credential.untrusted"})


class ValidationState(str, Enum):
    """c2pa-rs validation states: Invalid < Valid (signatures ok) < Trusted (signer anchored)."""

    INVALID = "Invalid"
    VALID = "Valid"
    TRUSTED = "Trusted"


@dataclass(frozen=True)
class StatusCode:
    code: str
    url: str | None = None
    explanation: str | None = None


@dataclass(frozen=True)
class StatusCodes:
    success: list[StatusCode] = field(default_factory=list)
    informational: list[StatusCode] = field(default_factory=list)
    failure: list[StatusCode] = field(default_factory=list)

    def failure_codes(self) -> list[str]:
        return sorted({c.code for c in self.failure})

    def informational_codes(self) -> list[str]:
        return sorted({c.code for c in self.informational})


@dataclass(frozen=True)
class Action:
    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None
    when: str | None = None


@dataclass(frozen=True)
class SignerInfo:
    issuer: str | None = None
    common_name: str | None = None
    signing_time: str | None = None
    alg: str | None = None
    cert_serial_number: str | None = None


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate as the validator decoded it (crJSON `certificateInfo`)."""

    subject: str | None = None  # RFC 4514-like DN, most significant first
    issuer: str | None = None
    serial: str | None = None  # hex
    not_before: str | None = None
    not_after: str | None = None


@dataclass(frozen=True)
class TimestampInfo:
    """The RFC 3161 time-stamp on the claim signature."""

    time: str | None
    tsa: CertificateInfo | None
    trusted: bool  # `timeStamp.trusted`: the TSA chains to an anchor
    codes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IdentityAssertion:
    """A CAWG identity assertion: who the claim says stands behind it, judged apart from the
    claim signer (it never lowers the claim's standing)."""

    label: str
    sig_type: str | None
    roles: list[str]
    issuer: str | None
    subject: str | None
    trusted: bool | None  # None: the validator said neither trusted nor untrusted
    codes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SoftBinding:
    """A `c2pa.soft-binding` assertion: a watermark or fingerprint the signer bound to the asset."""

    alg: str
    values: list[str]  # base64, one per block
    scopes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestInfo:
    label: str
    title: str | None
    claim_generator: str | None
    format: str | None
    instance_id: str | None
    signer: SignerInfo
    actions: list[Action] = field(default_factory=list)
    signer_certificate: CertificateInfo | None = None
    is_update_manifest: bool = False
    claim_version: int | None = None


@dataclass(frozen=True)
class IngredientSummary:
    """One ingredient with its own validation outcome.

    `state` is None when the ingredient carries no manifest (no provenance of its own).
    """

    title: str | None
    format: str | None
    relationship: str | None
    manifest_label: str | None
    state: ValidationState | None
    failure_codes: list[str] = field(default_factory=list)
    informational_codes: list[str] = field(default_factory=list)
    ingredients: list[IngredientSummary] = field(default_factory=list)


@dataclass(frozen=True)
class ManifestSummary:
    """What we know about an asset's Content Credentials.

    `present=False` means the asset has no C2PA data at all (e.g. metadata stripped).
    """

    present: bool
    state: ValidationState | None = None
    codes: StatusCodes = field(default_factory=StatusCodes)
    active_manifest: ManifestInfo | None = None
    manifests_count: int = 0
    ingredients: list[IngredientSummary] = field(default_factory=list)
    manifest_store: bytes | None = None
    manifest_json: dict[str, Any] | None = None
    embedded: bool = True
    remote_url: str | None = None
    # Our own check of the claim signer against the manifest anchors (None: not made).
    claim_anchored: bool | None = None
    # The manifest trust list that anchors the claim signer (our check), e.g.
    # {"uri", "name", "category"}; None when no configured list does.
    trust_list: dict[str, Any] | None = None
    sdk_trust_list_uri: str | None = None  # what the SDK names (its pooled lists)
    spec_version: str | None = None
    validation_time: str | None = None
    timestamp: TimestampInfo | None = None
    identity_assertions: list[IdentityAssertion] = field(default_factory=list)
    soft_bindings: list[SoftBinding] = field(default_factory=list)

    @classmethod
    def absent(cls) -> ManifestSummary:
        return cls(present=False)

    @property
    def failure_codes(self) -> list[str]:
        return self.codes.failure_codes()

    @property
    def claim_state(self) -> ValidationState | None:
        """The claim signer's standing, apart from identity assertions: the SDK's state drops
        to Valid when a CAWG identity credential is untrusted even though the claim signer is
        trusted (`signingCredential.trusted`); a verdict about who signed the claim must not."""
        if not self.present or self.state is None:
            return None
        if self.claim_anchored is False and self.state is not ValidationState.INVALID:
            return ValidationState.VALID  # trusted by the SDK only through a TSA (or other) root
        if self.state is ValidationState.VALID:
            success = {c.code for c in self.codes.success}
            others = [c for c in self.failure_codes if c not in IDENTITY_TRUST_FAILURES]
            if "signingCredential.trusted" in success and not others:
                return ValidationState.TRUSTED
        return self.state

    @property
    def ocsp(self) -> str | None:
        """The claim signer's revocation status: good, revoked, unknown (responder not
        reachable), skipped (not fetched) or None (nothing said)."""
        every = {c.code for c in [*self.codes.success, *self.codes.informational, *self.codes.failure]}
        for code, status in (("signingCredential.revoked", "revoked"), ("signingCredential.ocsp.revoked", "revoked"),
                             ("signingCredential.ocsp.notRevoked", "good"),
                             ("signingCredential.ocsp.inaccessible", "unknown"),
                             ("signingCredential.ocsp.skipped", "skipped")):
            if code in every:
                return status
        return None

    @property
    def identity_codes(self) -> list[str]:
        """Status codes of the CAWG identity assertions (reported beside the claim's state)."""
        every = [*self.codes.success, *self.codes.informational, *self.codes.failure]
        return sorted({c.code for c in every if c.code.startswith("cawg.")})

    @property
    def informational_codes(self) -> list[str]:
        return self.codes.informational_codes()

    def ingredient_failures(self) -> list[IngredientSummary]:
        """Every ingredient in the tree, at any depth, whose own state is Invalid."""
        out: list[IngredientSummary] = []
        stack = list(self.ingredients)
        while stack:
            ing = stack.pop(0)
            if ing.state is ValidationState.INVALID:
                out.append(ing)
            stack.extend(ing.ingredients)
        return out

    def to_dict(self, *, include_store: bool = False, include_json: bool = False) -> dict[str, Any]:
        """JSON-ready view; the raw store (base64) and full JSON only on request."""
        if not self.present:
            return {"present": False}
        out: dict[str, Any] = {
            "present": True,
            "state": self.state.value if self.state else None,
            "failure_codes": self.failure_codes,
            "informational_codes": self.informational_codes,
            "manifests": self.manifests_count,
            "active_manifest": _plain(asdict(self.active_manifest)) if self.active_manifest else None,
            "ingredients": [_plain(asdict(i)) for i in self.ingredients],
            "embedded": self.embedded,
            "remote_url": self.remote_url,
            "manifest_store_bytes": len(self.manifest_store) if self.manifest_store else None,
            "claim_state": self.claim_state.value if self.claim_state else None,
            "trust_list": self.trust_list,
            "spec_version": self.spec_version,
            "validation_time": self.validation_time,
            "timestamp": _plain(asdict(self.timestamp)) if self.timestamp else None,
            "ocsp": self.ocsp,
            "identity_assertions": [_plain(asdict(i)) for i in self.identity_assertions],
            "soft_bindings": [_plain(asdict(b)) for b in self.soft_bindings],
        }
        if include_store:
            out["manifest_store_b64"] = (
                base64.b64encode(self.manifest_store).decode() if self.manifest_store else None
            )
        if include_json:
            out["manifest_json"] = self.manifest_json
        return out


def _plain(value: Any) -> Any:
    """Enums to their values, recursively (asdict keeps Enum members)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
