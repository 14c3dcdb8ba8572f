"""SImProv stage 3: benign or manipulated, and where (ChangeNet: PEN + classifier + 7x7 heatmap).

The heatmap is predicted in the original's frame (the query was aligned to it), refined to
pixels by the aligned residual (`localise`), carried back into the query's pixels through
the alignment, normalised to [0, 1] and outlined at OUTLINE_THRESHOLD (0.35, the paper's
value). Gating as in the paper's evaluation: a pair judged benign has an empty heatmap.

A local warp (liquify) is judged apart: the alignment's dense flow undoes it before ChangeNet
sees the pair, so the displacement that flow measured (`align.moved_cells`) decides on its
own at WARP_THRESHOLD, and its cells are the map when ChangeNet saw nothing.

A copy that covers only part of its original (a tight crop, a story or square reframing) is
judged on the box it covers (`pairs.footprint`), zoomed to the networks' size, when that box is
under FOOTPRINT_SHARE of the frame: ChangeNet was trained on crops keeping 70-97 % of the frame
and, shown a quarter of it with the rest empty, called plain crops manipulated. That look's map
is placed back in the frame.

What the aligned original does not cover (a meme's canvas, a collage's other tiles) cannot be
compared at all: it is measured apart (`pairs.outside_original`), reported as coverage and
added content, and joins the map of a query judged manipulated.

A copy graded or filtered throughout (sepia, a tint, a strong curve) differs from its original
everywhere, and ChangeNet, trained on mild colour changes only, can call that manipulated. When
ChangeNet says manipulated and one global colour map (`pairs.colour_mapped`) brings the pair at
least COLOUR_GAIN levels closer, the mapped pair is judged again and that look decides: benign
(its map empty once gated), or manipulated with its map, which shows what the global change does
not explain (the first look's map also lit the recoloured areas: a box pasted into a hue-turned
copy lit the whole suit around it; BENCHMARKS.md, "The mapped look's map").

An object recoloured on its own (a car turned blue, a shirt tinted, a colour splash) changes no
texture, and ChangeNet, which learned that colour changes are benign, calls most such copies
benign. Where it does, `localise.recoloured` looks for one connected region whose colour a
global colour map (a polynomial in R, G, B: a grade of the whole frame undone) does not explain,
with its lightness kept; one of at least RECOLOUR_SHARE of the covered frame decides
"manipulated", and is the map (BENCHMARKS.md, "Recoloured regions").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from verifier.simprov import catalog
from verifier.simprov.catalog import CHANGE_ID
from verifier.simprov.device import place, to_numpy
from verifier.simprov.localise import Recoloured, recoloured, refine_heat
from verifier.simprov.nn.pen import ChangeNet
from verifier.simprov.pairs import (
    FOOTPRINT_SHARE,
    AlignedPair,
    Footprint,
    Outside,
    View,
    aligned_frame,
    apply_colour_map,
    colour_map_fit,
    footprint,
    heat_to_query,
    original_to_query,
    outside_original,
    pen_inputs,
)

__all__ = ["CHANGE_ID", "COLOUR_GAIN", "DECISION_THRESHOLD", "FOOTPRINT_SHARE", "OUTLINE_THRESHOLD", "RECOLOUR_MIN_SIDE",
           "RECOLOUR_SHARE", "WARP_THRESHOLD", "ChangeDetector", "ChangeResult", "Judgement"]

OUTLINE_THRESHOLD = 0.35
DECISION_THRESHOLD = 0.5
# A local warp (liquify) moves content by this share of the working frame's long side or more
# in some cell (`align.moved_cells`): 2 px at the 256-px working size, reached by 3 of 1,988
# benign copies of `train` photos and 76 % of 260 twirl warps of them (BENCHMARKS.md, "Local
# warps"); the default of `Settings.stage3_warp_threshold`.
WARP_THRESHOLD = 2.0 / 256
# The second look at a colour-mapped pair is taken when the map brings the pair this many 8-bit
# levels closer (median absolute difference). Chosen on 1,200 pairs of `train` photos (graded
# copies from a grading generator written apart from the `stylise` family, plain benign copies,
# manipulations, family edits, graded manipulations; `scripts/calibrate_colour_map.py`): false
# "manipulated" on graded copies 39 -> 8 of 240, no ungraded manipulation or family edit lost, 2 of
# 186 graded manipulations lost (BENCHMARKS.md, "Graded copies"); the default of
# `Settings.stage3_colour_gain`.
COLOUR_GAIN = 2.0
# A region recoloured on its own (`localise.recoloured`) of at least this share of the covered
# frame decides "manipulated" where ChangeNet said benign. Chosen on 2 x 600 pairs of `train`
# photos (local recolourings by a generator written apart from the held-out `recolour` family,
# copies graded or filtered throughout by generators written apart from `stylise`, plain benign
# copies, manipulations, family edits; `scripts/calibrate_recolour.py`, seeds 1 and 2): missed
# recolourings 43 -> 20 of 200, no graded, filtered or benign copy called manipulated that was not
# before (BENCHMARKS.md, "Recoloured regions"); the default of `Settings.stage3_recolour_share`.
RECOLOUR_SHARE = 0.03
# ...measured only on a query of at least this many pixels on its long side: a thumbnail
# blown up to the working frame smears its colours across edges (a 72-px benign copy reached 5 %).
RECOLOUR_MIN_SIDE = 128


@dataclass(frozen=True)
class ChangeResult:
    p_manipulated: float
    grid: np.ndarray  # (7, 7) in [0, 1], the original's frame; zeros when judged benign
    query_heat: np.ndarray | None  # (H, W) in [0, 1] over the query; None when judged benign
    to_query: np.ndarray | None = None  # (3, 3) homography: the original's pixels in `original_frame` -> query's pixels
    moved: np.ndarray | None = None  # (7, 7) local displacement beyond the alignment, share of the long side
    warp_threshold: float = WARP_THRESHOLD  # 0: a warp never decides
    outside: Outside | None = None  # the query beyond the aligned original; None for a weak fit
    colour_gain: float | None = None  # levels a global colour map brought the pair closer; None: not looked
    colour_mapped: bool = False  # the colour-mapped pair's look decided (probability and map)
    original_frame: tuple[int, int] | None = None  # (w, h) of the original its view was made from (ingest's size)
    recolour_share: float | None = None  # the largest region recoloured on its own, share of the covered frame; None: not measured
    recolour_threshold: float = RECOLOUR_SHARE  # 0: a recolouring never decides
    # share of the original's working frame the query shows: covers, and does not cut inside its
    # own frame (`align.shown_box`); None for a weak fit
    original_shown: float | None = None
    # the query is a negative of the original (`Alignment.inverted`): judged with its tones inverted back
    tones_inverted: bool = False

    @property
    def recoloured(self) -> bool:
        """A region's colour changed on its own (an object recoloured, tinted or made grey): no
        texture changes, and ChangeNet, which takes a graded copy for benign, misses it."""
        return self.recolour_threshold > 0 and self.recolour_share is not None and self.recolour_share >= self.recolour_threshold

    @property
    def warped(self) -> bool:
        """Content moved locally (a liquify-style warp). The flow that refines the alignment
        undoes such a warp before ChangeNet sees the pair, so ChangeNet cannot see it."""
        return self.warp_threshold > 0 and self.moved is not None and float(self.moved.max()) >= self.warp_threshold

    @property
    def manipulated(self) -> bool:
        return self.p_manipulated >= DECISION_THRESHOLD or self.warped or self.recoloured

    def region(self) -> np.ndarray | None:
        return None if self.query_heat is None else self.query_heat >= OUTLINE_THRESHOLD


@dataclass(frozen=True)
class Judgement:
    """ChangeNet's word on a pair: P(manipulated), the ungated 7x7 heat, and the pair it came
    from (the colour-mapped one when that look decided)."""

    p_manipulated: float
    heat: np.ndarray  # (7, 7), ungated
    pair: AlignedPair
    colour_gain: float | None = None
    colour_mapped: bool = False
    colour_map: np.ndarray | None = None  # (4, 3) `pairs.colour_map_fit`'s map, when the mapped look decided
    footprint: Footprint | None = None  # the box of the frame the query covers, when that box was judged (`heat` is over it)

    def frame_grid(self, grid: np.ndarray) -> np.ndarray:
        """`grid` (this look's 7x7, over the pair it judged) as the 7x7 cells of the original's whole frame."""
        if self.footprint is None:
            return grid
        cells = self.footprint.frame_grid(grid)
        peak = float(cells.max())
        return cells / peak if peak > 1e-6 else cells


class ChangeDetector:
    def __init__(self, net: ChangeNet, sha256: str, *, warp_threshold: float = WARP_THRESHOLD,
                 colour_gain: float = COLOUR_GAIN, footprint_share: float = FOOTPRINT_SHARE,
                 recolour_share: float = RECOLOUR_SHARE) -> None:
        self.net = place(net, next(net.parameters()).device)
        self.sha256 = sha256
        self.warp_threshold = warp_threshold
        self.colour_gain = colour_gain  # 0: no second look
        self.footprint_share = footprint_share  # 0: always the whole frame
        self.recolour_share = recolour_share  # 0: no recolouring measure
        self._lock = threading.Lock()

    @classmethod
    def packaged(cls, *, warp_threshold: float = WARP_THRESHOLD, colour_gain: float = COLOUR_GAIN,
                 footprint_share: float = FOOTPRINT_SHARE, recolour_share: float = RECOLOUR_SHARE) -> ChangeDetector | None:
        """The shipped ChangeNet (None when it is missing)."""
        spec = catalog.spec(CHANGE_ID)
        if not spec.shipped:
            return None
        return cls(catalog.load(CHANGE_ID), catalog.file_sha256(spec.weights),  # type: ignore[arg-type]
                   warp_threshold=warp_threshold, colour_gain=colour_gain, footprint_share=footprint_share,
                   recolour_share=recolour_share)

    def raw(self, pair: AlignedPair) -> tuple[float, np.ndarray]:
        """P(manipulated) and the ungated 7x7 heat of ChangeNet alone."""
        q, c = pen_inputs(pair.query[None], pair.valid[None], pair.candidate[None])
        device = next(self.net.parameters()).device
        with self._lock, torch.inference_mode():
            logit, heat = self.net(q.to(device), c.to(device))
        return float(torch.sigmoid(logit.float())[0]), to_numpy(heat[0])

    def judge(self, pair: AlignedPair, frame: AlignedPair | None = None) -> Judgement:
        """ChangeNet on the pair, or, given its `aligned_frame` and a query that covers only part
        of the original (a tight crop), on the box it covers (`pairs.footprint`); then, for a
        pair it calls manipulated, the second look with the original's colours mapped to the
        query's (module docstring): the service and the benchmarks alike."""
        box = footprint(frame, self.footprint_share) if frame is not None and pair.alignment.global_ok else None
        looked = box.pair if box is not None else pair
        p, heat = self.raw(looked)
        if p < DECISION_THRESHOLD or self.colour_gain <= 0 or not pair.alignment.global_ok:
            return Judgement(p, heat, looked, footprint=box)  # (a weak fit's pixels do not correspond: no colour map)
        m, gain = colour_map_fit(looked)
        if m is None or gain < self.colour_gain:
            return Judgement(p, heat, looked, gain, footprint=box)
        mapped = replace(looked, candidate=apply_colour_map(looked.candidate, m))
        p2, heat2 = self.raw(mapped)  # the mapped look decides, and its map shows what a global change does not explain
        return Judgement(p2, heat2, mapped, gain, True, m, box)

    def pixel_map(self, judged: Judgement, grid: np.ndarray, query: View, candidate: View,
                  frame: AlignedPair | None = None) -> np.ndarray:
        """`grid` (the judged 7x7 map, max 1) refined below the grid by the aligned residual
        (`localise`), at the candidate's working frame and with the colours as the judge saw
        them: (h, w) in [0, 1] over the candidate's working image. `frame`: the pair's
        `aligned_frame` when already made (used unless the colours were mapped)."""
        if frame is None or judged.colour_map is not None:
            frame = aligned_frame(judged.pair, query, candidate, judged.colour_map)
        return refine_heat(judged.footprint.place(grid) if judged.footprint is not None else grid, frame)

    def recolour(self, pair: AlignedPair, frame: AlignedPair, query_size: tuple[int, int]) -> Recoloured | None:
        """The recoloured-region measure of a pair (`localise.recoloured`, on its `aligned_frame`),
        or None where it is not taken: off, a weak fit (its pixels do not correspond), a thumbnail."""
        if self.recolour_share <= 0 or not pair.alignment.global_ok or max(query_size) < RECOLOUR_MIN_SIDE:
            return None
        return recoloured(frame)

    def to(self, device: torch.device) -> ChangeDetector:
        with self._lock:
            self.net = place(self.net, device)
        return self

    def analyse(self, pair: AlignedPair, query: View, candidate: View, query_size: tuple[int, int]) -> ChangeResult:
        frame = aligned_frame(pair, query, candidate)
        j = self.judge(pair, frame)
        p, heat = j.p_manipulated, j.heat
        to_query = original_to_query(pair, candidate, query, query_size)
        moved = None
        if pair.alignment.moved is not None:
            moved = pair.alignment.moved / float(max(candidate.image.shape[:2]))
        outside = outside_original(pair.alignment, candidate, query) if pair.alignment.global_ok else None
        recolour = self.recolour(pair, frame, query_size) if p < DECISION_THRESHOLD else None
        result = ChangeResult(p, np.zeros_like(heat), None, to_query, moved, self.warp_threshold, outside,
                              j.colour_gain, j.colour_mapped, candidate.full_size,
                              None if recolour is None else recolour.share, self.recolour_share,
                              float(frame.valid.mean()) if pair.alignment.global_ok else None,
                              pair.alignment.inverted)
        if p < DECISION_THRESHOLD:
            if not result.warped and not result.recoloured:
                return result
            # the measures that decided are the map: a warp's cells (the aligned residual shows
            # nothing there, since the flow has undone the warp) and the recoloured region
            grid = np.zeros_like(heat, dtype=np.float32)
            fine = np.zeros(frame.valid.shape, np.float32)
            if result.warped:
                assert moved is not None
                grid = np.where(moved >= self.warp_threshold, moved / float(moved.max()), 0.0).astype(np.float32)
                fine = cv2.resize(grid, fine.shape[::-1], interpolation=cv2.INTER_CUBIC)
            if result.recoloured:
                assert recolour is not None
                region = recolour.region.astype(np.float32)
                cells = cv2.resize(region, grid.shape[::-1], interpolation=cv2.INTER_AREA)
                grid = np.maximum(grid, cells / max(float(cells.max()), 1e-6))
                fine = np.maximum(fine, region)
            return replace(result, grid=grid, query_heat=_with_added(
                heat_to_query(fine, candidate, pair.alignment, query_size, query), outside))
        peak = float(heat.max())
        grid = heat / peak if peak > 1e-6 else heat
        fine = self.pixel_map(j, grid, query, candidate, frame)
        return replace(result, grid=j.frame_grid(grid), query_heat=_with_added(
            heat_to_query(fine, candidate, pair.alignment, query_size, query), outside))


def _with_added(query_heat: np.ndarray, outside: Outside | None) -> np.ndarray:
    """The map of a manipulated query, with the content outside the original at full heat:
    whatever the original does not contain is not the original's."""
    if outside is None or not outside.added.any():
        return query_heat
    h, w = query_heat.shape
    added = cv2.resize(outside.added.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return np.where(added, np.float32(1.0), query_heat).astype(query_heat.dtype)

