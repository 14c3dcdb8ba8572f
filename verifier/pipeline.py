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
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

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
from verifier.change import (
    CHANGE_ID,
    DECISION_THRESHOLD,
    OUTLINE_THRESHOLD,
    ChangeDetector,
    ChangeResult,
    render_overlay,
)
from verifier.compare import METHOD as PIXEL_METHOD
from verifier.compare import compare_pixels
from verifier.db import Database
from verifier.db.models import Original
from verifier.db.models import Report as ReportRow
from verifier.errors import NotFound, UnreadableManifest
from verifier.images import ImageInfo, load_image, load_stored
from verifier.pairs import View, align_pair
from verifier.registry import Registry
from verifier.report import (
    C2paSection,
    CandidateScore,
    IngredientFailure,
    InputInfo,
    Manipulation,
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
from verifier.rerank import PSEN_ID, REORDER_ID, Reranker, Stage2Result
from verifier.search import ProvenanceSearch, SearchOutcome
from verifier.settings import Settings
from verifier.views import CandidateViews

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
    def __init__(
        self,
        settings: Settings,
        db: Database,
        registry: Registry,
        search: ProvenanceSearch,
        keys: KeyRing,
        views: CandidateViews | None = None,
        reranker: Reranker | None = None,
        change: ChangeDetector | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.search = search
        self.keys = keys
        self.views = views
        # SImProv stages 2-3 need all three; without them the stage-1 threshold decides the
        # match and the baseline pixel check decides benign vs manipulated.
        self.reranker = reranker if (views and change) else None
        self.change = change if (views and reranker) else None

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
        stage2: Stage2Result | None = None
        query_view: View | None = None
        original: Original | None = exact
        if exact is None and self.reranker is not None and outcome.candidates:
            query_view = View.of(image)
            stage2 = self._stage2(query_view, outcome)
            clock.lap("stage2")
            if stage2.choice is not None:
                original = self._original(outcome.candidates[stage2.choice].original_id)
        elif exact is None and outcome.match:
            original = self._original(outcome.match.original_id)

        match = recovered = manipulation = None
        pixel = change = None
        heatmap_png: bytes | None = None
        if original is not None:
            original_bytes = self.registry.original_bytes(original)
            if exact is None:
                original_image = self._decode_original(original, original_bytes)
                pixel = compare_pixels(image, original_image)
                clock.lap("compare")
                if not pixel.identical and self.change is not None and query_view is not None and stage2 is not None:
                    change, heatmap_png = self._stage3(image, query_view, original, original_image, outcome, stage2)
                    clock.lap("stage3")
            match = self._match_section(original, outcome, exact is not None, pixel, stage2, change)
            recovered = self._recovered(original, original_bytes)
            clock.lap("recover_manifest")
        report_id = uuid.uuid4()
        if change is not None:
            region = change.region()
            manipulation = Manipulation(
                method=f"{CHANGE_ID} (PEN + 7x7 heatmap head), alignment=sift-ransac-homography+dis-flow",
                decision="manipulated" if change.manipulated else "benign",
                probability_benign=round(1 - change.p_manipulated, 6),
                probability_manipulated=round(change.p_manipulated, 6),
                decision_threshold=DECISION_THRESHOLD,
                grid=[[round(float(v), 4) for v in row] for row in change.grid],
                grid_frame="original",
                outline_threshold=OUTLINE_THRESHOLD,
                region_fraction=round(float(region.mean()), 6) if region is not None else 0.0,
                heatmap_url=f"/v1/reports/{report_id}/heatmap.png" if heatmap_png else None,
            )

        verdict = _verdict(c2pa, original is not None, exact is not None, pixel, change)
        report = Report(
            id=report_id,
            created_at=dt.datetime.now(dt.UTC),
            service=ServiceInfo(version=__version__),
            models=self._models(),
            input=InputInfo(sha256=info.sha256, mime=info.mime, width=info.width, height=info.height, size_bytes=info.size_bytes),
            c2pa=c2pa,
            match=match,
            search=SearchSection(method=outcome.method, decision_threshold=outcome.threshold, candidates=_candidates(outcome)),
            manipulation=manipulation,
            recovered_manifest=recovered,
            verdict=verdict,
            summary=_summary_line(verdict, c2pa, match, change is not None),
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
                    heatmap_png=heatmap_png,
                )
            )
        clock.lap("sign_store")
        log.info("report %s: %s", report.id, verdict.value)
        trace: dict[str, Any] = {
            "candidates": [(str(c.original_id), c.score) for c in outcome.candidates],
            "query_vector": outcome.query_vector,
            "timings_ms": clock.laps,
        }
        if stage2 is not None:
            trace["stage2"] = {
                "choice": stage2.choice, "p_absent": stage2.p_absent, "probability": stage2.probability,
                "psen": {str(outcome.candidates[i].original_id): p for i, p in stage2.psen.items()},
                "order": [str(outcome.candidates[i].original_id) for i in stage2.order(len(outcome.candidates))],
            }
        if change is not None:
            trace["stage3"] = {"p_manipulated": change.p_manipulated, "query_heat": change.query_heat}
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

    def _models(self) -> list[ModelVersion]:
        models = [ModelVersion(role="stage1-embedding", name=self.search.embedder.model_id, weights_sha256=self.search.embedder.weights_sha256)]
        if self.reranker is not None and self.change is not None:
            models += [
                ModelVersion(role="stage2-psen", name=PSEN_ID, weights_sha256=self.reranker.psen_sha256),
                ModelVersion(role="stage2-reorderer", name=REORDER_ID, weights_sha256=self.reranker.reorder_sha256),
                ModelVersion(role="stage3-change", name=CHANGE_ID, weights_sha256=self.change.sha256),
            ]
        return models

    def _decode_original(self, original: Original, data: bytes) -> Image.Image:
        return load_stored(data, original.width, original.height)

    def _view(self, original_id: uuid.UUID) -> View:
        assert self.views is not None

        def load() -> Image.Image:
            original = self.registry.get(original_id)
            return self._decode_original(original, self.registry.original_bytes(original))

        return self.views.get(original_id, load)

    def _stage2(self, query_view: View, outcome: SearchOutcome) -> Stage2Result:
        assert self.reranker is not None and outcome.query_vector is not None
        ids = [c.original_id for c in outcome.candidates]
        cosines = np.array([c.score for c in outcome.candidates], np.float32)
        return self.reranker.rerank(query_view, outcome.query_vector, cosines, outcome.threshold, self._view, self.search.vectors_for, ids)

    def _stage3(self, image: Image.Image, query_view: View, original: Original, original_image: Image.Image,
                outcome: SearchOutcome, stage2: Stage2Result) -> tuple[ChangeResult, bytes | None]:
        assert self.change is not None and self.views is not None
        cand_view = self.views.get(original.id, lambda: original_image)
        index = next((i for i, c in enumerate(outcome.candidates) if c.original_id == original.id), None)
        pair = stage2.pairs.get(index) if index is not None else None
        if pair is None:
            pair = align_pair(query_view, cand_view)
        change = self.change.analyse(pair, query_view, cand_view, image.size)
        png = render_overlay(image, change.query_heat) if change.query_heat is not None else None
        return change, png

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

    def _match_section(self, original: Original, outcome: SearchOutcome, exact: bool, pixel: Any,
                       stage2: Stage2Result | None, change: ChangeResult | None) -> MatchSection:
        index = next((i for i, c in enumerate(outcome.candidates) if c.original_id == original.id), None)
        stage1 = outcome.candidates[index].score if index is not None else None
        scores: dict[str, float | None] = {"exact_sha256": 1.0 if exact else 0.0, "stage1": stage1}
        if stage2 is not None:
            scores["stage2_psen"] = round(stage2.psen[index], 6) if index in stage2.psen else None
            scores["stage2_reorderer"] = round(stage2.probability, 6)
            scores["stage2_p_absent"] = round(stage2.p_absent, 6)
        if change is not None:
            scores["stage3_p_manipulated"] = round(change.p_manipulated, 6)
        if pixel is not None:
            scores["pixel_global_psnr_db"] = round(pixel.global_psnr_db, 2)
            scores["pixel_min_cell_psnr_db"] = round(pixel.min_cell_psnr_db, 2)
        if exact:
            method = "exact-sha256"
        elif stage2 is not None:
            method = f"{outcome.method}; stage2={PSEN_ID}+{REORDER_ID}; compare={CHANGE_ID}"
        else:
            method = f"{outcome.method}; compare={PIXEL_METHOD}"
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
            revalidated_at=dt.datetime.now(dt.UTC),
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


def _verdict(c2pa: C2paSection, matched: bool, exact: bool, pixel: Any, change: ChangeResult | None) -> Verdict:
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
    if change is not None:
        return Verdict.MATCH_MANIPULATED if change.manipulated else Verdict.MATCH_BENIGN
    return Verdict.MATCH_BENIGN if pixel is not None and pixel.benign else Verdict.MATCH_MANIPULATED


def _summary_line(verdict: Verdict, c2pa: C2paSection, match: MatchSection | None, learned: bool) -> str:
    signer = ((c2pa.summary or {}).get("signer") or {}).get("common_name")
    origin = f" Registered original: {match.original_id} from {match.publisher.name}." if match else ""
    ingredient_note = " An ingredient's own credentials do not validate." if c2pa.ingredient_failures else ""
    how = "SImProv stage 3 comparison with the aligned original" if learned else "baseline pixel check"
    where = "; the heatmap shows where" if learned else ""
    lines = {
        Verdict.C2PA_TRUSTED: f"Content Credentials validate and are signed by a trusted signer ({signer}).",
        Verdict.C2PA_VALID_UNTRUSTED: f"Content Credentials validate but the signer ({signer}) is not on the trust list.",
        Verdict.C2PA_INVALID: f"Content Credentials are present but do not validate ({', '.join(c2pa.failure_codes[:3])}).",
        Verdict.MATCH_UNMODIFIED: "No valid Content Credentials; the image is identical to a registered original.",
        Verdict.MATCH_BENIGN: f"No valid Content Credentials; the image is a copy of a registered original with only benign changes ({how}).",
        Verdict.MATCH_MANIPULATED: f"No valid Content Credentials; the image derives from a registered original but its content was changed ({how}{where}).",
        Verdict.NO_MATCH: "No valid Content Credentials and no registered original matches.",
    }
    return lines[verdict] + ingredient_note + origin
