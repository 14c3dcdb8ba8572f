"""Trust configuration for C2PA validation, turned into a per-call `c2pa.Context`.

Trust comes in three kinds, as in the C2PA trust model: `manifest` (who may sign claims),
`tsa` (time-stamping authorities) and `cawg` (issuers of CAWG identity credentials). Each
list is written as its own `trust.anchors[]` entry with a `trust_uri`, so the SDK names the
list in its status codes. The SDK (c2pa-rs 0.91) pools every kind when it judges a claim
signer: a TSA or CAWG root also makes a claim signer `signingCredential.trusted`
(tests/test_manifests.py shows it). So the claim signer is checked again here against the
manifest lists only (`claim_trust_list`), and the verdict uses that.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import c2pa
from cryptography import x509

from manifests.signer import anchored_by

TrustKind = Literal["manifest", "tsa", "cawg"]
TrustCategory = Literal["official", "legacy", "custom"]
TRUST_KINDS: tuple[TrustKind, ...] = ("manifest", "tsa", "cawg")
TRUST_CATEGORIES: tuple[TrustCategory, ...] = ("official", "legacy", "custom")
MAX_TRUST_LIST_BYTES = 8 * 1024 * 1024
TRUST_INDEX = "lists.json"

# Back-compatible names of the lists configured by single settings.
MANIFEST_TRUST_URI = "urn:provenance-verifier:trust:manifest:configured"
TSA_TRUST_URI = "urn:provenance-verifier:trust:tsa:configured"
CAWG_TRUST_URI = "urn:provenance-verifier:trust:cawg:configured"
SETTINGS_FILE_TRUST_URI = "urn:provenance-verifier:trust:manifest:c2pa-settings"


class TrustSettingsError(ValueError):
    """A trust setting or c2pa settings file we would otherwise pass on wrongly (the SDK
    accepts unknown keys silently, so a typo would quietly trust nothing)."""


@dataclass(frozen=True)
class TrustList:
    """One named list of anchors (PEM roots/intermediates), plus, for `manifest`, an allowed
    list of individual end-entity certificates."""

    kind: TrustKind
    name: str
    anchors_pem: str = ""
    allowed_pem: str = ""
    category: TrustCategory = "custom"
    source: str | None = None

    @property
    def uri(self) -> str:
        return f"urn:provenance-verifier:trust:{self.kind}:{self.name}"

    def certificates(self) -> list[x509.Certificate]:
        return [*_certs(self.allowed_pem), *_certs(self.anchors_pem)]

    def to_anchor_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"trust_kind": self.kind, "trust_uri": self.uri, "trust_anchors": self.anchors_pem}
        if self.allowed_pem:
            entry["allowed_list"] = self.allowed_pem
        return entry

    def describe(self) -> dict[str, Any]:
        """What `verifier trust show` and reports say about the list (never the PEM itself)."""
        certs = self.certificates()
        return {
            "kind": self.kind, "name": self.name, "uri": self.uri, "category": self.category,
            "source": self.source, "certificates": len(certs),
            "sha256": hashlib.sha256((self.anchors_pem + self.allowed_pem).encode()).hexdigest(),
            "not_after_min": min((c.not_valid_after_utc for c in certs), default=None),
        }


@dataclass(frozen=True)
class TrustConfig:
    """What the validator trusts.

    With no anchors, c2pa validates signatures but reports every signer as
    `signingCredential.untrusted` (state `Valid`, never `Trusted`).

    `remote_manifest_fetch` is off by default: a verification service must not make
    outbound requests to URLs chosen by whoever uploaded the file (SSRF), and the
    deployment may have no network at all. With it on, only `allowed_hosts` are contacted.
    """

    trust_anchors_pem: str | None = None
    allowed_list_pem: str | None = None
    trust_config: str | None = None  # EKU OIDs, one per line (c2pa `trust.trust_config`)
    tsa_anchors_pem: str | None = None  # roots of time-stamping authorities only
    cawg_anchors_pem: str | None = None  # issuers of CAWG identity credentials only
    lists: tuple[TrustList, ...] = ()  # imported lists (`verifier trust import`)
    extra_settings: dict[str, Any] = field(default_factory=dict)
    remote_manifest_fetch: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_c2pa_settings(self.extra_settings)

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
        cawg_trust_anchors: Path | None = None,
        trust_dir: Path | None = None,
        allowed_hosts: tuple[str, ...] = (),
    ) -> TrustConfig:
        """Build from files; `c2pa_settings` is a full c2pa settings JSON (its values are
        overridden by the individual files when both are given); `trust_dir` holds imported
        lists."""
        extra: dict[str, Any] = {}
        if c2pa_settings is not None:
            try:
                extra = json.loads(Path(c2pa_settings).read_text())
            except (OSError, ValueError) as exc:
                raise TrustSettingsError(f"c2pa settings file {c2pa_settings}: {exc}") from exc
            if not isinstance(extra, dict):
                raise TrustSettingsError(f"c2pa settings file {c2pa_settings}: not a JSON object")
        return cls(
            trust_anchors_pem=_read_pem(trust_anchors, "VERIFIER_TRUST_ANCHORS"),
            allowed_list_pem=_read_pem(allowed_list, "VERIFIER_ALLOWED_LIST"),
            trust_config=_read(trust_config),
            tsa_anchors_pem=_read_pem(tsa_trust_anchors, "VERIFIER_TSA_TRUST_ANCHORS"),
            cawg_anchors_pem=_read_pem(cawg_trust_anchors, "VERIFIER_CAWG_TRUST_ANCHORS"),
            lists=tuple(load_trust_dir(trust_dir)) if trust_dir is not None else (),
            extra_settings=extra,
            remote_manifest_fetch=remote_manifest_fetch,
            allowed_hosts=tuple(allowed_hosts),
        )

    def all_lists(self) -> list[TrustList]:
        """Every list we configure, the single settings first, then the imported ones."""
        out: list[TrustList] = []
        if self.trust_anchors_pem or self.allowed_list_pem:
            out.append(TrustList("manifest", "configured", self.trust_anchors_pem or "", self.allowed_list_pem or "",
                                 source="VERIFIER_TRUST_ANCHORS / VERIFIER_ALLOWED_LIST"))
        if self.tsa_anchors_pem:
            out.append(TrustList("tsa", "configured", self.tsa_anchors_pem, source="VERIFIER_TSA_TRUST_ANCHORS"))
        if self.cawg_anchors_pem:
            out.append(TrustList("cawg", "configured", self.cawg_anchors_pem, source="VERIFIER_CAWG_TRUST_ANCHORS"))
        out.extend(self.lists)
        settings_list = self._settings_file_list()
        if settings_list is not None:
            out.append(settings_list)
        return out

    def _settings_file_list(self) -> TrustList | None:
        """Claim-signer anchors given inside a full c2pa settings file, as a list of ours so
        our own claim check and the report know them too."""
        trust = self.extra_settings.get("trust") or {}
        anchors = "".join(str(trust.get(k) or "") for k in ("trust_anchors", "user_anchors"))
        allowed = str(trust.get("allowed_list") or "")
        if not (anchors or allowed):
            return None
        return TrustList("manifest", "c2pa-settings", anchors, allowed, source="VERIFIER_C2PA_SETTINGS")

    def to_c2pa_settings(self) -> dict[str, Any]:
        """The SDK's settings. Each list is a `trust.anchors[]` entry of its kind: c2pa-rs 0.91
        silently ignores a flat `trust.allowed_list` (an allowed signer stayed
        `signingCredential.untrusted`; tests/test_manifests.py proves the entry takes effect)."""
        settings: dict[str, Any] = json.loads(json.dumps(self.extra_settings))  # deep copy
        settings.setdefault("version", 1)
        trust = settings.setdefault("trust", {})
        settings_list = self._settings_file_list()
        if settings_list is not None and settings_list.allowed_pem:
            trust.pop("allowed_list", None)  # flat: ignored by the SDK; moved into an entry
            trust.setdefault("anchors", []).append(settings_list.to_anchor_entry())
        for trust_list in self.all_lists():
            if trust_list is not settings_list:
                trust.setdefault("anchors", []).append(trust_list.to_anchor_entry())
        if self.trust_config:
            trust["trust_config"] = self.trust_config
        if not trust:
            del settings["trust"]
        verify = settings.setdefault("verify", {})
        verify["remote_manifest_fetch"] = self.remote_manifest_fetch
        if self.remote_manifest_fetch:
            settings.setdefault("core", {})["allowed_network_hosts"] = list(self.allowed_hosts)
        validate_c2pa_settings(settings)
        return settings

    def claim_trust_list(self, chain: list[x509.Certificate]) -> TrustList | None:
        """The first manifest list that anchors a claim signer's chain (leaf first), or that
        lists its leaf as allowed; None when none does."""
        for trust_list in self.all_lists():
            if trust_list.kind == "manifest" and anchored_by(chain, trust_list.certificates()) is not None:
                return trust_list
        return None

    def claim_signer_anchored(self, chain: list[x509.Certificate]) -> bool | None:
        """Whether a claim signer's chain ends at one of *our manifest* anchors or is on an
        allowed list. None: no manifest trust configured to judge by."""
        if not self.has_manifest_trust:
            return None
        return self.claim_trust_list(chain) is not None

    def context(self) -> c2pa.Context:
        """A fresh c2pa Context; callers close it (it is a native resource)."""
        return c2pa.Context.from_dict(self.to_c2pa_settings())

    @property
    def has_manifest_trust(self) -> bool:
        return any(t.kind == "manifest" for t in self.all_lists())

    @property
    def pools_other_kinds(self) -> bool:
        """True when the SDK's claim-signer answer could come from a TSA or CAWG root."""
        kinds = {t.kind for t in self.all_lists()}
        return bool(kinds & {"tsa", "cawg"}) or bool(self.extra_settings.get("cawg_trust"))

    @property
    def has_anchors(self) -> bool:
        return self.has_manifest_trust


# --- our check of c2pa settings: the keys c2pa-rs 0.91 reads -----------------------------

_ANY = None  # a section whose content the SDK validates itself or that readers never use
_SCHEMA: dict[str, Any] = {
    "version": "leaf",
    "trust": {"user_anchors": "leaf", "trust_anchors": "leaf", "trust_config": "leaf", "allowed_list": "leaf",
              "anchors": [{"trust_kind": "leaf", "trust_uri": "leaf", "trust_anchors": "leaf",
                           "allowed_list": "leaf", "trust_config": "leaf"}]},
    "cawg_trust": {"verify_trust_list": "leaf", "user_anchors": "leaf", "trust_anchors": "leaf",
                   "trust_config": "leaf", "allowed_list": "leaf", "trusted_ica_issuers": "leaf"},
    "core": {"merkle_tree_chunk_size_in_kb": "leaf", "merkle_tree_max_proofs": "leaf",
             "backing_store_memory_threshold_in_mb": "leaf", "decode_identity_assertions": "leaf",
             "allowed_network_hosts": "leaf", "allow_redirects": "leaf", "prefer_compress_manifests": "leaf",
             "max_decompressed_manifest_size_in_mb": "leaf"},
    "verify": {"verify_after_reading": "leaf", "verify_after_sign": "leaf", "verify_after_sign_hash": "leaf",
               "verify_trust": "leaf", "verify_timestamp_trust": "leaf", "ocsp_fetch": "leaf",
               "remote_manifest_fetch": "leaf", "skip_ingredient_conflict_resolution": "leaf",
               "strict_v1_validation": "leaf"},
    "soft_binding": {"soft_binding_algorithms": "leaf"},
    "builder": _ANY,
    "signer": _ANY,
    "cawg_x509_signer": _ANY,
}


def validate_c2pa_settings(settings: dict[str, Any]) -> None:
    """Reject keys c2pa-rs does not know (it ignores them silently): `trust.trust_anchor`
    instead of `trust_anchors` would otherwise leave every signer untrusted without a word."""
    _check(settings, _SCHEMA, "")
    for i, entry in enumerate((settings.get("trust") or {}).get("anchors") or []):
        kind = entry.get("trust_kind") if isinstance(entry, dict) else None
        if kind not in TRUST_KINDS:
            raise TrustSettingsError(f"trust.anchors[{i}].trust_kind must be one of {', '.join(TRUST_KINDS)}")


def _check(value: Any, schema: Any, path: str) -> None:
    if schema is _ANY or schema == "leaf":
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise TrustSettingsError(f"{path} must be a list")
        for i, item in enumerate(value):
            _check(item, schema[0], f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        raise TrustSettingsError(f"{path or 'settings'} must be an object")
    for key, item in value.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"; did you mean {'.'.join(filter(None, [path, close[0]]))!r}?" if close else ""
            known = ", ".join(sorted(schema))
            raise TrustSettingsError(
                f"unknown c2pa setting {'.'.join(filter(None, [path, key]))!r}{hint} (known here: {known})")
        _check(item, schema[key], f"{path}.{key}" if path else key)


# --- imported lists ----------------------------------------------------------------------


def parse_trust_pem(data: bytes, *, what: str = "trust list") -> str:
    """The certificates of a PEM bundle, re-encoded (comments and junk between blocks dropped).
    Rejects anything that is not a non-empty bundle of X.509 certificates."""
    from cryptography.hazmat.primitives.serialization import Encoding

    if len(data) > MAX_TRUST_LIST_BYTES:
        raise TrustSettingsError(f"{what}: larger than {MAX_TRUST_LIST_BYTES} bytes")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TrustSettingsError(f"{what}: not a PEM bundle of X.509 certificates ({exc})") from exc
    if not certs:
        raise TrustSettingsError(f"{what}: no certificates")
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def load_trust_dir(directory: Path) -> list[TrustList]:
    """The lists `verifier trust import` wrote: `lists.json` names each PEM file."""
    index = Path(directory) / TRUST_INDEX
    if not index.exists():
        return []
    try:
        entries = json.loads(index.read_text())
    except ValueError as exc:
        raise TrustSettingsError(f"{index}: {exc}") from exc
    out: list[TrustList] = []
    for entry in entries:
        pem = (Path(directory) / entry["file"]).read_text()
        anchors, allowed = (pem, "") if entry.get("role", "anchors") == "anchors" else ("", pem)
        out.append(TrustList(entry["kind"], entry["name"], anchors, allowed, entry.get("category", "custom"),
                             entry.get("source")))
    return out


def _certs(pem: str | None) -> list[x509.Certificate]:
    if not pem:
        return []
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []


def _read(path: Path | None) -> str | None:
    return None if path is None else Path(path).read_text()


def _read_pem(path: Path | None, setting: str) -> str | None:
    if path is None:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustSettingsError(f"{setting}={path}: {exc.strerror or exc}") from exc
    return parse_trust_pem(data, what=f"{setting}={path}")
