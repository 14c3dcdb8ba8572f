"""Read and validate an asset's C2PA manifest store with c2pa-python."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import c2pa

from manifests import jumbf
from manifests.errors import (
    MalformedManifestError,
    ManifestError,
    RemoteManifestError,
    UnsupportedFormatError,
)
from manifests.formats import detect_mime
from manifests.summary import (
    Action,
    CertificateInfo,
    IdentityAssertion,
    IngredientSummary,
    ManifestInfo,
    ManifestSummary,
    SignerInfo,
    SoftBinding,
    StatusCode,
    StatusCodes,
    TimestampInfo,
    ValidationState,
)
from manifests.trust import TrustConfig

# Failure codes that speak of trust (in the claim signer, or in an identity assertion's
# credential), not of the integrity of the data: an ingredient with only these is Valid.
_TRUST_ONLY_FAILURES = {"signingCredential.untrusted", "cawg.x509.credential.untrusted"}
_MAX_INGREDIENT_DEPTH = 32


def read_manifest(
    source: bytes | Path | str,
    *,
    trust: TrustConfig | None = None,
    mime: str | None = None,
    manifest_store: bytes | None = None,
) -> ManifestSummary:
    """Validate `source` (bytes or a path) and summarise its manifest store.

    With `manifest_store`, that store (e.g. kept in a registry) is validated against the
    asset instead of whatever the asset embeds. Returns `ManifestSummary.absent()` when
    there is no C2PA data; raises a `ManifestError` subclass when there is some that
    cannot be read.
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if mime is None:  # the SDK sniffs only some formats (not SVG): tell it what the bytes are
        mime = detect_mime(data, Path(source).name if isinstance(source, (str, Path)) else None)
    trust = trust or TrustConfig()
    context = trust.context()
    try:
        try:
            reader = c2pa.Reader(mime, io.BytesIO(data), manifest_store, context=context)
        except c2pa.C2paError.ManifestNotFound:
            return ManifestSummary.absent()
        except c2pa.C2paError as exc:
            raise _typed_error(exc) from exc
        with reader:
            store = json.loads(reader.json())
            embedded = reader.is_embedded()
            remote_url = reader.get_remote_url()
            try:
                cr = json.loads(reader.crjson())
            except (c2pa.C2paError, ValueError):
                cr = {}
    finally:
        context.close()
    summary = _summarise(store, data, mime, embedded=embedded, remote_url=remote_url)
    if manifest_store is not None:
        summary = replace(summary, manifest_store=manifest_store)
    summary = _with_details(summary, store, cr if isinstance(cr, dict) else {})
    return _with_claim_trust(summary, trust)


def read_detailed(source: bytes | Path | str, *, trust: TrustConfig | None = None, mime: str | None = None) -> dict[str, Any]:
    """The SDK's detailed JSON (claims, assertion boxes, hashes), as c2patool --detailed
    prints it; `{}` when there is no C2PA data. Raises a `ManifestError` like `read_manifest`."""
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    mime = mime or detect_mime(data, Path(source).name if isinstance(source, (str, Path)) else None)
    context = (trust or TrustConfig()).context()
    try:
        with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            detailed = json.loads(reader.detailed_json())
    except c2pa.C2paError.ManifestNotFound:
        return {}
    except c2pa.C2paError as exc:
        raise _typed_error(exc) from exc
    finally:
        context.close()
    return detailed if isinstance(detailed, dict) else {}


def manifest_tree(store: dict[str, Any]) -> list[str]:
    """The store as c2patool's `--tree` draws it: each manifest with its assertions, and its
    ingredients (with their own manifests) beneath it."""
    manifests = store.get("manifests") or {}
    lines: list[str] = []

    def walk(label: str, title: str | None, prefix: str, seen: frozenset[str]) -> None:
        manifest = manifests.get(label) or {}
        children: list[tuple[str, str | None, str | None]] = [
            ("assertion", a.get("label"), None) for a in manifest.get("assertions") or []]
        children += [("ingredient", i.get("title"), i.get("active_manifest")) for i in manifest.get("ingredients") or []]
        for n, (kind, name, child_label) in enumerate(children):
            last = n == len(children) - 1
            branch, extend = ("└── ", "    ") if last else ("├── ", "│   ")
            if kind == "assertion":
                lines.append(f"{prefix}{branch}Assertion:{name}")
            else:
                lines.append(f"{prefix}{branch}Asset:{name}" + (f", Manifest:{child_label}" if child_label else ""))
                if child_label and child_label in manifests and child_label not in seen and len(seen) < 64:
                    walk(child_label, name, prefix + extend, seen | {child_label})

    active = store.get("active_manifest")
    if active in manifests:
        lines.append(f"Asset:{(manifests[active] or {}).get('title')}, Manifest:{active}")
        walk(active, None, "", frozenset({active}))
    return lines


def _with_claim_trust(summary: ManifestSummary, trust: TrustConfig) -> ManifestSummary:
    """Our per-kind check of the claim signer (the SDK pools TSA and CAWG roots with the
    manifest ones) and the name of the list that anchors it."""
    if not trust.has_manifest_trust or summary.manifest_store is None or summary.active_manifest is None:
        return replace(summary, claim_anchored=False if trust.pools_other_kinds else None)
    from manifests.signer import SignerChainError, claim_signer_chain

    try:
        chain = claim_signer_chain(summary.manifest_store, summary.active_manifest.label)
    except SignerChainError:
        return summary
    found = trust.claim_trust_list(chain)
    listed = {"uri": found.uri, "name": found.name, "category": found.category} if found else None
    return replace(summary, trust_list=listed,
                   claim_anchored=(found is not None) if trust.pools_other_kinds else None)


def _with_details(summary: ManifestSummary, store: dict[str, Any], cr: dict[str, Any]) -> ManifestSummary:
    """What the SDK reports beyond state and codes: certificates, time-stamp, CAWG identities,
    soft bindings, spec version (the crJSON view holds the decoded certificates)."""
    if summary.active_manifest is None:
        return summary
    label = summary.active_manifest.label
    manifest = (store.get("manifests") or {}).get(label) or {}
    cr_manifest = next((m for m in cr.get("manifests") or [] if isinstance(m, dict) and m.get("label") == label), {})
    signature = cr_manifest.get("signature") or {}
    results = cr_manifest.get("validationResults") or {}
    every = [*summary.codes.success, *summary.codes.informational, *summary.codes.failure]
    stamp_info = signature.get("timeStampInfo") or {}
    stamp_codes = sorted({c.code for c in every if c.code.startswith("timeStamp.")})
    timestamp = None
    if stamp_info or stamp_codes:
        timestamp = TimestampInfo(
            time=stamp_info.get("timestamp") or summary.active_manifest.signer.signing_time,
            tsa=_certificate(stamp_info.get("certificateInfo")),
            trusted="timeStamp.trusted" in {c.code for c in summary.codes.success},
            codes=stamp_codes,
        )
    info = replace(summary.active_manifest, signer_certificate=_certificate(signature.get("certificateInfo")),
                   is_update_manifest=bool(cr_manifest.get("isUpdateManifest")),
                   claim_version=manifest.get("claim_version"))
    sdk_results = store.get("validation_results") or {}
    return replace(
        summary,
        active_manifest=info,
        sdk_trust_list_uri=sdk_results.get("trustListUri"),
        spec_version=results.get("specVersion") or sdk_results.get("specVersion"),
        validation_time=results.get("validationTime"),
        timestamp=timestamp,
        identity_assertions=_identities(label, manifest, cr_manifest, every),
        soft_bindings=_soft_bindings(manifest),
    )


def _certificate(raw: Any) -> CertificateInfo | None:
    if not isinstance(raw, dict):
        return None
    validity = raw.get("validity") or {}
    return CertificateInfo(subject=_dn(raw.get("subject")), issuer=_dn(raw.get("issuer")),
                           serial=raw.get("serialNumber"), not_before=validity.get("notBefore"),
                           not_after=validity.get("notAfter"))


def _dn(raw: Any) -> str | None:
    """crJSON lists a name's attributes from C to CN; written most specific first (RFC 4514)."""
    if not isinstance(raw, dict):
        return None
    return ", ".join(f"{k}={v}" for k, v in reversed(list(raw.items())))


def _identities(label: str, manifest: dict[str, Any], cr_manifest: dict[str, Any],
                codes: list[StatusCode]) -> list[IdentityAssertion]:
    out: list[IdentityAssertion] = []
    cr_assertions = cr_manifest.get("assertions") or {}
    for assertion in manifest.get("assertions") or []:
        name = str(assertion.get("label", ""))
        if not name.startswith("cawg.identity"):
            continue
        data = assertion.get("data") or {}
        payload = data.get("signer_payload") or {}
        roles = payload.get("role") or payload.get("roles") or []
        cert = _certificate(((cr_assertions.get(name) or {}).get("signature") or {}).get("certificateInfo"))
        info = data.get("signature_info") or {}
        mine = sorted({c.code for c in codes if (c.url or "").endswith(f"/c2pa.assertions/{name}")})
        trusted = True if "cawg.x509.credential.trusted" in mine else False if "cawg.x509.credential.untrusted" in mine else None
        out.append(IdentityAssertion(
            label=name, sig_type=payload.get("sig_type"), roles=[str(r) for r in roles] if isinstance(roles, list) else [str(roles)],
            issuer=cert.issuer if cert else info.get("issuer"), subject=cert.subject if cert else info.get("common_name"),
            trusted=trusted, codes=mine))
    return out


def _soft_bindings(manifest: dict[str, Any]) -> list[SoftBinding]:
    out: list[SoftBinding] = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.soft-binding"):
            continue
        data = assertion.get("data") or {}
        blocks = [b for b in data.get("blocks") or [] if isinstance(b, dict)]
        values = [v for v in (_b64(b.get("value")) for b in blocks) if v]
        if isinstance(data.get("alg"), str) and values:
            out.append(SoftBinding(alg=data["alg"], values=values,
                                   scopes=[b.get("scope") or {} for b in blocks]))
    return out


def _b64(value: Any) -> str | None:
    """Binding values come as base64 text, or as a list of byte values from CBOR."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(x, int) and 0 <= x < 256 for x in value):
        import base64

        return base64.b64encode(bytes(value)).decode()
    return None


def _typed_error(exc: Exception) -> ManifestError:
    message = str(exc)
    if message.startswith("Remote:") or "RemoteManifest" in type(exc).__name__:
        match = re.search(r"""https?://[^\s"'<>]+""", message)  # the SDK quotes some URLs
        return RemoteManifestError(message, url=match.group(0) if match else None)
    if message.startswith("NotSupported") or "NotSupported" in type(exc).__name__:
        return UnsupportedFormatError(message)
    return MalformedManifestError(message)


def _summarise(
    store: dict[str, Any], data: bytes, mime: str | None, *, embedded: bool, remote_url: str | None
) -> ManifestSummary:
    manifests: dict[str, Any] = store.get("manifests") or {}
    active_label = store.get("active_manifest")
    results = store.get("validation_results") or {}
    codes = _status_codes(results.get("activeManifest") or {})
    # The top-level `validation_status` is the reference's list of failures for the whole
    # store: the active manifest's plus those found in its ingredients (e.g. a hashed-URI
    # mismatch inside an ingredient makes the store Invalid).
    seen = {(c.code, c.url) for c in codes.failure}
    extra = [_code(c) for c in store.get("validation_status") or [] if (c.get("code"), c.get("url")) not in seen]
    if extra:
        codes = StatusCodes(success=codes.success, informational=codes.informational, failure=codes.failure + extra)
    deltas = {
        d.get("ingredientAssertionURI"): _status_codes(d.get("validationDeltas") or {})
        for d in results.get("ingredientDeltas") or []
    }
    active = manifests.get(active_label) if active_label else None
    state_raw = store.get("validation_state")
    return ManifestSummary(
        present=True,
        state=ValidationState(state_raw) if state_raw else _state_from_failures(codes.failure_codes()),
        codes=codes,
        active_manifest=_manifest_info(active_label, active) if active else None,
        manifests_count=len(manifests),
        ingredients=_ingredients(active_label, manifests, deltas, depth=0) if active else [],
        manifest_store=jumbf.extract_manifest_store(data) if embedded else None,
        manifest_json=store,
        embedded=embedded,
        remote_url=remote_url,
    )


def _code(raw: dict[str, Any]) -> StatusCode:
    return StatusCode(code=raw.get("code", ""), url=raw.get("url"), explanation=raw.get("explanation"))


def _status_codes(raw: dict[str, Any]) -> StatusCodes:
    return StatusCodes(
        success=[_code(c) for c in raw.get("success") or []],
        informational=[_code(c) for c in raw.get("informational") or []],
        failure=[_code(c) for c in raw.get("failure") or []],
    )


def _state_from_failures(failures: list[str]) -> ValidationState:
    if any(code not in _TRUST_ONLY_FAILURES for code in failures):
        return ValidationState.INVALID
    return ValidationState.VALID if failures else ValidationState.TRUSTED


def _manifest_info(label: str, manifest: dict[str, Any]) -> ManifestInfo:
    sig = manifest.get("signature_info") or {}
    actions: list[Action] = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for act in (assertion.get("data") or {}).get("actions") or []:
            agent = act.get("softwareAgent")
            if isinstance(agent, dict):
                agent = agent.get("name")
            actions.append(
                Action(
                    action=str(act.get("action")),
                    digital_source_type=act.get("digitalSourceType"),
                    software_agent=agent,
                    when=act.get("when"),
                )
            )
    return ManifestInfo(
        label=label,
        title=manifest.get("title"),
        claim_generator=manifest.get("claim_generator")
        or _generator_from_info(manifest.get("claim_generator_info")),
        format=manifest.get("format"),
        instance_id=manifest.get("instance_id"),
        signer=SignerInfo(
            issuer=sig.get("issuer"),
            common_name=sig.get("common_name"),
            signing_time=sig.get("time"),
            alg=sig.get("alg"),
            cert_serial_number=sig.get("cert_serial_number"),
        ),
        actions=actions,
    )


def _generator_from_info(info: Any) -> str | None:
    if isinstance(info, list) and info:
        first = info[0]
        if isinstance(first, dict):
            name, version = first.get("name"), first.get("version")
            return f"{name}/{version}" if version else name
    return None


def _ingredients(
    manifest_label: str,
    manifests: dict[str, Any],
    deltas: dict[str, StatusCodes],
    depth: int,
) -> list[IngredientSummary]:
    if depth > _MAX_INGREDIENT_DEPTH:
        return []
    out: list[IngredientSummary] = []
    for ing in manifests.get(manifest_label, {}).get("ingredients") or []:
        uri = f"self#jumbf=/c2pa/{manifest_label}/c2pa.assertions/{ing.get('label', 'c2pa.ingredient')}"
        delta = deltas.get(uri, StatusCodes())
        informational = set(delta.informational_codes())
        failures = set(delta.failure_codes())
        # The status recorded when the ingredient was added (c2pa does not re-verify an
        # ingredient's claim signature): a code the validator now calls informational
        # stays informational, everything else recorded is a failure of that ingredient.
        for raw in ing.get("validation_status") or []:
            code = raw.get("code", "")
            if code in informational or code.endswith((".validated", ".match", ".trusted", ".insideValidity")):
                continue
            failures.add(code)
        child_label = ing.get("active_manifest")
        has_manifest = bool(child_label) and child_label in manifests
        state: ValidationState | None = None
        if child_label:
            state = _state_from_failures(sorted(failures))
            if state is ValidationState.TRUSTED and uri not in deltas:
                state = ValidationState.VALID  # no evidence the validator checked trust here
        elif failures:
            state = ValidationState.INVALID
        out.append(
            IngredientSummary(
                title=ing.get("title"),
                format=ing.get("format"),
                relationship=ing.get("relationship"),
                manifest_label=child_label,
                state=state,
                failure_codes=sorted(failures),
                informational_codes=sorted(informational),
                ingredients=_ingredients(child_label, manifests, deltas, depth + 1) if has_manifest else [],
            )
        )
    return out
