"""The claim signer's certificate chain, read from a manifest store's COSE signature.

c2pa-python reports the signer by name (issuer, common name, serial) only; names can be
copied by anyone who makes a CA. A registry that lets a publisher register only what it
signed needs the key itself, so the chain (`x5chain`, COSE header label 33) is read from
the active manifest's `c2pa.signature` box and identified by SPKI SHA-256. Call this only on
a store that c2pa validated (the signature over the claim was verified with this chain).

Layout (ISO 19566-5 JUMBF, C2PA 2.x): superbox `c2pa` -> one superbox per manifest
(label = manifest URN) -> superbox `c2pa.signature` -> content box `cbor` = COSE_Sign1
[protected bstr, unprotected map, payload, signature]. Everything here is hostile input:
lengths are checked, only three fixed levels are walked, and any inconsistency is a `SignerChainError`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from manifests.errors import ManifestError

__all__ = ["SignerChainError", "SignerIdentity", "anchored_by", "claim_signer_chain", "identity_of", "spki_sha256"]

_X5CHAIN = 33
_MAX_CERTS = 16


class SignerChainError(ManifestError):
    """The store's signature box is missing, malformed, or carries no certificate chain."""


@dataclass(frozen=True)
class SignerIdentity:
    """One certificate as the registry enrolls and matches it."""

    spki_sha256: str  # hex SHA-256 of the DER SubjectPublicKeyInfo: the key, whoever names it
    subject: str  # RFC 4514
    issuer: str
    serial_number: str  # hex
    not_before: str  # ISO 8601, UTC
    not_after: str
    is_ca: bool

    def describe(self) -> dict[str, str]:
        return {"subject": self.subject, "issuer": self.issuer, "spki_sha256": self.spki_sha256}


def spki_sha256(cert: x509.Certificate) -> str:
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def identity_of(cert: x509.Certificate) -> SignerIdentity:
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return SignerIdentity(
        spki_sha256=spki_sha256(cert),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial_number=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        is_ca=is_ca,
    )


def anchored_by(chain: list[x509.Certificate], certs: list[x509.Certificate]) -> x509.Certificate | None:
    """The certificate among `certs` that a validated claim-signer `chain` (leaf first)
    belongs to: one with the same key as a certificate of the chain, or a CA whose signature
    is on the chain's top certificate. Keys, never names: a look-alike CA does not match.
    Shared by the registry's enrolled identities and the trust check of manifest anchors."""
    chain_keys = {spki_sha256(c) for c in chain}
    for cert in certs:
        if spki_sha256(cert) in chain_keys:
            return cert
    if not chain:
        return None
    for cert in certs:
        if not identity_of(cert).is_ca:
            continue
        try:
            chain[-1].verify_directly_issued_by(cert)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return cert
    return None


def claim_signer_chain(store: bytes, manifest_label: str | None = None) -> list[x509.Certificate]:
    """The chain that signed manifest `manifest_label` (default: the active, i.e. last,
    manifest of the store), leaf first."""
    top = _boxes(store, 0, len(store))
    if len(top) != 1 or top[0][0] != b"jumb" or _label(store, top[0]) != "c2pa":
        raise SignerChainError("not a C2PA manifest store")
    manifests = [b for b in _children(store, top[0]) if b[0] == b"jumb"]
    if not manifests:
        raise SignerChainError("the store holds no manifest")
    chosen = manifests[-1]
    if manifest_label is not None:
        named = [b for b in manifests if _label(store, b) == manifest_label]
        if not named:
            raise SignerChainError(f"no manifest {manifest_label!r} in the store")
        chosen = named[-1]
    signature = [b for b in _children(store, chosen) if b[0] == b"jumb" and _label(store, b) == "c2pa.signature"]
    if len(signature) != 1:
        raise SignerChainError("the manifest has no single c2pa.signature box")
    cbor = [b for b in _children(store, signature[0]) if b[0] == b"cbor"]
    if len(cbor) != 1:
        raise SignerChainError("the signature box holds no COSE structure")
    _, start, end = cbor[0]
    return _x5chain(store[start:end])


# -- JUMBF -------------------------------------------------------------------------------------

Box = tuple[bytes, int, int]  # (type, payload start, payload end) into the store


def _boxes(data: bytes, start: int, end: int) -> list[Box]:
    out: list[Box] = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise SignerChainError("truncated box header")
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise SignerChainError("truncated box header")
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise SignerChainError("a box runs past its parent")
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _children(data: bytes, box: Box) -> list[Box]:
    _, start, end = box
    return _boxes(data, start, end)[1:]  # the first child is the description box


def _label(data: bytes, box: Box) -> str | None:
    kind, start, end = box
    if kind != b"jumb":
        return None
    kids = _boxes(data, start, end)
    if not kids or kids[0][0] != b"jumd":
        raise SignerChainError("a superbox without a description box")
    _, dstart, dend = kids[0]
    if dend - dstart < 17:
        raise SignerChainError("truncated description box")
    toggles = data[dstart + 16]
    if not toggles & 0x02:
        return None
    raw = data[dstart + 17 : dend].split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignerChainError("a box label is not UTF-8") from exc


# -- COSE --------------------------------------------------------------------------------------


def _x5chain(cose: bytes) -> list[x509.Certificate]:
    try:
        obj = cbor2.loads(cose)
    except Exception as exc:  # cbor2 raises several types on hostile input
        raise SignerChainError(f"the COSE signature does not decode: {exc}") from exc
    if isinstance(obj, cbor2.CBORTag):
        obj = obj.value
    # cbor2 >= 6 decodes arrays as tuples and maps as frozendicts
    if not isinstance(obj, (list, tuple)) or len(obj) != 4 or not isinstance(obj[0], bytes) or not isinstance(obj[1], Mapping):
        raise SignerChainError("not a COSE_Sign1 structure")
    try:
        protected = cbor2.loads(obj[0]) if obj[0] else {}
    except Exception as exc:
        raise SignerChainError(f"the protected header does not decode: {exc}") from exc
    if not isinstance(protected, Mapping):
        raise SignerChainError("the protected header is not a map")
    # C2PA 2.x puts x5chain in the protected header; 1.x signers used the unprotected one.
    raw = protected.get(_X5CHAIN, obj[1].get(_X5CHAIN, obj[1].get("x5chain")))
    ders = [raw] if isinstance(raw, bytes) else raw
    if not isinstance(ders, (list, tuple)) or not ders or len(ders) > _MAX_CERTS or not all(isinstance(d, bytes) for d in ders):
        raise SignerChainError("the signature carries no x5chain")
    try:
        return [x509.load_der_x509_certificate(d) for d in ders]
    except ValueError as exc:
        raise SignerChainError(f"a certificate in x5chain does not parse: {exc}") from exc
