"""C2PA for verification: the query's own Content Credentials, and the matched original's
credentials re-validated at report time (never copied from what ingest recorded)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import asdict
from typing import Any

from manifests import (
    IngredientSummary,
    ManifestError,
    ManifestSummary,
    RemoteManifestError,
    TrustConfig,
    UnsupportedFormatError,
    ValidationState,
    read_manifest,
)
from verifier.errors import UnreadableManifest
from verifier.reports.schema import (
    C2paSection,
    CertificateOut,
    IdentityAssertionOut,
    IngredientFailure,
    PublisherRef,
    RecoveredManifest,
    SoftBindingOut,
    TimestampOut,
    TrustListRef,
)
from verifier.storage.models import Original


def query_credentials(data: bytes, mime: str, trust: TrustConfig) -> C2paSection:
    """The query's manifest, validated under the deployment's trust settings. A remote
    manifest is reported, not fetched; C2PA data that cannot be read at all is a 422."""
    try:
        summary = read_manifest(data, trust=trust, mime=mime)
    except UnsupportedFormatError:
        return C2paSection(present=False)
    except RemoteManifestError as exc:
        return C2paSection(present=True, error={"type": exc.kind, "message": str(exc), "url": exc.url},
                           remote_manifest_url=exc.url)
    except ManifestError as exc:
        raise UnreadableManifest(f"the image's C2PA data cannot be read: {exc}") from exc
    if not summary.present:
        return C2paSection(present=False)
    return C2paSection(
        present=True,
        state=summary.state.value if summary.state else None,
        identity_codes=summary.identity_codes,
        manifests=summary.manifests_count,
        failure_codes=summary.failure_codes,
        informational_codes=summary.informational_codes,
        summary=active_summary(summary),
        ingredients=ingredient_tree(summary),
        ingredient_failures=ingredient_failures(summary.ingredient_failures()),
        **details(summary),
    )


def recovered_credentials(original: Original, original_bytes: bytes, trust: TrustConfig) -> RecoveredManifest | None:
    """Re-validate the original's provenance now, from the stored bytes: its kept raw store
    where there is one, else the manifest embedded in the stored original (for containers
    whose store we do not extract). None for an original registered unsigned."""
    if not original.manifest_store and original.validation_state is None:
        return None
    store = original.manifest_store or None
    try:
        summary = read_manifest(original_bytes, trust=trust, mime=original.mime, manifest_store=store)
        state = summary.state.value if summary.state else None
        failures, informational = summary.failure_codes, summary.informational_codes
        active, ing_failures = active_summary(summary), ingredient_failures(summary.ingredient_failures())
        tree, extra = ingredient_tree(summary), details(summary)
    except ManifestError as exc:  # the stored store no longer reads: say so, do not hide it
        state, failures, informational, active, ing_failures, tree, extra = "Invalid", [f"unreadable: {exc}"], [], None, [], [], {}
    return RecoveredManifest(
        original_id=original.id,
        publisher=PublisherRef(id=original.publisher.id, name=original.publisher.name),
        registered_at=original.created_at,
        title=original.title,
        revalidated_at=dt.datetime.now(dt.UTC),
        state=state,  # type: ignore[arg-type]
        failure_codes=failures,
        informational_codes=informational,
        summary=active,
        ingredients=tree,
        ingredient_failures=ing_failures,
        manifest_store_sha256=hashlib.sha256(store).hexdigest() if store else None,
        manifest_store_b64=base64.b64encode(store).decode() if store else None,
        **extra,
    )


def active_summary(summary: ManifestSummary) -> dict[str, Any] | None:
    am = summary.to_dict().get("active_manifest")
    return am if isinstance(am, dict) else None


def details(summary: ManifestSummary) -> dict[str, Any]:
    """The report 1.1 fields (`CredentialDetails`) from a validated summary."""
    am = summary.active_manifest

    def cert(info: Any) -> CertificateOut | None:
        return CertificateOut(**asdict(info)) if info is not None else None

    if summary.trust_list is not None:
        trust_list = TrustListRef(**summary.trust_list)
    elif summary.claim_state is ValidationState.TRUSTED and summary.sdk_trust_list_uri:
        trust_list = TrustListRef(uri=summary.sdk_trust_list_uri, name=summary.sdk_trust_list_uri, category="custom")
    else:
        trust_list = TrustListRef()
    stamp = summary.timestamp
    return {
        "claim_state": summary.claim_state.value if summary.claim_state else None,
        "trust_list": trust_list,
        "spec_version": summary.spec_version,
        "validation_time": summary.validation_time,
        "signer": cert(am.signer_certificate) if am else None,
        "timestamp": TimestampOut(time=stamp.time, trusted=stamp.trusted, tsa=cert(stamp.tsa), codes=stamp.codes)
        if stamp else None,
        "ocsp": summary.ocsp,
        "identity_assertions": [IdentityAssertionOut(**asdict(i)) for i in summary.identity_assertions],
        "soft_bindings": [SoftBindingOut(**asdict(b)) for b in summary.soft_bindings],
        "is_update_manifest": bool(am and am.is_update_manifest),
        "remote_manifest_url": summary.remote_url,
    }


def ingredient_tree(summary: ManifestSummary) -> list[dict[str, Any]]:
    """Title, relationship, manifest, own state and codes of every ingredient, nested."""
    tree = summary.to_dict().get("ingredients")
    return tree if isinstance(tree, list) else []


def ingredient_failures(items: list[IngredientSummary]) -> list[IngredientFailure]:
    return [
        IngredientFailure(title=i.title, relationship=i.relationship, manifest_label=i.manifest_label, failure_codes=i.failure_codes)
        for i in items
    ]
