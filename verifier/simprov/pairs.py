"""Query/candidate pairs for stages 2-3: alignment F_A, then the PEN input tensors.

Both images are compared in the candidate's frame at a working size (WORK_SIDE on the long
side): the query is aligned to the candidate (SIFT + RANSAC homography, DIS flow) and
resampled there by the DWU, then both are squashed to PEN_SIZE. What depends only on the
candidate (its working image and SIFT features) is a `View`, computed once per
original and cached (see `verifier.matching.views`).

Heatmaps come back from the candidate frame to the query's own pixels through the
homography, so that the outline is drawn on the image the fact-checker submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch
from PIL import Image

from verifier.simprov.align import (
    Alignment,
    CloserFeatures,
    SiftFeatures,
    closer_features,
    dwu,
    estimate_alignment,
    mirrored_sift,
    sift_features,
    stretched_sift,
)
from verifier.simprov.nn.pen import GRID, PEN_MEAN, PEN_SIZE, PEN_STD

WORK_SIDE = 256
# ChangeNet judges the box the query covers, not the whole frame, when that box is under this
# share of the original's working frame (a tight crop): with most of the frame missing it called
# 53 of 77 tight crops of `train` photos manipulated (1 of 77 judged on the box; BENCHMARKS.md,
# "Reframed copies"). Shares 0.7-1.0 gave the same verdicts there; 0.7 is where ChangeNet's own
# training crops stop (70-97 % of the frame), so a crop it was trained on keeps the whole-frame
# look (at 0.9 maps of the trainable families moved both ways, mean IoU 0.5690 -> 0.5679).
FOOTPRINT_SHARE = 0.7
FOOTPRINT_MIN_SIDE = 16  # px of the working frame: a smaller box is not worth a look of its own
# Stage 3 also fits a weakly aligned pair through the query stretched to the original's shape when
# the two shapes differ by this factor or more (`reshaped_pair`): SIFT matched photos stretched
# 1.25-1.75:1 on their own (all 120 benign), not 2.5:1 (BENCHMARKS.md, "Stretched copies").
RESHAPE_MIN = 1.5
RESHAPE_MAX = 4.0  # ... and by no more than this: the stretched view stays within 4x the working side


def work_image(img: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    out = img.convert("RGB")
    if max(out.size) > side:
        out = out.copy() if out is img else out
        out.thumbnail((side, side), Image.BICUBIC, reducing_gap=3.0)
    return out


@dataclass(frozen=True)
class View:
    """An image at working size with its SIFT features; `scale` = full size / working size."""

    image: np.ndarray  # (h, w, 3) uint8
    features: SiftFeatures
    full_size: tuple[int, int]  # (W, H) of the image it came from
    _mirrored: list[SiftFeatures] = field(default_factory=list, compare=False, repr=False)  # lazily, at most one
    # (features, the shape of the frame they come from) -> features without a publisher's mark
    _strip: Callable[[SiftFeatures, tuple[int, ...]], SiftFeatures] | None = field(default=None, compare=False, repr=False)
    _source: Image.Image | None = field(default=None, compare=False, repr=False)  # a query's own image (the closer look)
    _closer: list[CloserFeatures] = field(default_factory=list, compare=False, repr=False)  # lazily, at most one

    def mirrored_features(self) -> SiftFeatures:
        """SIFT of the mirrored image in this frame (`align.mirrored_sift`), computed once, on
        first need: only a query that fails to align with some candidate pays for it."""
        if not self._mirrored:
            f = mirrored_sift(self.image)
            self._mirrored.append(self._strip(f, self.image.shape) if self._strip is not None else f)
        return self._mirrored[0]

    @property
    def closer_source(self) -> Image.Image | None:
        """The image a closer look is made from (None: this view cannot look closer)."""
        return self._source

    def closer(self) -> CloserFeatures | None:
        """The query's SIFT at the closer look's size, plain and mirrored (`align.closer_features`),
        computed once, on first need; None for a view kept without its image (an original's)."""
        if self._source is None:
            return None
        if not self._closer:
            c = closer_features(self._source, mirrored=True)
            if self._strip is not None:
                assert c.mirrored is not None
                c = CloserFeatures(self._strip(c.features, c.shape), c.shape, self._strip(c.mirrored, c.shape))
            self._closer.append(c)
        return self._closer[0]

    def stripped(self, strip: Callable[[SiftFeatures, tuple[int, ...]], SiftFeatures]) -> View:
        """This view with `strip` applied to its features, and to the mirrored and closer ones when
        they are made (a publisher's mark taken out of a query: `simprov.marks`)."""
        return View(self.image, strip(self.features, self.image.shape), self.full_size, _strip=strip, _source=self._source)

    @classmethod
    def of(cls, img: Image.Image, min_side: int = 0, closer: bool = False) -> View:
        """`min_side`: an image whose longest side is under it is enlarged to it (bicubic), so
        that SIFT meets a small query at about the scale of the originals' views. `closer`: keep
        `img` for a closer look (a query's view; an original's would hold its pixels in a cache)."""
        w = work_image(img)
        if min_side and max(w.size) < min_side:
            f = min_side / max(w.size)
            w = w.resize((max(1, round(w.width * f)), max(1, round(w.height * f))), Image.BICUBIC)
        arr = np.asarray(w, np.uint8)
        return cls(arr, sift_features(arr), img.size, _source=img if closer else None)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]


@dataclass(frozen=True)
class AlignedPair:
    """The PEN's view of a pair, kept as uint8 so that training data and service inputs
    take exactly the same path into the network (`pen_inputs`). S = PEN_SIZE for the
    networks; `aligned_frame` makes the same pair at the candidate's working frame (h, w)."""

    query: np.ndarray  # (S, S, 3) uint8: the query aligned into the candidate frame
    valid: np.ndarray  # (S, S) uint8: 1 where the query covers the candidate frame
    candidate: np.ndarray  # (S, S, 3) uint8
    alignment: Alignment

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())


def _squash(x: torch.Tensor) -> torch.Tensor:
    """(C, h, w) -> (C, S, S), antialiased bilinear."""
    return torch.nn.functional.interpolate(x[None], size=(PEN_SIZE, PEN_SIZE), mode="bilinear", antialias=True, align_corners=False)[0]


def _to_u8(x: torch.Tensor) -> np.ndarray:  # (3, S, S) [0, 1] -> (S, S, 3) uint8
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _warped(query: View, alignment: Alignment) -> torch.Tensor:
    """(4, hc, wc): the query's RGB in [0, 1] resampled into the candidate's working frame by
    F_A, and its coverage (1 where the query's pixels land). A negative (`Alignment.inverted`)
    comes with its tones inverted back: PSEN and ChangeNet then judge its content as they judge
    any copy's (seen as a negative, PSEN called weak fits of true negatives "different")."""
    q = torch.tensor(query.image).permute(2, 0, 1).float()[None] / 255
    if alignment.inverted:
        q = 1 - q
    ones = torch.ones(1, 1, *query.image.shape[:2])
    with torch.no_grad():
        return dwu(torch.cat([q, ones], 1), alignment.normalised_grid())[0]


def align_pair(query: View, candidate: View, retry: bool = True, invert: bool = True,
               fit: tuple[np.ndarray, int] | None = None, query_feats: SiftFeatures | None = None) -> AlignedPair:
    """The query aligned into the candidate's frame (`retry`: whether the mirrored query, and
    with `invert` for a weak fit the tone-inverted one, are tried too, `align.estimate_alignment`;
    `fit`: a homography between the two views found elsewhere, the closer look's; `query_feats`:
    the query's features in its own frame made otherwise, `reshaped_pair`'s)."""
    a = estimate_alignment(query.image, candidate.image,
                           query_feats=query.features if query_feats is None else query_feats,
                           cand_feats=candidate.features, query_mirrored=query.mirrored_features, retry=retry,
                           invert=invert, fit=fit)
    warped = _warped(query, a)
    with torch.no_grad():
        valid = (_squash((warped[3:] > 0.999).float())[0] > 0.5).numpy().astype(np.uint8)
        c = torch.tensor(candidate.image).permute(2, 0, 1).float() / 255
        return AlignedPair(_to_u8(_squash(warped[:3])), valid, _to_u8(_squash(c)), a)


def reshaped_pair(query: View, candidate: View) -> AlignedPair | None:
    """The query aligned through SIFT of its view stretched to the candidate's shape (its squeezed
    side enlarged), when the two frames' shapes differ by RESHAPE_MIN to RESHAPE_MAX; None otherwise.
    A photo squeezed 2.5:1 into a frame of another shape fitted its original on 0-13 imprecise
    points, and the flow's residual then read as a local warp (BENCHMARKS.md, "Stretched copies")."""
    hq, wq = query.image.shape[:2]
    hc, wc = candidate.image.shape[:2]
    r = (wc / hc) / (wq / hq)  # > 1: the query is narrower than the candidate
    if not RESHAPE_MIN <= max(r, 1 / r) <= RESHAPE_MAX:  # a sliver against a square: no squeeze to undo
        return None
    fx, fy = (r, 1.0) if r > 1 else (1.0, 1 / r)
    return align_pair(query, candidate, retry=False, query_feats=stretched_sift(query.image, fx, fy))


def aligned_frame(pair: AlignedPair, query: View, candidate: View, colour_map: np.ndarray | None = None) -> AlignedPair:
    """The same pair at the candidate's working frame (h, w: up to WORK_SIDE px on the long side,
    its own aspect) instead of the networks' PEN_SIZE square: stage 3's pixel map (`localise`)
    outlines an edit there about twice as finely (BENCHMARKS.md, "Stage 3's pixel map at the
    working frame"). `colour_map` (`colour_map_fit`'s) maps the candidate as the judge saw it."""
    warped = _warped(query, pair.alignment)
    valid = (warped[3] > 0.999).numpy().astype(np.uint8)
    cand = candidate.image if colour_map is None else apply_colour_map(candidate.image, colour_map)
    return AlignedPair(_to_u8(warped[:3]), valid, cand, pair.alignment)


@dataclass(frozen=True)
class Footprint:
    """The part of the original's working frame the query covers, as the networks see a pair:
    `pair` is that box of an `aligned_frame` pair squashed to PEN_SIZE (same alignment)."""

    pair: AlignedPair
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the working frame's pixels
    frame_shape: tuple[int, int]  # (h, w) of the working frame

    def place(self, heat: np.ndarray) -> np.ndarray:
        """Heat over the box (7x7 cells, or any grid) -> (h, w) over the whole frame, bicubic
        inside the box and 0 outside it (nothing there to compare)."""
        x0, y0, x1, y1 = self.box
        out = np.zeros(self.frame_shape, np.float32)
        out[y0:y1, x0:x1] = np.clip(cv2.resize(heat.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        return out

    def frame_grid(self, heat: np.ndarray) -> np.ndarray:
        """Heat over the box -> the 7x7 cells of the whole frame (each cell's mean)."""
        return cv2.resize(self.place(heat), (GRID, GRID), interpolation=cv2.INTER_AREA)


def footprint(frame: AlignedPair, share: float = FOOTPRINT_SHARE) -> Footprint | None:
    """The box of `frame` (an `aligned_frame` pair) that the query covers, when it is under
    `share` of the frame (FOOTPRINT_SHARE; 0: never); None when the query covers (nearly) all of it."""
    ys, xs = np.nonzero(frame.valid)
    if xs.size == 0 or share <= 0:
        return None
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    h, w = frame.valid.shape
    if (x1 - x0) * (y1 - y0) >= share * h * w or min(x1 - x0, y1 - y0) < FOOTPRINT_MIN_SIDE:
        return None

    def box(a: np.ndarray) -> torch.Tensor:  # (h, w, C) -> (C, bh, bw) in [0, 1]
        return torch.tensor(a[y0:y1, x0:x1]).permute(2, 0, 1).float() / 255  # a copy: a cached view is read-only

    with torch.no_grad():
        query, candidate = _to_u8(_squash(box(frame.query))), _to_u8(_squash(box(frame.candidate)))
        valid = (_squash(box(frame.valid[..., None] * 255))[0] > 0.5).numpy().astype(np.uint8)
    return Footprint(AlignedPair(query, valid, candidate, frame.alignment), (x0, y0, x1, y1), (h, w))


def colour_matched(pair: AlignedPair, bins: int = 8) -> AlignedPair:
    """The pair with the aligned query's colours replaced by the candidate's: a lookup table
    from the query's colour (`bins` levels per channel) to the mean candidate colour of the
    covered pixels that have it. It undoes any per-pixel colour function (a grading curve,
    posterisation, inversion, swapped channels) and keeps the structure, so PSEN can judge
    the content of a heavily filtered copy; a colour that was not covered keeps its own."""
    q = pair.query.astype(np.int64)
    covered = pair.valid.astype(bool)
    cell = ((q[..., 0] * bins // 256) * bins + q[..., 1] * bins // 256) * bins + q[..., 2] * bins // 256  # (S, S)
    count = np.bincount(cell[covered], minlength=bins**3)
    out = pair.query.astype(np.float32)
    seen = count[cell] > 0
    for ch in range(3):
        total = np.bincount(cell[covered], weights=pair.candidate[..., ch][covered].astype(np.float64), minlength=bins**3)
        mean = (total / np.maximum(count, 1)).astype(np.float32)
        out[..., ch] = np.where(seen, mean[cell], out[..., ch])
    return replace(pair, query=np.clip(out, 0, 255).round().astype(np.uint8))


def colour_map_fit(pair: AlignedPair) -> tuple[np.ndarray | None, float]:
    """One affine colour map (3x3 matrix + offset, least squares over the covered pixels) that
    carries the candidate's colours to the aligned query's, as a (4, 3) matrix, and how many
    8-bit levels closer it brings them (median absolute difference before minus after); None
    and 0 when too little is covered to fit.

    A global map undoes grading, tints, sepia, channel mixing, greyscale and hue turns. It is
    fitted from the original to the query, not back: a region recoloured in the query is a
    minority whose original colours also appear elsewhere unchanged, so the map cannot follow
    it; fitted the other way, a near-grey photo leaves the map free to paint a recoloured region
    grey again (BENCHMARKS.md, "Graded copies")."""
    covered = pair.valid.astype(bool).reshape(-1)
    q = pair.query.reshape(-1, 3).astype(np.float32)
    c = pair.candidate.reshape(-1, 3).astype(np.float32)
    if int(covered.sum()) < 16:
        return None, 0.0
    x = np.concatenate([c, np.ones((len(c), 1), np.float32)], 1)  # (S*S, 4)
    m, *_ = np.linalg.lstsq(x[covered].astype(np.float64), q[covered].astype(np.float64), rcond=None)  # (4, 3)
    mapped = np.clip(x @ m.astype(np.float32), 0, 255).round()
    before = float(np.median(np.abs(q - c)[covered]))
    after = float(np.median(np.abs(q - mapped)[covered]))
    return m, before - after


def apply_colour_map(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 through `colour_map_fit`'s (4, 3) map."""
    x = np.concatenate([image.reshape(-1, 3).astype(np.float32), np.ones((image.shape[0] * image.shape[1], 1), np.float32)], 1)
    return np.clip(x @ m.astype(np.float32), 0, 255).round().astype(np.uint8).reshape(image.shape)


def colour_mapped(pair: AlignedPair) -> tuple[AlignedPair, float]:
    """The pair with the candidate's colours carried to the aligned query's by `colour_map_fit`'s
    map, and the levels it gains."""
    m, gain = colour_map_fit(pair)
    if m is None:
        return pair, 0.0
    return replace(pair, candidate=apply_colour_map(pair.candidate, m)), gain


def pen_inputs(query: np.ndarray, valid: np.ndarray, candidate: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batches (B, S, S, 3), (B, S, S), (B, S, S, 3) -> normalised (B, 4, S, S) x 2."""
    mean = torch.tensor(PEN_MEAN)[None, :, None, None]
    std = torch.tensor(PEN_STD)[None, :, None, None]
    v = torch.from_numpy(np.ascontiguousarray(valid)).float()[:, None]
    q = (torch.from_numpy(np.ascontiguousarray(query)).permute(0, 3, 1, 2).float() / 255 - mean) / std * v
    c = (torch.from_numpy(np.ascontiguousarray(candidate)).permute(0, 3, 1, 2).float() / 255 - mean) / std
    return torch.cat([q, v], 1), torch.cat([c, torch.ones_like(v)], 1)


def mask_to_candidate_grid(mask: Image.Image, query: View, alignment: Alignment) -> np.ndarray:
    """Ground truth for training/IoU: the query-frame mask resampled into the candidate frame,
    then the manipulated share of each of the 7x7 cells."""
    m = mask.convert("L").resize(query.size, Image.BILINEAR)
    t = torch.from_numpy(np.asarray(m, np.float32) / 255)[None, None]
    with torch.no_grad():
        warped = dwu(t, alignment.normalised_grid())  # (1, 1, hc, wc)
        cells = torch.nn.functional.adaptive_avg_pool2d(warped, GRID)[0, 0]
    return cells.numpy().astype(np.float32)


def heat_to_query(heat: np.ndarray, candidate: View, alignment: Alignment, query_size: tuple[int, int], query_view: View) -> np.ndarray:
    """Heat on any grid over the candidate frame (7x7 cells or the PEN_SIZE pixels) ->
    normalised [0, 1] map over the full query (H, W): bicubic upsampling to the candidate
    working frame, then the homography to the query."""
    hc, wc = candidate.image.shape[:2]
    up = cv2.resize(heat.astype(np.float32), (wc, hc), interpolation=cv2.INTER_CUBIC)
    qw, qh = query_view.size
    fx, fy = query_size[0] / qw, query_size[1] / qh
    to_full = np.diag([fx, fy, 1.0]) @ alignment.homography  # candidate work -> query full pixels
    out = cv2.warpPerspective(up, to_full, query_size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    peak = float(out.max())
    return np.clip(out / peak, 0, 1) if peak > 1e-6 else np.zeros_like(out)


# Content outside the aligned original (`outside_original`): a pixel this close to the
# original's footprint (working pixels) is the footprint's edge (resampling, JPEG ringing). A
# fill (a pad, a rotation's empty corners, a plain canvas) is flat (grey std below FILL_TEXTURE
# in a FILL_WINDOW square, as it is or after a Gaussian of FILL_BLUR px that removes sensor-like
# noise), of a colour (FILL_BINS levels per channel) that holds FILL_SHARE of the flat pixels
# outside, and one colour (its pixels' spread within FILL_SPREAD grey levels; a flat part of a
# photo, a sky or a wall, spans its bin). What remains is opened by an ADDED_OPEN square.
# Chosen on 300 benign copies of `train` photos (99th percentile of the added share 0.2 %, the
# largest 4.4 %: a padded, noisy copy) and family edits of them (BENCHMARKS.md, "Outside the
# original").
OUTSIDE_MARGIN = 3
FILL_BLUR = 1.5
FILL_TEXTURE = 3.0
FILL_BINS = 16
FILL_SHARE = 0.05
FILL_SPREAD = 3.5
FILL_WINDOW = 3
ADDED_OPEN = 5
# A "blur background" (`_self_fill`): reposting apps fill a story or square canvas around the
# whole photo with the photo itself, zoomed to cover the canvas and blurred. Four geometries
# (zoomed about the canvas's centre or the inset's, stretched to the canvas, and the zoom and
# place a masked template search finds, `_self_fill_search`), each blurred at SELF_FILL_SIGMAS
# (share of the canvas's long side) with one gain per channel (a darkened blur), are compared
# with what lies outside; the best explains the region when the mean difference over its best
# SELF_FILL_TRIM of pixels is under SELF_FILL_RESIDUAL levels and under SELF_FILL_RATIO of the
# region's own spread about its mean colour (a structure, not a similar average). Its pixels
# within SELF_FILL_PIXEL levels are fill (sharp content drawn over the blur stays added). Chosen
# on `train` photos (scripts/calibrate_self_fill.py; BENCHMARKS.md, "Two more held-out families").
SELF_FILL_SIGMAS = (0.01, 0.02, 0.04, 0.08)
SELF_FILL_RESIDUAL = 10.0
SELF_FILL_RATIO = 0.3
SELF_FILL_PIXEL = 20.0
SELF_FILL_MIN_SHARE = 0.02  # of the query: below it there is nothing worth explaining
SELF_FILL_TRIM = 0.9  # the fit's mean difference is over its best 90 % of pixels
SELF_FILL_SEARCH = 64  # px, the long side of the copies the zoom and place are searched on
SELF_FILL_ZOOMS = (1.0, 1.1, 1.2, 1.35, 1.6)  # x the zoom that covers the canvas; the best is refined by +-5 %


@dataclass(frozen=True)
class Outside:
    """What of the query the aligned original does not explain, in the query's working frame."""

    coverage: float  # share of the query's pixels the original's frame covers once aligned
    added: np.ndarray  # (h, w) bool: query pixels outside the original that are content, not a fill

    @property
    def added_fraction(self) -> float:
        return float(self.added.mean())


def _local_std(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    k = (FILL_WINDOW, FILL_WINDOW)
    mean, sq = cv2.blur(grey, k), cv2.blur(grey * grey, k)
    return np.sqrt(np.maximum(sq - mean * mean, 0.0))


def outside_original(alignment: Alignment, candidate: View, query_view: View) -> Outside:
    """The query beyond the original's aligned frame: a meme's canvas and captions, a
    collage's other tiles, the scene around a photographed screen. The homography maps the
    original's whole frame (or the box a crop inside the query shows, `align.shown_box`) into the query; what falls outside cannot be compared with the
    original, so ChangeNet never sees it. A uniform fill is not content and is left out, nor is
    the photo itself zoomed and blurred behind it (a repost's blur background, `_self_fill`)."""
    hc, wc = candidate.image.shape[:2]
    qw, qh = query_view.size
    cover = cv2.warpPerspective(alignment.shown_mask((hc, wc)).astype(np.uint8) * 255, alignment.homography, (qw, qh),
                                flags=cv2.INTER_NEAREST, borderValue=0) > 0
    k = 2 * OUTSIDE_MARGIN + 1
    outside = ~(cv2.dilate(cover.astype(np.uint8), np.ones((k, k), np.uint8)) > 0)
    if not outside.any():
        return Outside(float(cover.mean()), outside)
    rgb = cv2.GaussianBlur(query_view.image, (0, 0), FILL_BLUR)
    flat = outside & ((_local_std(query_view.image) < FILL_TEXTURE) | (_local_std(rgb) < FILL_TEXTURE))
    added = outside
    if flat.any():
        q = (rgb // (256 // FILL_BINS)).astype(np.int64)
        code = (q[..., 0] * FILL_BINS + q[..., 1]) * FILL_BINS + q[..., 2]
        counts = np.bincount(code[flat], minlength=FILL_BINS**3)
        fills = np.zeros(FILL_BINS**3, bool)
        for b in np.flatnonzero(counts >= max(1, FILL_SHARE * int(flat.sum()))):
            colours = rgb[flat & (code == b)].astype(np.float32)
            fills[b] = float(colours.std(axis=0).mean()) <= FILL_SPREAD  # one colour, not a range of them
        added = outside & ~(flat & fills[code])
    if added.mean() >= SELF_FILL_MIN_SHARE:
        added &= ~_self_fill(alignment.homography, candidate.image, query_view.image, added)
    added = cv2.morphologyEx(added.astype(np.uint8), cv2.MORPH_OPEN, np.ones((ADDED_OPEN,) * 2, np.uint8)) > 0
    return Outside(float(cover.mean()), added)


def _self_fill_geometries(homography: np.ndarray, size: tuple[int, int], wc: int, hc: int) -> list[np.ndarray]:
    """(3, 3) maps from the original's working frame to the query's that lay the original over the
    whole canvas as a reposting app's blur background does: zoomed to cover it about the canvas's
    centre, about the inset's own centre, or stretched to it."""
    qw, qh = size
    corners = cv2.perspectiveTransform(np.float32([[[0, 0]], [[wc, 0]], [[wc, hc]], [[0, hc]]]), homography)[:, 0]
    x0, y0 = corners.min(0)
    x1, y1 = corners.max(0)
    bw, bh = float(x1 - x0), float(y1 - y0)
    if bw < 4 or bh < 4:
        return []
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def box_to(nx0: float, ny0: float, sx: float, sy: float) -> np.ndarray:
        a = np.array([[sx, 0, nx0 - sx * x0], [0, sy, ny0 - sy * y0], [0, 0, 1]], np.float64)
        return a @ homography

    z = max(qw / bw, qh / bh)  # cover the canvas, centred on it
    zi = max(2 * max(cx, qw - cx) / bw, 2 * max(cy, qh - cy) / bh)  # cover it about the inset's centre
    return [box_to(qw / 2 - z * bw / 2, qh / 2 - z * bh / 2, z, z),
            box_to(cx - zi * bw / 2, cy - zi * bh / 2, zi, zi),
            box_to(0.0, 0.0, qw / bw, qh / bh)]


def _resized(sx: float, sy: float) -> np.ndarray:
    """(3, 3) map of pixel coordinates under a resize by (sx, sy), pixel centres kept where
    cv2.resize puts them: x' = (x + 0.5) sx - 0.5 (a half-pixel matters once scaled back up 4x)."""
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)


def _peak(r: np.ndarray) -> tuple[float, float, float]:
    """(score, x, y) of `r`'s maximum, x and y refined to a sub-pixel place by a parabola through
    the peak and its neighbours (the search's 64-px grid is 4 working pixels a step)."""
    y, x = np.unravel_index(int(np.argmax(r)), r.shape)

    def offset(a: float, b: float, c: float) -> float:
        den = a - 2 * b + c
        return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0

    dx = offset(r[y, x - 1], r[y, x], r[y, x + 1]) if 0 < x < r.shape[1] - 1 else 0.0
    dy = offset(r[y - 1, x], r[y, x], r[y + 1, x]) if 0 < y < r.shape[0] - 1 else 0.0
    return float(r[y, x]), x + dx, y + dy


def _self_fill_search(homography: np.ndarray, original: np.ndarray, size: tuple[int, int], small_q: np.ndarray,
                      small_m: np.ndarray) -> np.ndarray:
    """(3, 3) map that lays the original (mirrored as the inset is) over the `size` canvas at the
    zoom (1-1.6x what covers it, then refined about the best) and place where it best matches the
    region `small_m` of `small_q` (the ~SELF_FILL_SEARCH px copies `self_fill_fit` made), found by
    masked template matching: an app's zoom and centre are not known."""
    qw, qh = size
    hc, wc = original.shape[:2]
    sh, sw = small_q.shape[:2]
    f = SELF_FILL_SEARCH / max(qw, qh)
    q = small_q
    m = np.repeat(small_m.astype(np.float32)[..., None], 3, 2)
    mirrored = float(np.linalg.det(homography[:2, :2])) < 0
    src = original[:, ::-1] if mirrored else original
    z0 = max(qw / wc, qh / hc)

    def place(zr: float) -> tuple[float, float, float, float]:
        zw, zh = max(sw, round(wc * z0 * zr * f)), max(sh, round(hc * z0 * zr * f))
        o = cv2.resize(src, (zw, zh), interpolation=cv2.INTER_AREA).astype(np.float32)
        r = np.nan_to_num(cv2.matchTemplate(o, q, cv2.TM_CCOEFF_NORMED, mask=m), nan=-1.0, posinf=-1.0, neginf=-1.0)
        score, x, y = _peak(r)
        return score, zr, x, y

    best = max((place(zr) for zr in SELF_FILL_ZOOMS), key=lambda t: t[0])
    zr = best[1]
    _, zr, x, y = max([best, *(place(zr * k) for k in (0.95, 1.05))], key=lambda t: t[0])
    zw, zh = max(sw, round(wc * z0 * zr * f)), max(sh, round(hc * z0 * zr * f))
    flip = np.array([[-1, 0, wc - 1], [0, 1, 0], [0, 0, 1]], np.float64) if mirrored else np.eye(3)
    shift = np.array([[1, 0, -x], [0, 1, -y], [0, 0, 1]], np.float64)  # zoomed original -> the query's small copy
    return np.linalg.inv(_resized(sw / qw, sh / qh)) @ shift @ _resized(zw / wc, zh / hc) @ flip


def _blurred_laid(original: np.ndarray, g: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """The original laid into a `size` frame by `g` and blurred by `sigma` px, made at the scale
    where the blur is ~2 px and scaled back up (a blurred image has nothing finer): (h, w, 3) float32."""
    qw, qh = size
    k = min(1.0, 2.0 / max(sigma, 1e-6))
    w, h = max(4, round(qw * k)), max(4, round(qh * k))
    hc, wc = original.shape[:2]
    kk = min(1.0, k * abs(float(np.linalg.det(g[:2, :2]))) ** 0.5)  # shrunk by area first: no aliasing in the warp
    pre = cv2.resize(original, (max(4, round(wc * kk)), max(4, round(hc * kk))), interpolation=cv2.INTER_AREA) if kk < 1 else original
    g = _resized(w / qw, h / qh) @ g @ _resized(wc / pre.shape[1], hc / pre.shape[0])
    laid = cv2.warpPerspective(pre, g, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    blurred = cv2.GaussianBlur(laid, (0, 0), sigma * k)
    return cv2.resize(blurred, (qw, qh), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def _gained_difference(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(n,) mean absolute difference per pixel between `q` and the rendering `r` (both (n, 3)) after
    one least-squares gain per channel, 0.3-1.2: a darkened or slightly brightened blur."""
    gain = np.clip((q * r).sum(0) / np.maximum((r * r).sum(0), 1e-6), 0.3, 1.2)
    return np.abs(q - r * gain).mean(1)


def self_fill_fit(homography: np.ndarray, original: np.ndarray, query: np.ndarray, region: np.ndarray) -> tuple[float, float, np.ndarray]:
    """How well the original itself, zoomed over the canvas and blurred, explains `region` of the
    query: (mean difference, the region's own spread about its mean colour, per-pixel difference
    (n,) over `region`'s pixels); (inf, spread, []) when no rendering could be laid. Geometry and
    blur are chosen on ~SELF_FILL_SEARCH px copies (a blurred fill has nothing finer), the
    differences measured in the working frame."""
    qh, qw = query.shape[:2]
    hc, wc = original.shape[:2]
    q = query.astype(np.float32)[region]  # (n, 3)
    spread = float(np.abs(q - q.mean(0)).mean()) if len(q) else 0.0
    none = (float("inf"), spread, np.zeros(0, np.float32))
    f = SELF_FILL_SEARCH / max(qw, qh)
    sw, sh = max(8, round(qw * f)), max(8, round(qh * f))
    small_q = cv2.resize(query, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    small_m = cv2.resize(region.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0.99
    if small_m.sum() < 16:
        return none
    to_small = _resized(sw / qw, sh / qh)
    k = min(1.0, max(qw / wc, qh / hc) * f)  # the original shrunk by area to about the small frame's scale: no aliasing
    soft = cv2.resize(original, (max(4, round(wc * k)), max(4, round(hc * k))), interpolation=cv2.INTER_AREA)
    from_soft = _resized(wc / soft.shape[1], hc / soft.shape[0])
    geometries = _self_fill_geometries(homography, (qw, qh), wc, hc) + [
        _self_fill_search(homography, original, (qw, qh), small_q, small_m)]
    best: tuple[float, np.ndarray, float] | None = None  # small-frame difference, geometry, blur share
    qs = small_q[small_m]
    for g in geometries:
        laid = cv2.warpPerspective(soft, to_small @ g @ from_soft, (sw, sh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for share in SELF_FILL_SIGMAS:
            d = float(_gained_difference(qs, cv2.GaussianBlur(laid, (0, 0), share * SELF_FILL_SEARCH).astype(np.float32)[small_m]).mean())
            if best is None or d < best[0]:
                best = (d, g, share)
    if best is None:
        return none
    _, g, share = best
    diff = _gained_difference(q, _blurred_laid(original, g, (qw, qh), share * max(qw, qh))[region])
    keep = max(1, int(SELF_FILL_TRIM * len(diff)))  # text or a sticker over part of the blur is not the fit's error
    return float(np.partition(diff, keep - 1)[:keep].mean()), spread, diff


def _self_fill(homography: np.ndarray, original: np.ndarray, query: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(h, w) bool: the pixels of `region` that are the original itself zoomed over the canvas and
    blurred (a repost's blur background), or none when no such rendering explains the region."""
    residual, spread, diff = self_fill_fit(homography, original, query, region)
    out = np.zeros(region.shape, bool)
    if residual <= SELF_FILL_RESIDUAL and residual <= SELF_FILL_RATIO * spread:
        out[region] = diff <= SELF_FILL_PIXEL
    return out


def original_to_query(pair: AlignedPair, candidate: View, query_view: View, query_size: tuple[int, int]) -> np.ndarray:
    """(3, 3) homography from the pixels of the original the candidate's view was made from
    (`candidate.full_size`) to the query's pixels (`query_size`): what a viewer needs to show the
    original aligned under the query (the compare view; the report scales it to the original's own
    pixels when ingest had reduced them)."""
    cw, ch = candidate.size
    fw, fh = candidate.full_size
    qw, qh = query_view.size
    to_work = np.diag([cw / fw, ch / fh, 1.0])
    to_full = np.diag([query_size[0] / qw, query_size[1] / qh, 1.0])
    h = to_full @ pair.alignment.homography @ to_work
    return h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h
