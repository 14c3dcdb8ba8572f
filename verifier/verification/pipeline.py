"""verify(image bytes) -> signed Report. The one path the API, the CLI and the benchmarks use.

Order of evidence: the image's own C2PA manifest first; then matching (exact bytes, then
SImProv provenance search) finds the registered original it came from and how it differs;
the report is assembled from that evidence, signed, and stored. It is stored only once
everything succeeded, so a failed request writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from manifests.formats import detect_mime, supported_mime_types
from verifier import __version__
from verifier.errors import NotAnImage, NotFound
from verifier.images import STILL_MIMES, frame_count, later_frames, load_image
from verifier.matching.evidence import Evidence
from verifier.matching.matcher import Matcher, Stopwatch
from verifier.reports.heatmap import (
    overlay_sources,
    render_aligned,
    render_layer,
    render_overlay_from,
)
from verifier.reports.schema import (
    InputInfo,
    MarkFound,
    ModelVersion,
    PublisherRef,
    Report,
    SearchSection,
    ServiceInfo,
    canonical_json,
)
from verifier.reports.signing import KeyRing
from verifier.settings import Settings
from verifier.simprov.change import OUTLINE_THRESHOLD
from verifier.storage.models import Report as ReportRow
from verifier.storage.reports import Reader, ReportStore
from verifier.verification import assemble
from verifier.verification.credentials import query_credentials, recovered_credentials
from verifier.verification.resolution import check_bindings, fingerprint_alg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignedReport:
    report: dict[str, Any]
    jws: str
    # Not part of the signed report: what matching found, for the benchmark (same run).
    evidence: Evidence | None = field(default=None, compare=False)
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    def envelope(self) -> dict[str, Any]:
        return {"report": self.report, "jws": self.jws}


class VerificationPipeline:
    def __init__(self, settings: Settings, matcher: Matcher, reports: ReportStore, keys: KeyRing) -> None:
        self.settings = settings
        self.matcher = matcher
        self.reports = reports
        self.keys = keys

    def verify(self, data: bytes, *, api_key_id: uuid.UUID | None = None) -> SignedReport:
        clock = Stopwatch()
        try:
            info, image = load_image(data, max_bytes=self.settings.max_upload_bytes,
                                     max_pixels=self.settings.max_image_pixels, max_side=self.settings.work_max_side)
        except NotAnImage:
            mime = detect_mime(data)
            if mime is None or mime not in supported_mime_types():
                raise
            return self._credentials_only(data, mime, api_key_id, clock)
        clock.lap("decode")
        c2pa = query_credentials(data, info.mime, self.settings.trust)
        clock.lap("c2pa")
        ev = self.matcher.match(image, info.sha256)
        clock.add(ev.timings_ms)
        frames = frame_count(data) if info.mime not in STILL_MIMES else 1
        frame_index = 0
        if ev.original is None and frames > 1:
            for index, frame in later_frames(data, frames, max_frames=self.settings.animation_frames,
                                             max_side=self.settings.work_max_side, max_pixels=self.settings.max_image_pixels):
                other = self.matcher.match(frame, info.sha256)
                if other.original is not None:
                    ev, image, frame_index = other, frame, index
                    break
        if frames > 1:
            clock.lap("later_frames")

        report_id = uuid.uuid4()
        match = assemble.match_section(ev)
        recovered = None
        if ev.original is not None and ev.original_bytes is not None:
            recovered = recovered_credentials(ev.original, ev.original_bytes, self.settings.trust)
            if recovered is not None and recovered.soft_bindings:
                search = self.matcher.search
                recovered.soft_bindings = check_bindings(recovered.soft_bindings, fingerprint_alg(search.embedder.model_id),
                                                         ev.stage1.query_vector, search.calibration.threshold)
        clock.lap("recover_manifest")
        heatmap_layer = heat_sources = None
        manipulation = None
        if ev.change is not None:
            if ev.change.query_heat is not None:
                # The overlay PNG is rendered on its first request, from these (issue 15: it cost
                # ~150 ms of every manipulated verdict here).
                heat_sources = overlay_sources(image, ev.change.query_heat)
                heatmap_layer = render_layer(ev.change.query_heat, OUTLINE_THRESHOLD)
            # the work frame (stretched, when the query matched so) -> the upload's pixels
            sx, sy = ev.stretch or (1.0, 1.0)
            to_full = (info.width / (image.width * sx), info.height / (image.height * sy))
            # the original's side likewise: from the frame ingest reduced it to, to its own pixels
            frame = ev.change.original_frame
            from_original = 1.0
            if frame is not None and ev.original is not None:
                from_original = max(frame) / max(ev.original.width, ev.original.height)  # orientation-proof: long sides
            manipulation = assemble.manipulation_section(ev.change, report_id, heat_sources is not None, to_full,
                                                         from_original)
            clock.lap("heatmap")
        verdict = assemble.verdict(c2pa, ev)
        report = Report(
            id=report_id,
            created_at=dt.datetime.now(dt.UTC),
            service=ServiceInfo(version=__version__),
            models=self.models(),
            input=InputInfo(sha256=info.sha256, mime=info.mime, width=info.width, height=info.height, size_bytes=info.size_bytes,
                            frames=frames),
            c2pa=c2pa,
            match=match,
            search=SearchSection(method=ev.stage1.method, decision_threshold=ev.stage1.threshold,
                                 candidates=assemble.candidates(ev),
                                 publisher_marks=[MarkFound(mark_id=m.id, publisher=PublisherRef(id=m.publisher_id, name=m.publisher),
                                                            label=m.label, keypoints=m.keypoints) for m in ev.marks],
                                 frame=frame_index, channel_split=assemble.channel_split(ev, info.width / image.width,
                                                                                          info.height / image.height),
                                 stretch=None if ev.stretch is None else (round(ev.stretch[0], 4), round(ev.stretch[1], 4))),
            manipulation=manipulation,
            recovered_manifest=recovered,
            verdict=verdict,
            summary=assemble.summary_line(verdict, c2pa, match, ev.change is not None,
                                          warped=ev.change is not None and ev.change.warped,
                                          added=ev.change.outside.added_fraction if ev.change and ev.change.outside else 0.0,
                                          recoloured=ev.change is not None and ev.change.colour_mapped,
                                          recoloured_region=ev.change is not None and ev.change.recoloured,
                                          by_geometry=ev.stage2 is not None and ev.stage2.by_geometry,
                                          shown=ev.change.original_shown if ev.change else None,
                                          inverted=ev.change is not None and ev.change.tones_inverted,
                                          channels_realigned=ev.channel_split is not None, stretch=ev.stretch,
                                          squeezed=None if manipulation is None or ev.original is None else assemble.squeeze(
                                              manipulation.alignment, (ev.original.width, ev.original.height))),
        )
        payload = report.payload()
        jws = self.keys.current().sign_compact(canonical_json(payload))
        self.reports.add(
            ReportRow(
                id=report.id,
                created_at=report.created_at,
                input_sha256=info.sha256,
                verdict=verdict.value,
                matched_original_id=ev.original.id if ev.original else None,
                api_key_id=api_key_id,
                report=payload,
                jws=jws,
                heatmap_png=None,
                heatmap_layer_png=heatmap_layer,
                heatmap_query_jpeg=heat_sources[0] if heat_sources else None,
                heatmap_heat_png=heat_sources[1] if heat_sources else None,
            )
        )
        clock.lap("sign_store")
        log.info("report %s: %s", report.id, verdict.value)
        return SignedReport(payload, jws, ev, clock.laps)

    def _credentials_only(self, data: bytes, mime: str, api_key_id: uuid.UUID | None, clock: Stopwatch) -> SignedReport:
        """An asset C2PA covers but SImProv does not (SVG, PDF, video, audio): its own Content
        Credentials are checked; provenance search is not applicable."""
        sha256 = hashlib.sha256(data).hexdigest()
        c2pa = query_credentials(data, mime, self.settings.trust)
        clock.lap("c2pa")
        verdict = assemble.verdict(c2pa, None)
        report = Report(
            id=uuid.uuid4(),
            created_at=dt.datetime.now(dt.UTC),
            service=ServiceInfo(version=__version__),
            models=self.models(),
            input=InputInfo(sha256=sha256, mime=mime, width=None, height=None, size_bytes=len(data)),
            c2pa=c2pa,
            match=None,
            search=SearchSection(method="not-applicable", decision_threshold=None, candidates=[]),
            manipulation=None,
            recovered_manifest=None,
            verdict=verdict,
            summary=assemble.summary_line(verdict, c2pa, None, False)
            + f" Provenance search covers raster images only; this is {mime}.",
        )
        payload = report.payload()
        jws = self.keys.current().sign_compact(canonical_json(payload))
        self.reports.add(ReportRow(id=report.id, created_at=report.created_at, input_sha256=sha256,
                                   verdict=verdict.value, matched_original_id=None, api_key_id=api_key_id,
                                   report=payload, jws=jws, heatmap_png=None, heatmap_layer_png=None))
        clock.lap("sign_store")
        log.info("report %s (%s, credentials only): %s", report.id, mime, verdict.value)
        return SignedReport(payload, jws, None, clock.laps)

    def models(self) -> list[ModelVersion]:
        return [ModelVersion(role=m.role, name=m.model_id, weights_sha256=m.weights_sha256) for m in self.matcher.models()]

    def get(self, report_id: uuid.UUID, reader: Reader) -> SignedReport:
        stored = self.reports.get(report_id, reader)
        return SignedReport(stored.report, stored.jws)

    def heatmap(self, report_id: uuid.UUID, reader: Reader, *, layer: bool = False) -> bytes:
        parts = self.reports.heatmap(report_id, reader, layer=layer)
        if parts.png is not None:
            return parts.png
        assert parts.query_jpeg is not None and parts.heat_png is not None
        png = render_overlay_from(parts.query_jpeg, parts.heat_png, OUTLINE_THRESHOLD)
        self.reports.keep_heatmap(report_id, png)
        return png

    def aligned_original(self, report_id: uuid.UUID, reader: Reader) -> bytes:
        """The report's matched original in the query's frame (JPEG), for the compare view."""
        report = self.reports.get(report_id, reader).report
        match = report.get("match")
        if not match:
            raise NotFound(f"report {report_id} matched no original")
        original = self.matcher.originals.get(uuid.UUID(match["original_id"]))  # NotFound once deleted
        alignment = (report.get("manipulation") or {}).get("alignment")
        size = (int(report["input"]["width"]), int(report["input"]["height"]))
        image = self.matcher.originals.image(original)
        return render_aligned(image, np.asarray(alignment) if alignment else None, size)
