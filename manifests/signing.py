"""Signing helpers for tests and demos: a throwaway test CA and `c2pa.Builder` signing.

Production publishers sign with their own credentials; the service only validates. These
helpers exist so that tests and `verifier demo` exercise real, cryptographically valid
Content Credentials instead of canned fixtures.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# C2PA's default EKU list accepts these for claim signers.
_SIGNER_EKUS = [ExtendedKeyUsageOID.EMAIL_PROTECTION, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")]


@dataclass(frozen=True)
class TestCA:
    """A self-signed root CA: its PEM is what a verifier configures as a trust anchor."""

    __test__ = False  # not a pytest test class, despite the name

    cert_pem: bytes
    key_pem: bytes
    common_name: str

    def _key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def _cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class SignerCredentials:
    """A leaf signing certificate with its chain (leaf first, no root) and private key."""

    chain_pem: bytes
    key_pem: bytes
    alg: str = "es256"


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_test_ca(common_name: str = "provenance-verifier Test Root CA", days: int = 3650) -> TestCA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(common_name, "provenance-verifier test")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return TestCA(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), common_name)


def issue_signer(ca: TestCA, common_name: str, organization: str = "Test Publisher", days: int = 825) -> SignerCredentials:
    """Issue an ES256 claim-signing certificate under `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca._cert()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(_SIGNER_EKUS), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca._key().public_key()), critical=False
        )
        .sign(ca._key(), hashes.SHA256())
    )
    return SignerCredentials(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


@dataclass
class ManifestDefinition:
    """The parts of a manifest definition the demos and tests need."""

    title: str
    claim_generator: str = "provenance-verifier/test"
    actions: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {
                "action": "c2pa.created",
                "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
            }
        ]
    )
    author: str | None = None
    extra_assertions: list[dict[str, Any]] = field(default_factory=list)  # e.g. a c2pa.soft-binding

    def to_json(self) -> str:
        assertions: list[dict[str, Any]] = [{"label": "c2pa.actions", "data": {"actions": self.actions}},
                                            *self.extra_assertions]
        if self.author:
            assertions.append(
                {
                    "label": "stds.schema-org.CreativeWork",
                    "data": {
                        "@context": "https://schema.org",
                        "@type": "CreativeWork",
                        "author": [{"@type": "Person", "name": self.author}],
                    },
                    "kind": "Json",
                }
            )
        return json.dumps(
            {
                "claim_generator_info": [{"name": self.claim_generator.split("/")[0], "version": "1"}],
                "title": self.title,
                "assertions": assertions,
            }
        )


def sign_image(
    data: bytes,
    mime: str,
    creds: SignerCredentials,
    definition: ManifestDefinition | None = None,
    parents: Sequence[tuple[bytes, str]] = (),
) -> bytes:
    """Embed a signed manifest in `data` and return the signed asset bytes. `parents` are
    (bytes, mime) of signed assets this one was made from: added as `parentOf` ingredients,
    their manifests carried along (a declared derivative)."""
    definition = definition or ManifestDefinition(title="image")
    info = c2pa.C2paSignerInfo(creds.alg, creds.chain_pem, creds.key_pem, None)
    # Builder-side settings only: no thumbnail keeps test assets small and deterministic.
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    try:
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(definition.to_json(), context) as builder:
            for i, (parent, parent_mime) in enumerate(parents):
                builder.add_ingredient({"title": f"parent-{i}", "relationship": "parentOf"}, parent_mime, io.BytesIO(parent))
            out = io.BytesIO()
            builder.sign(signer, mime, io.BytesIO(data), out)
            return out.getvalue()
    finally:
        context.close()
