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
    finally:
        context.close()
    summary = _summarise(store, data, mime, embedded=embedded, remote_url=remote_url)
    if manifest_store is not None:
        summary = replace(summary, manifest_store=manifest_store)
    return replace(summary, claim_anchored=_claim_anchored(summary, trust))


def _claim_anchored(summary: ManifestSummary, trust: TrustConfig) -> bool | None:
    """Our per-kind check of the claim signer, where the SDK's answer could come from a
    pooled TSA anchor; None when there is nothing to check or the chain cannot be read."""
    if not trust.tsa_anchors_pem or summary.manifest_store is None or summary.active_manifest is None:
        return None
    from manifests.signer import SignerChainError, claim_signer_chain

    try:
        chain = claim_signer_chain(summary.manifest_store, summary.active_manifest.label)
    except SignerChainError:
        return None
    anchored = trust.claim_signer_anchored(chain)
    return False if anchored is None else anchored


def _typed_error(exc: Exception) -> ManifestError:
    message = str(exc)
    if message.startswith("Remote:") or "RemoteManifest" in type(exc).__name__:
        match = re.search(r"https?://\S+", message)
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
