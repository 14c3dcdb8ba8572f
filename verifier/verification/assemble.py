"""Evidence -> the report's sections: the match, the manipulation analysis, the verdict and
the one line a person reads. Pure functions of what matching found, so that the rules that
turn scores into a verdict sit in one place."""

from __future__ import annotations

import uuid

import numpy as np

from manifests import ValidationState
from verifier.matching.evidence import Evidence
from verifier.reports.schema import (
    C2paSection,
    CandidateScore,
    ChannelSplit,
    LocalRecolour,
    LocalWarp,
    Manipulation,
    MatchSection,
    PublisherRef,
    RelatedOriginal,
    Verdict,
)
from verifier.simprov.catalog import CHANGE_ID, PSEN_ID, REORDER_ID
from verifier.simprov.change import DECISION_THRESHOLD, OUTLINE_THRESHOLD, ChangeResult
from verifier.simprov.compare import METHOD as PIXEL_METHOD

MAX_CANDIDATES_IN_REPORT = 10
# From this share of the query outside the original the summary says so: a composite, a meme or
# a photo of a screen, whatever stage 3 found inside the original's frame. Benign copies of
# `train` photos (pads, rotations) reached 5.5 % at most (BENCHMARKS.md, "Outside the original").
ADDED_NOTE = 0.1
# From this share of the original's frame cut off, the summary says how much the image shows:
# what a crop leaves out can change what a photo says.
SHOWN_NOTE = 0.85
# The summary says the image's proportions differ from the original's when the alignment squeezes it this
# much along one side against the other, near-affinely and along the image's axes (a photo fitted to a frame
# of another shape; not a tilt's perspective nor a turn). SIFT itself matched up to ~1.75:1 unaided.
SQUEEZE_NOTE = 1.5
SQUEEZE_SHEAR = 0.1  # the off-diagonal terms, at most this share of the smaller scale
SQUEEZE_PERSPECTIVE = 0.05  # the perspective terms' change of scale across the original's frame, at most


def candidates(ev: Evidence) -> list[CandidateScore]:
    """The closest registered originals in stage 1+2's order, each with what stage 2 measured of it.
    When nothing matched these are a fact-checker's leads, and the order is the one the benchmark's
    stage 1+2 IR@k counts (before report 1.11 the list kept stage 1's order, which stage 2 improves
    on: BENCHMARKS.md, "The report's candidates in stage 2's order")."""
    cands, stage2 = ev.stage1.candidates, ev.stage2
    listed = []
    for rank, i in enumerate(ev.stage12_indices()[:MAX_CANDIDATES_IN_REPORT], 1):
        c = cands[i]
        same = reorderer = inliers = None
        if stage2 is not None:
            same = round(float(stage2.psen[i]), 6) if i in stage2.psen else None
            reorderer = round(stage2.given(i), 6) if stage2.probs is not None else None
            pair = stage2.pairs.get(i)
            inliers = pair.alignment.inliers if pair is not None else stage2.screened.get(i)
        listed.append(CandidateScore(rank=rank, original_id=c.original_id, score=round(c.score, 6), stage1_rank=i + 1,
                                     same_image=same, reorderer=reorderer,
                                     inliers=int(inliers) if inliers else None))
    return listed


def channel_split(ev: Evidence, sx: float, sy: float) -> ChannelSplit | None:
    """The split the matcher undid, in the upload's pixels (`sx`, `sy`: the work frame to them)."""
    split = ev.channel_split
    if split is None:
        return None
    return ChannelSplit(red=(round(split.red[0] * sx, 1), round(split.red[1] * sy, 1)),
                        blue=(round(split.blue[0] * sx, 1), round(split.blue[1] * sy, 1)))


def match_section(ev: Evidence) -> MatchSection | None:
    original, outcome, stage2 = ev.original, ev.stage1, ev.stage2
    if original is None:
        return None
    index = outcome.index_of(original.id)
    stage1 = outcome.candidates[index].score if index is not None else None
    scores: dict[str, float | None] = {"exact_sha256": 1.0 if ev.exact else 0.0, "stage1": stage1}
    if stage2 is not None:
        scores["stage2_psen"] = round(stage2.psen[index], 6) if index in stage2.psen else None
        scores["stage2_reorderer"] = round(stage2.probability, 6)
        scores["stage2_p_absent"] = round(stage2.p_absent, 6)
        # the geometric evidence the match rests on (matching's gate): RANSAC inliers of the alignment
        scores["stage2_inliers"] = float(stage2.pairs[index].alignment.inliers) if index in stage2.pairs else None
    if ev.change is not None:
        scores["stage3_p_manipulated"] = round(ev.change.p_manipulated, 6)
    if ev.pixel is not None:
        scores["pixel_global_psnr_db"] = round(ev.pixel.global_psnr_db, 2)
        scores["pixel_min_cell_psnr_db"] = round(ev.pixel.min_cell_psnr_db, 2)
    if ev.exact:
        method = "exact-sha256"
    elif stage2 is not None:
        # chosen by the geometric screen, not the re-orderer; "-geometry": on its inliers alone, PSEN said different
        # "+closer-look": fitted at a finer scale than the working frame (matching's `_closer_look`,
        # or `_detail_fit` at the frame ingest kept)
        look = "+closer-look" if stage2.by_closer else "+ransac-screen"
        screen = (f"{look}-geometry" if stage2.by_geometry else look) if stage2.promoted else ""
        method = f"{outcome.method}; stage2={PSEN_ID}+{REORDER_ID}{screen}; compare={CHANGE_ID}"
    else:
        method = f"{outcome.method}; compare={PIXEL_METHOD}"
    return MatchSection(
        original_id=original.id,
        publisher=PublisherRef(id=original.publisher.id, name=original.publisher.name),
        registered_at=original.created_at,
        method=method,
        scores=scores,
        decision_threshold=outcome.threshold,
        candidates=candidates(ev),
        related=[
            RelatedOriginal(original_id=r.original.id, publisher=PublisherRef(id=r.original.publisher.id,
                            name=r.original.publisher.name), registered_at=r.original.created_at,
                            relation=r.relation, score=r.score)  # type: ignore[arg-type]
            for r in ev.related
        ],
    )


def manipulation_section(change: ChangeResult, report_id: uuid.UUID, has_heatmap: bool,
                         to_full: tuple[float, float] = (1.0, 1.0), from_original: float = 1.0) -> Manipulation:
    """`to_full`: scale from the frame the query was processed in to its own pixels;
    `from_original`: from the original's own pixels to the frame its view was made in (ingest
    reduces an original larger than `work_max_side`). The alignment then maps the original's
    pixels to the upload's, as the report says."""
    region = change.region()
    alignment = None
    if change.to_query is not None:
        h = np.diag([to_full[0], to_full[1], 1.0]) @ change.to_query @ np.diag([from_original, from_original, 1.0])
        alignment = [[round(float(v), 8) for v in row] for row in h]
    return Manipulation(
        method=f"{CHANGE_ID} (PEN + 7x7 heatmap head, refined to pixels by the aligned residual), "
        "alignment=sift-ransac-homography+dis-flow",
        decision="manipulated" if change.manipulated else "benign",
        probability_benign=round(1 - change.p_manipulated, 6),
        probability_manipulated=round(change.p_manipulated, 6),
        decision_threshold=DECISION_THRESHOLD,
        grid=[[round(float(v), 4) for v in row] for row in change.grid],
        grid_frame="original",
        outline_threshold=OUTLINE_THRESHOLD,
        region_fraction=round(float(region.mean()), 6) if region is not None else 0.0,
        heatmap_url=f"/v1/reports/{report_id}/heatmap.png" if has_heatmap else None,
        heatmap_layer_url=f"/v1/reports/{report_id}/heatmap-layer.png" if has_heatmap else None,
        alignment=alignment,
        local_warp=None if change.moved is None else LocalWarp(
            detected=change.warped,
            max_displacement=round(float(change.moved.max()), 6),
            threshold=round(change.warp_threshold, 6),
            grid=[[round(float(v), 5) for v in row] for row in change.moved],
        ),
        local_recolour=None if change.recolour_share is None else LocalRecolour(
            detected=change.recoloured, share=round(change.recolour_share, 6), threshold=round(change.recolour_threshold, 6)),
        original_coverage=None if change.outside is None else round(change.outside.coverage, 4),
        original_shown=None if change.original_shown is None else round(change.original_shown, 4),
        added_content_fraction=None if change.outside is None else round(change.outside.added_fraction, 4),
        colour_map_gain=None if change.colour_gain is None else round(change.colour_gain, 2),
        colour_mapped=change.colour_mapped,
        tones_inverted=change.tones_inverted,
    )


def squeeze(alignment: list[list[float]] | None, size: tuple[int, int]) -> tuple[str, float] | None:
    """How the alignment (original -> upload pixels) squeezes the original of `size` (w, h): ('across' or
    'down', factor) from SQUEEZE_NOTE on; None for anything else (no alignment, a uniform scale, a tilt, a turn)."""
    if alignment is None:
        return None
    h = np.array(alignment, np.float64)
    if not np.isfinite(h).all() or abs(h[2, 2]) < 1e-12:
        return None
    h = h / h[2, 2]
    if abs(h[2, 0]) * size[0] + abs(h[2, 1]) * size[1] > SQUEEZE_PERSPECTIVE:
        return None
    sx, sy = abs(h[0, 0]), abs(h[1, 1])
    if min(sx, sy) < 1e-9 or max(abs(h[0, 1]), abs(h[1, 0])) > SQUEEZE_SHEAR * min(sx, sy):
        return None
    factor = max(sx, sy) / min(sx, sy)
    return ("across" if sx < sy else "down", factor) if factor >= SQUEEZE_NOTE else None


def verdict(c2pa: C2paSection, ev: Evidence | None) -> Verdict:
    """A valid manifest speaks first; then what the registry says about the pixels (ev None:
    the asset is not a raster image, so there is no search)."""
    # The claim signer's standing: an untrusted identity assertion does not lower it, and a
    # TSA or CAWG root that the SDK pools with the manifest anchors does not raise it.
    state = c2pa.claim_state or c2pa.state
    if c2pa.present and state == ValidationState.TRUSTED.value:
        return Verdict.C2PA_TRUSTED
    if c2pa.present and state == ValidationState.VALID.value:
        return Verdict.C2PA_VALID_UNTRUSTED
    if c2pa.present and state == ValidationState.INVALID.value:
        return Verdict.C2PA_INVALID
    if ev is None or ev.original is None:
        return Verdict.NO_MATCH
    pixel, change = ev.pixel, ev.change
    if ev.exact or (pixel is not None and pixel.identical):
        return Verdict.MATCH_UNMODIFIED
    if change is not None:
        return Verdict.MATCH_MANIPULATED if change.manipulated else Verdict.MATCH_BENIGN
    return Verdict.MATCH_BENIGN if pixel is not None and pixel.benign else Verdict.MATCH_MANIPULATED


def summary_line(v: Verdict, c2pa: C2paSection, match: MatchSection | None, learned: bool, warped: bool = False,
                 added: float = 0.0, recoloured: bool = False, recoloured_region: bool = False,
                 by_geometry: bool = False, shown: float | None = None, inverted: bool = False,
                 channels_realigned: bool = False, stretch: tuple[float, float] | None = None,
                 squeezed: tuple[str, float] | None = None) -> str:
    """`warped`: stage 3 found content moved locally (a liquify-style warp), said in words
    because ChangeNet's probability alone would read as benign; `recoloured_region` likewise: a
    region whose colour changed on its own. `added`: the share of the
    query that is content outside the original, said from ADDED_NOTE because stage 3's verdict
    is about the original's frame only. `recoloured`: stage 3 judged the copy with a global
    colour change undone, said so that "benign" is not read as "looks the same". `by_geometry`: the
    match rests on the alignment alone (stage 2's strong fit), the learned check having said
    "different", which a fact-checker should know before relying on it. `shown`: the share of the
    original's frame the image shows, said under SHOWN_NOTE. `inverted`: the image is the original's
    negative, compared with its tones inverted back (a verdict of benign would not say so).
    `channels_realigned`: its colour channels lay shifted (a glitch filter) and were moved back first.
    `stretch`: the (x, y) factors it matched stretched by (its content lay squeezed). `squeezed`: how the
    alignment squeezes the original (`squeeze`), said whether or not the search had to stretch it."""
    signer = ((c2pa.summary or {}).get("signer") or {}).get("common_name")
    origin = f" Registered original: {match.original_id} from {match.publisher.name}." if match else ""
    ingredient_note = " An ingredient's own credentials do not validate." if c2pa.ingredient_failures else ""
    how = "SImProv stage 3 comparison with the aligned original" if learned else "baseline pixel check"
    where = "; the heatmap shows where" if learned else ""
    if warped:
        how += ", which found content moved locally, as a liquify or warp tool does"
    if recoloured_region:
        how += ", which found a region whose colour was changed on its own, as a recolouring or colour-replace tool does"
    if inverted and learned:
        how += ", made after inverting the image's tones back: it is a negative of the original, as an invert filter makes"
    if recoloured and learned:
        how += ", made after undoing a change of colour throughout the image, as a filter or grading makes"
    lines = {
        Verdict.C2PA_TRUSTED: f"Content Credentials validate and are signed by a trusted signer ({signer}).",
        Verdict.C2PA_VALID_UNTRUSTED: f"Content Credentials validate but the signer ({signer}) is not on the trust list.",
        Verdict.C2PA_INVALID: f"Content Credentials are present but do not validate ({', '.join(c2pa.failure_codes[:3])}).",
        Verdict.MATCH_UNMODIFIED: "No valid Content Credentials; the image is identical to a registered original.",
        Verdict.MATCH_BENIGN: f"No valid Content Credentials; the image is a copy of a registered original with only benign changes ({how}).",
        Verdict.MATCH_MANIPULATED: f"No valid Content Credentials; the image derives from a registered original but its content was changed ({how}{where}).",
        Verdict.NO_MATCH: "No valid Content Credentials and no registered original matches.",
    }
    around = ""
    if added >= ADDED_NOTE and v in (Verdict.MATCH_BENIGN, Verdict.MATCH_MANIPULATED):
        around = f" About {round(100 * added)} % of the image lies outside the original: other content around or beside it."
    if shown is not None and shown < SHOWN_NOTE and v in (Verdict.MATCH_BENIGN, Verdict.MATCH_MANIPULATED):
        around += f" The image shows about {round(100 * shown)} % of the original's frame; the rest is cut off."
    geometry = ""
    if by_geometry and match is not None and v in (Verdict.MATCH_BENIGN, Verdict.MATCH_MANIPULATED):
        points = match.scores.get("stage2_inliers")
        geometry = (f" The match rests on the geometric fit of {int(points or 0)} matched points; the learned "
                    "same-image check called the pair different, as it does when the original is a small part of the image.")
    channels = ""
    if channels_realigned and v in (Verdict.MATCH_BENIGN, Verdict.MATCH_MANIPULATED):
        channels = (" Its colour channels lay shifted against each other, as a glitch or RGB-split filter leaves them; "
                    "they were moved back into register before the comparison.")
    proportions = ""
    if stretch is not None and squeezed is None:  # the search's factors, where the alignment is no plain squeeze
        squeezed = ("across" if stretch[0] >= stretch[1] else "down", max(stretch) / min(stretch))
    if squeezed is not None and v in (Verdict.MATCH_BENIGN, Verdict.MATCH_MANIPULATED):
        how = "squeezed across (stretched down)" if squeezed[0] == "across" else "squeezed down (stretched across)"
        proportions = (f" Its content lies {how} against the original's (about {squeezed[1]:.2g}:1), "
                       "as a photo stretched to fit a frame of another shape or a pop-art tile shows it; it was "
                       f"{'found and ' if stretch is not None else ''}compared stretched back.")
    return lines[v] + around + geometry + channels + proportions + ingredient_note + origin
