"""Ed25519 keys that sign verification reports, and compact JWS (RFC 7515, alg EdDSA).

Private keys live in `<data dir>/keys/<kid>.pem` (0600) or come from a secret file; the
`kid` is the key's RFC 7638 JWK thumbprint. Rotation makes a new current key and keeps the
previous one published, so reports signed just before a rotation still verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from verifier.fsutil import atomic_write


class SignatureError(Exception):
    """A JWS that does not verify (bad format, unknown kid, wrong signature)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    x = b64url(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    thumb = b64url(hashlib.sha256(json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True).encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumb, "alg": "EdDSA", "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("report signing keys must be Ed25519")
        return cls(public_jwk(key.public_key())["kid"], key)

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.private.public_key())

    def sign_compact(self, payload: bytes) -> str:
        header = {"alg": "EdDSA", "kid": self.kid, "typ": "JOSE", "cty": "application/json"}
        signing_input = f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{b64url(payload)}"
        return f"{signing_input}.{b64url(self.private.sign(signing_input.encode()))}"


class KeyRing:
    """Report-signing keys in `<data dir>/keys`: `state.json` names the current and previous kid."""

    def __init__(self, directory: Path, secret_file: Path | None = None) -> None:
        self.dir = directory
        self.secret_file = secret_file

    def _state(self) -> dict[str, Any]:
        path = self.dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {"current": None, "previous": None}

    def _write_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.dir / "state.json", json.dumps(state, indent=2).encode(), 0o600)

    def _load(self, kid: str) -> SigningKey:
        return SigningKey.from_pem((self.dir / f"{kid}.pem").read_bytes())

    def current(self) -> SigningKey:
        """The signing key, created on first use."""
        if self.secret_file is not None:
            return SigningKey.from_pem(self.secret_file.read_bytes())
        state = self._state()
        if state["current"] is None:
            return self.rotate()
        return self._load(state["current"])

    def rotate(self) -> SigningKey:
        if self.secret_file is not None:
            raise RuntimeError("the signing key comes from a secret file; rotate it where that file is managed")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        key = Ed25519PrivateKey.generate()
        new = SigningKey.from_pem(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        atomic_write(
            self.dir / f"{new.kid}.pem",
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            0o600,
        )
        state = self._state()
        self._write_state({"current": new.kid, "previous": state["current"]})
        return new

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = [self.current().jwk]
        if self.secret_file is None:
            previous = self._state().get("previous")
            if previous and (self.dir / f"{previous}.pem").exists():
                keys.append(self._load(previous).jwk)
        return {"keys": keys}


def verify_compact(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Check a compact JWS against a JWKS; return (protected header, payload bytes)."""
    try:
        h64, p64, s64 = token.split(".")
        header = json.loads(b64url_decode(h64))
        payload, signature = b64url_decode(p64), b64url_decode(s64)
    except (ValueError, json.JSONDecodeError) as exc:
        raise SignatureError(f"not a compact JWS: {exc}") from exc
    if header.get("alg") != "EdDSA":
        raise SignatureError(f"unexpected alg {header.get('alg')!r}")
    jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
    if jwk is None or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise SignatureError(f"no Ed25519 key with kid {header.get('kid')!r} in the JWKS")
    try:
        Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(signature, f"{h64}.{p64}".encode())
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc
    return header, payload
