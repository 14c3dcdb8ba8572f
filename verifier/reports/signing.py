"""Ed25519 keys that sign verification reports, and compact JWS (RFC 7515, alg EdDSA), with
joserfc doing the JOSE work (strict base64url, an algorithm allow-list).

Private keys live in `<data dir>/keys/<kid>.pem` (0600) or come from a secret file; the
`kid` is the key's RFC 7638 JWK thumbprint. Rotation makes a new current key and keeps the
previous one published, so reports signed just before a rotation still verify.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from verifier.fsutil import atomic_write

ALGORITHMS = ["EdDSA"]  # the only algorithm a report may be signed with


class SignatureError(Exception):
    """A JWS that does not verify (bad format, unknown kid, wrong signature)."""


@contextmanager
def _quiet() -> Iterator[None]:
    # joserfc flags "EdDSA" in favour of RFC 9864's "Ed25519"; the reports keep the alg that
    # every JOSE library verifies today (the same Ed25519 signature either way).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*EdDSA is deprecated.*")
        yield


def public_jwk(key: OKPKey) -> dict[str, str]:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), "alg": "EdDSA", "use": "sig"}  # type: ignore[dict-item]


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: OKPKey

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            key = OKPKey.import_key(pem)
        except (ValueError, JoseError) as exc:
            raise ValueError(f"not an Ed25519 private key: {exc}") from exc
        if key.curve_name != "Ed25519" or not key.is_private:
            raise ValueError("report signing keys must be Ed25519 private keys")
        return cls(key.thumbprint(), key)

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk(self.key)

    def sign_compact(self, payload: bytes) -> str:
        header = {"alg": "EdDSA", "kid": self.kid, "typ": "JOSE", "cty": "application/json"}
        with _quiet():
            return jws.serialize_compact(header, payload, self.key, algorithms=ALGORITHMS)


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


def verify_compact(token: str, jwks: Any) -> tuple[dict[str, Any], bytes]:
    """Check a compact JWS against a JWKS; return (protected header, payload bytes). Anything
    malformed, a key that is not Ed25519, an unknown kid or another alg is a SignatureError."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("not a compact JWS (three base64url parts)")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise SignatureError("the JWKS is not a JSON object with a `keys` list")
    usable = [k for k in jwks["keys"] if isinstance(k, dict) and k.get("kty") == "OKP" and k.get("crv") == "Ed25519" and k.get("kid")]
    try:
        keys = KeySet.import_key_set({"keys": usable})
        with _quiet():
            obj = jws.deserialize_compact(token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignatureError(f"the signature does not verify ({type(exc).__name__}: {exc})") from exc
    return dict(obj.protected), obj.payload
