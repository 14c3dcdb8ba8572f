"""verify(image bytes) -> signed Report. The one path the API, the CLI and the benchmarks use.

Order of evidence: the image's own C2PA manifest first; then the registry (exact bytes,
then provenance search) to find the original it came from; then a comparison with that
original. The answer is signed and stored only once everything succeeded, so a failed
request writes nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import uuid
import time
from dataclasses import dataclass, field
from typing import Any


from manifests import (
    IngredientSummary,
    ManifestError,
    ManifestSummary,
    RemoteManifestError,
    UnsupportedFormatError,
    ValidationState,
    read_manifest,
)
from verifier import __version__
from verifier.compare import METHOD as PIXEL_METHOD
from verifier.compare import compare_pixels
from verifier.db import Database
from verifier.db.models import Original
from verifier.db.models import Report as ReportRow
from verifier.errors import NotFound, UnreadableManifest
from verifier.images import ImageInfo, load_image
from verifier.registry import Registry
from verifier.report import (
    C2paSection,
    CandidateScore,
    IngredientFailure,
    InputInfo,
    MatchSection,
    ModelVersion,
    PublisherRef,
    RecoveredManifest,
    Report,
    SearchSection,
    ServiceInfo,
    Verdict,
    canonical_json,
)
from verifier.report_keys import KeyRing
from verifier.search import ProvenanceSearch, SearchOutcome
from verifier.settings import Settings

log = logging.getLogger(__name__)

MAX_CANDIDATES_IN_REPORT = 10


@dataclass(frozen=True)
class SignedReport:
    report: dict[str, Any]
    jws: str
    # Not part of the signed report: what the benchmark reads from the same run.
    trace: dict[str, Any] = field(default_factory=dict, compare=False)

    def envelope(self) -> dict[str, Any]:
        return {"report": self.report, "jws": self.jws}


class VerificationPipeline:
    def __init__(self, settings: Settings, db: Database, registry: Registry, search: ProvenanceSearch, keys: KeyRing) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.search = search
        self.keys = keys

    # -- public ---------------------------------------------------------------------------

    def verify(self, data: bytes, *, api_key_id: uuid.UUID | None = None) -> SignedReport:
        clock = _Clock()
        info, image = load_image(data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_image_pixels)
        clock.lap("decode")
        c2pa = self._c2pa(data, info)
        clock.lap("c2pa")
        exact = self.registry.find_by_sha256(info.sha256)
        clock.lap("exact_lookup")
        outcome = self.search.search(image)
        clock.lap("stage1")
        original = exact or (self._original(outcome.match.original_id) if outcome.match else None)

        match = recovered = None
        pixel = None
        if original is not None:
            original_bytes = self.registry.original_bytes(original)
            if exact is None:
                _, original_image = load_image(original_bytes, max_bytes=len(original_bytes) + 1, max_pixels=original.width * original.height + 1)
                pixel = compare_pixels(image, original_image)
            match = self._match_section(original, outcome, exact is not None, pixel)
            clock.lap("compare")
            recovered = self._recovered(original, original_bytes)
            clock.lap("recover_manifest")

        verdict = _verdict(c2pa, original is not None, exact is not None, pixel)
        report = Report(
            id=uuid.uuid4(),
            created_at=dt.datetime.now(dt.timezone.utc),
            service=ServiceInfo(version=__version__),
            models=[ModelVersion(role="stage1-embedding", name=self.search.embedder.model_id, weights_sha256=self.search.embedder.weights_sha256)],
            input=InputInfo(sha256=info.sha256, mime=info.mime, width=info.width, height=info.height, size_bytes=info.size_bytes),
            c2pa=c2pa,
            match=match,
            search=SearchSection(method=outcome.method, decision_threshold=outcome.threshold, candidates=_candidates(outcome)),
            manipulation=None,
            recovered_manifest=recovered,
            verdict=verdict,
            summary=_summary_line(verdict, c2pa, match),
        )
        payload = report.payload()
        jws = self.keys.current().sign_compact(canonical_json(payload))
        with self.db.session() as session:
            session.add(
                ReportRow(
                    id=report.id,
                    created_at=report.created_at,
                    input_sha256=info.sha256,
                    verdict=verdict.value,
                    matched_original_id=original.id if original else None,
                    api_key_id=api_key_id,
                    report=payload,
                    jws=jws,
                )
            )
        clock.lap("sign_store")
        log.info("report %s: %s", report.id, verdict.value)
        trace = {"candidates": [(str(c.original_id), c.score) for c in outcome.candidates], "timings_ms": clock.laps}
        return SignedReport(payload, jws, trace)

    def get(self, report_id: uuid.UUID) -> SignedReport:
        with self.db.session() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                raise NotFound(f"no report {report_id}")
            return SignedReport(row.report, row.jws)

    def heatmap(self, report_id: uuid.UUID) -> bytes:
        with self.db.session() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                raise NotFound(f"no report {report_id}")
            if row.heatmap_png is None:
                raise NotFound(f"report {report_id} has no manipulation heatmap")
            return row.heatmap_png

    # -- stages ---------------------------------------------------------------------------

    def _c2pa(self, data: bytes, info: ImageInfo) -> C2paSection:
        try:
            summary = read_manifest(data, trust=self.settings.trust, mime=info.mime)
        except UnsupportedFormatError:
            return C2paSection(present=False)
        except RemoteManifestError as exc:
            return C2paSection(present=True, error={"type": exc.kind, "message": str(exc), "url": exc.url})
        except ManifestError as exc:
            raise UnreadableManifest(f"the image's C2PA data cannot be read: {exc}") from exc
        if not summary.present:
            return C2paSection(present=False)
        return C2paSection(
            present=True,
            state=summary.state.value if summary.state else None,
            manifests=summary.manifests_count,
            failure_codes=summary.failure_codes,
            informational_codes=summary.informational_codes,
            summary=_active_summary(summary),
            ingredient_failures=_ingredient_failures(summary.ingredient_failures()),
        )

    def _original(self, original_id: uuid.UUID) -> Original | None:
        try:
            return self.registry.get(original_id)
        except NotFound:  # deleted between search and lookup
            return None

    def _match_section(self, original: Original, outcome: SearchOutcome, exact: bool, pixel: Any) -> MatchSection:
        stage1 = next((c.score for c in outcome.candidates if c.original_id == original.id), None)
        scores: dict[str, float | None] = {"exact_sha256": 1.0 if exact else 0.0, "stage1": stage1}
        if pixel is not None:
            scores["pixel_global_psnr_db"] = round(pixel.global_psnr_db, 2)
            scores["pixel_min_cell_psnr_db"] = round(pixel.min_cell_psnr_db, 2)
        method = "exact-sha256" if exact else f"{outcome.method}; compare={PIXEL_METHOD}"
        return MatchSection(
            original_id=original.id,
            publisher=PublisherRef(id=original.publisher.id, name=original.publisher.name),
            registered_at=original.created_at,
            method=method,
            scores=scores,
            decision_threshold=outcome.threshold,
            candidates=_candidates(outcome),
        )

    def _recovered(self, original: Original, original_bytes: bytes) -> RecoveredManifest | None:
        """Re-validate the original's provenance now, from the stored bytes: its kept raw
        store where there is one, else the manifest embedded in the stored original (for
        containers whose store we do not extract)."""
        if not original.manifest_store and original.validation_state is None:
            return None  # registered unsigned
        store = original.manifest_store or None
        try:
            summary = read_manifest(original_bytes, trust=self.settings.trust, mime=original.mime, manifest_store=store)
            state = summary.state.value if summary.state else None
            failures, informational = summary.failure_codes, summary.informational_codes
            active, ingredient_failures = _active_summary(summary), _ingredient_failures(summary.ingredient_failures())
        except ManifestError as exc:  # the stored store no longer reads: say so, do not hide it
            state, failures, informational, active, ingredient_failures = "Invalid", [f"unreadable: {exc}"], [], None, []
        return RecoveredManifest(
            original_id=original.id,
            publisher=PublisherRef(id=original.publisher.id, name=original.publisher.name),
            registered_at=original.created_at,
            title=original.title,
            revalidated_at=dt.datetime.now(dt.timezone.utc),
            state=state,  # type: ignore[arg-type]
            failure_codes=failures,
            informational_codes=informational,
            summary=active,
            ingredient_failures=ingredient_failures,
            manifest_store_sha256=hashlib.sha256(store).hexdigest() if store else None,
            manifest_store_b64=base64.b64encode(store).decode() if store else None,
        )


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._t) * 1000, 3)
        self._t = now


def _candidates(outcome: SearchOutcome) -> list[CandidateScore]:
    return [
        CandidateScore(rank=i + 1, original_id=c.original_id, score=round(c.score, 6))
        for i, c in enumerate(outcome.candidates[:MAX_CANDIDATES_IN_REPORT])
    ]


def _active_summary(summary: ManifestSummary) -> dict[str, Any] | None:
    am = summary.to_dict().get("active_manifest")
    return am if isinstance(am, dict) else None


def _ingredient_failures(items: list[IngredientSummary]) -> list[IngredientFailure]:
    return [
        IngredientFailure(title=i.title, relationship=i.relationship, manifest_label=i.manifest_label, failure_codes=i.failure_codes)
        for i in items
    ]


def _verdict(c2pa: C2paSection, matched: bool, exact: bool, pixel: Any) -> Verdict:
    if c2pa.present and c2pa.state == ValidationState.TRUSTED.value:
        return Verdict.C2PA_TRUSTED
    if c2pa.present and c2pa.state == ValidationState.VALID.value:
        return Verdict.C2PA_VALID_UNTRUSTED
    if c2pa.present and c2pa.state == ValidationState.INVALID.value:
        return Verdict.C2PA_INVALID
    if not matched:
        return Verdict.NO_MATCH
    if exact or (pixel is not None and pixel.identical):
        return Verdict.MATCH_UNMODIFIED
    return Verdict.MATCH_BENIGN if pixel is not None and pixel.benign else Verdict.MATCH_MANIPULATED


def _summary_line(verdict: Verdict, c2pa: C2paSection, match: MatchSection | None) -> str:
    signer = ((c2pa.summary or {}).get("signer") or {}).get("common_name")
    origin = f" Registered original: {match.original_id} from {match.publisher.name}." if match else ""
    ingredient_note = " An ingredient's own credentials do not validate." if c2pa.ingredient_failures else ""
    lines = {
        Verdict.C2PA_TRUSTED: f"Content Credentials validate and are signed by a trusted signer ({signer}).",
        Verdict.C2PA_VALID_UNTRUSTED: f"Content Credentials validate but the signer ({signer}) is not on the trust list.",
        Verdict.C2PA_INVALID: f"Content Credentials are present but do not validate ({', '.join(c2pa.failure_codes[:3])}).",
        Verdict.MATCH_UNMODIFIED: "No valid Content Credentials; the image is identical to a registered original.",
        Verdict.MATCH_BENIGN: "No valid Content Credentials; the image is a copy of a registered original with only benign changes (baseline pixel check).",
        Verdict.MATCH_MANIPULATED: "No valid Content Credentials; the image derives from a registered original but its content differs (baseline pixel check).",
        Verdict.NO_MATCH: "No valid Content Credentials and no registered original matches.",
    }
    return lines[verdict] + ingredient_note + origin
