"""Geometric alignment F_A (SImProv Sec. 3.2): where does each candidate pixel come from in
the query? A global homography from SIFT matches + RANSAC, refined by dense DIS optical
flow for residual, non-rigid warps; the query is then resampled into the candidate's frame
by the differentiable warping unit (DWU: bilinear `grid_sample`).

No flow network weights can be downloaded here, so the estimate is classical; the DWU is
differentiable either way, so a trained flow estimator can replace `estimate_alignment`
without touching what follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MIN_INLIERS = 8
# The aligner also tries the mirrored query and keeps the better fit, whatever the unmirrored fit's
# inliers: a mirrored copy gives spurious unmirrored fits (repeated or symmetric structure) of up to
# ~120 inliers, while the true, mirrored fit had hundreds; no plain copy's mirrored fit beat its
# unmirrored one (train photos, 500 of each: BENCHMARKS.md, "Mirrored copies: the better fit").
# A fit of this many inliers counts as aligned well (stage 2 then stops trying the others mirrored).
# Under it, the query's descriptors are also tried tone-inverted (`SiftFeatures.inverted`), plain and
# mirrored: a photo's negative, or the inverted parts of a solarised copy, match no plain descriptor.
MIRROR_RETRY = 2 * MIN_INLIERS
# SIFT of an image's negative: the same keypoints (DoG extrema of either sign), each turned by 180
# degrees (every gradient reversed), so its 4x4 cells come in reverse order with the same 8
# orientation bins. Descriptor layout (OpenCV): ((row * 4 + col) * 8 + bin).
INVERTED = np.array([((3 - r) * 4 + (3 - c)) * 8 + b for r in range(4) for c in range(4) for b in range(8)])
RATIO = 0.75  # Lowe's ratio test: a match's nearest descriptor must beat the second by this much
# A homography that maps the candidate's frame to less than this share of the query, or folds
# it (a non-convex quadrilateral), is RANSAC fitting noise, not an alignment: on 520 true
# matches of the families benchmark the frame never mapped below 25 % nor folded, while
# a shoe and a bike matched to different ones through collapsed fits (~0.03 %).
MIN_FRAME_SHARE = 0.01
# Content that moved beyond the homography (`moved_cells`): the flow is read only where the
# query covers the original and both have texture (a Sobel magnitude of at least MOVED_TEXTURE
# grey levels: in flat areas DIS's flow is unconstrained, and a pad or flat fill in the query is
# not content it can follow), in cells with MOVED_MIN_SHARE of such pixels; it counts as a move
# only where it explains at least MOVED_EXPLAINS of the difference the homography leaves (and
# MOVED_MIN_GAIN grey levels): an occluding caption or a pasted object leaves a difference that
# no flow explains. Displacements are in the coarser image's pixels. Chosen on 1,988 benign
# copies (`augment.benign`) and 260 twirl warps of `train` photos (BENCHMARKS.md, "Local warps").
MOVED_GRID = 7
# ...and only MOVED_MARGIN px or more inside what the query covers and inside the frame: at the edge of the
# covered area (a crop's border, a screenshot's or a card's frame) DIS has content on one side only and its
# flow drifts. Chosen on `train` photos (`scripts/probe_warp_margin.py`, 1,500 of each): copies set in a
# flat frame called warped 35 -> 6, benign copies 3 -> 2, twirl warps found 1,111 -> 1,096 (BENCHMARKS.md,
# "Local warps at the edge of the covered area").
MOVED_MARGIN = 14
MOVED_TEXTURE = 12.0
MOVED_MIN_SHARE = 0.2
MOVED_EXPLAINS = 0.7
MOVED_MIN_GAIN = 2.0
# A crop drawn inside the query (`shown_box`): a platform's post crops a tall photo to 4:5 and
# a screenshot shows the post's text and action bar where the cut-off rows of the original
# would lie under the homography. Along each edge of the original's frame, a band of depth
# SHOWN_MIN..SHOWN_MAX of that side counts as not shown when its rows differ from the query
# (grey, SHOWN_BLUR px blur, by more than SHOWN_DIFFER levels) and the rows after it do not,
# with a step of SHOWN_STEP in the share of differing pixels over SHOWN_EDGE_ROWS rows either
# side of the cut (a straight cut across the whole side: an edit follows its object's outline).
# Chosen on `train` photos in posts of a generator written for it (`scripts/calibrate_shown.py`,
# 100 of each kind): posts called manipulated 54 -> 13, no cut on a plain manipulation and one on
# a benign copy (0.4: 8 posts, but a cut on a manipulation; BENCHMARKS.md, "Screenshots of a post").
SHOWN_BLUR = 1.5
SHOWN_DIFFER = 24.0
SHOWN_STEP = 0.5
SHOWN_MIN = 0.02
SHOWN_MAX = 0.25
SHOWN_EDGE_ROWS = 3
SHOWN_AFTER = 0.1  # the rows after the cut that must agree, as a share of the side (at least 4 rows)
# A cut along a straight edge the original itself has across SHOWN_OWN_EDGE of the side (a step of
# SHOWN_EDGE_LEVELS grey levels there) is its own border or frame, which an edit can recolour: not a crop.
SHOWN_OWN_EDGE = 0.8
SHOWN_EDGE_LEVELS = 20.0
NOT_SHOWN = -1.0e4  # a grid position for an original pixel the query does not show: far outside it


@dataclass(frozen=True)
class Alignment:
    """`grid[y, x]` = (x, y) position in the query, in pixels, of candidate pixel (x, y)."""

    grid: np.ndarray  # (Hc, Wc, 2) float32, query pixel coordinates
    homography: np.ndarray  # (3, 3) candidate -> query pixel coordinates
    inliers: int
    query_size: tuple[int, int]  # (W, H)
    # the box (x0, y0, x1, y1) of the candidate's frame the query shows when a crop drawn inside
    # the query cut its edges (`shown_box`); the grid maps the rest to NOT_SHOWN
    shown: tuple[int, int, int, int] | None = None
    # the fit came through the query's inverted descriptors (a negative): what compares the pair
    # (the flow here, PSEN and ChangeNet through `pairs`) sees the query's tones inverted back
    inverted: bool = False
    # what `moved` needs: candidate and homography-warped query (grey), coverage, residual flow,
    # query pixels per candidate pixel
    flow_inputs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def moved(self) -> np.ndarray | None:
        """(MOVED_GRID, MOVED_GRID) `moved_cells` over the candidate's frame, in the coarser
        image's pixels; None without the flow. On demand: stage 2 aligns many candidates, stage
        3 reads one."""
        return None if self.flow_inputs is None else moved_cells(*self.flow_inputs)

    @property
    def global_ok(self) -> bool:
        return self.inliers >= MIN_INLIERS

    def shown_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """(H, W) bool over the candidate's frame of `shape`: where the query shows it (all of it without a cut)."""
        return np.ones(shape[:2], bool) if self.shown is None else _box_mask(self.shown, shape)

    def normalised_grid(self) -> torch.Tensor:
        """(1, Hc, Wc, 2) in grid_sample's [-1, 1] convention (align_corners=False)."""
        w, h = self.query_size
        g = self.grid.copy()
        g[..., 0] = (g[..., 0] + 0.5) / w * 2 - 1
        g[..., 1] = (g[..., 1] + 0.5) / h * 2 - 1
        return torch.from_numpy(g)[None]


@dataclass(frozen=True)
class SiftFeatures:
    """SIFT keypoint positions and descriptors of one image (picklable, cacheable)."""

    points: np.ndarray  # (N, 2) float32, pixel (x, y)
    descriptors: np.ndarray  # (N, 128) float32

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def inverted(self) -> SiftFeatures:
        """The descriptors the image's negative would have at the same points (INVERTED)."""
        return SiftFeatures(self.points, self.descriptors[:, INVERTED])

    @cached_property
    def matching(self) -> np.ndarray:
        """(N, 128) float32 RootSIFT: what the geometric fits compare (`root_sift`). Computed once
        per features object (~0.3 ms for 2,000 descriptors); a view in the matcher's LRU keeps it
        beside the plain descriptors, 512 B per descriptor (~140 KB for a typical 256-px original,
        ~75 MB for the default 512 cached views). The stored descriptors, and the local-feature
        vote's index built from them, stay plain SIFT."""
        return root_sift(self.descriptors)


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman, CVPR 2012): each descriptor L1-normalised, then the
    square root, so that Euclidean distance compares histograms by the Hellinger kernel and a few
    large bins no longer dominate. On the 54 family queries whose true original stage 2 missed
    (most blurred, shrunk or strongly recompressed), the true pair reached the matcher's 8 inliers
    for 19 instead of 13, while the most inliers any of 30 unrelated photos reached stayed 6
    (BENCHMARKS.md, "RootSIFT")."""
    d = descriptors.astype(np.float32, copy=False)
    return np.sqrt(d / np.maximum(d.sum(1, keepdims=True), 1e-7)).astype(np.float32)


def _grey(img: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(img, np.ndarray):
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return np.asarray(img.convert("L"), np.uint8)


def sift_features(img: Image.Image | np.ndarray, n: int = 2000) -> SiftFeatures:
    kps, desc = cv2.SIFT_create(nfeatures=n).detectAndCompute(_grey(img), None)
    if desc is None or not kps:
        return SiftFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    return SiftFeatures(np.float32([k.pt for k in kps]), desc.astype(np.float32))


def mirrored_sift(img: Image.Image | np.ndarray, n: int = 2000) -> SiftFeatures:
    """SIFT of the left-right mirrored image, keypoints mapped back into the unmirrored frame:
    matched against a candidate they give a homography that includes the reflection. SIFT is
    not mirror-invariant, and mirroring is one of the commonest edits when photos are shared."""
    grey = _grey(img)
    f = sift_features(np.ascontiguousarray(grey[:, ::-1]), n)
    points = f.points.copy()
    points[:, 0] = (grey.shape[1] - 1) - points[:, 0]
    return SiftFeatures(points, f.descriptors)


def stretched_sift(img: Image.Image | np.ndarray, fx: float, fy: float, n: int = 2000) -> SiftFeatures:
    """SIFT of the image stretched by (fx, fy), keypoints mapped back into its own frame: matched
    against a candidate they give a homography that includes the squeeze. SIFT's descriptors do
    not survive a squeeze of 2:1 or more, so a photo squeezed into a frame of another shape fits
    its original on a few imprecise points (BENCHMARKS.md, "Stretched copies")."""
    grey = _grey(img)
    h, w = grey.shape
    size = (max(1, round(w * fx)), max(1, round(h * fy)))
    f = sift_features(cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC), n)
    points = (f.points + 0.5) * np.float32([w / size[0], h / size[1]]) - 0.5
    return SiftFeatures(points.astype(np.float32), f.descriptors)


def _homography(fq: SiftFeatures, fc: SiftFeatures, q_shape: tuple[int, ...], c_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Candidate -> query homography from RootSIFT + Lowe ratio test + RANSAC (a plain rescale on failure)."""
    if len(fq) < MIN_INLIERS or len(fc) < MIN_INLIERS:
        return _rescale(q_shape, c_shape), 0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(fc.matching, fq.matching, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < RATIO * n.distance]
    return _fit(fc.points[[m.queryIdx for m in good]], fq.points[[m.trainIdx for m in good]], q_shape, c_shape)


def _fit(src: np.ndarray, dst: np.ndarray, q_shape: tuple[int, ...], c_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """RANSAC homography from matched candidate points `src` to query points `dst`, and its
    inliers; (a plain rescale, 0) when it fails or is implausible."""
    if len(src) < MIN_INLIERS:
        return _rescale(q_shape, c_shape), 0
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if h is None or not np.isfinite(h).all() or abs(np.linalg.det(h[:2, :2])) < 1e-6 or not plausible_homography(h, q_shape, c_shape):
        return _rescale(q_shape, c_shape), 0
    return h, int(mask.sum())


def _rescale(q_shape: tuple[int, ...], c_shape: tuple[int, ...]) -> np.ndarray:
    """The candidate frame stretched onto the query's: the stand-in when no homography holds."""
    return np.diag([q_shape[1] / c_shape[1], q_shape[0] / c_shape[0], 1.0])


def count_inliers(fq: SiftFeatures, fc: SiftFeatures, q_shape: tuple[int, ...], c_shape: tuple[int, ...]) -> int:
    """RANSAC inliers of the candidate -> query homography, without the dense flow and warping
    that a full alignment adds: the cheap geometric check of a shortlist (0 when no plausible
    homography holds)."""
    return _homography(fq, fc, q_shape, c_shape)[1]


def screen_inliers(fq: SiftFeatures, q_shape: tuple[int, ...], candidates: list[tuple[SiftFeatures, tuple[int, ...]]],
                   bar: int) -> list[int]:
    """RANSAC inliers between the query and each (features, shape) candidate where they reach
    `bar`, 0 for the rest: the aligner's matching and fit (`count_inliers`), with the nearest-
    neighbour search batched over all candidates (one FAISS k-NN instead of a matcher per
    candidate) and RANSAC skipped where fewer than `bar` matches pass the ratio test. Up to
    float rounding at the ratio test's edge, the counts are `count_inliers`'s."""
    out = [0] * len(candidates)
    sizes = [len(f) for f, _ in candidates]
    if len(fq) < max(2, MIN_INLIERS, bar) or not sum(sizes):
        return out
    import faiss  # here, not at the top: training imports this module on machines without FAISS (the GPU recipe's)

    c = np.ascontiguousarray(np.concatenate([f.matching for f, _ in candidates]), np.float32)
    d2, nn = faiss.knn(c, np.ascontiguousarray(fq.matching, np.float32), 2)  # squared L2, best first
    good = d2[:, 0] < RATIO**2 * d2[:, 1]
    start = 0
    for k, (n, (feats, shape)) in enumerate(zip(sizes, candidates, strict=True)):
        rows = np.flatnonzero(good[start:start + n])
        if len(rows) >= max(bar, MIN_INLIERS):
            inliers = _fit(feats.points[rows], fq.points[nn[start + rows, 0]], q_shape, shape)[1]
            out[k] = inliers if inliers >= bar else 0
        start += n
    return out


@dataclass(frozen=True)
class CloserFeatures:
    """An image's SIFT at the closer look's size (`CLOSER_SIDE`), plain and mirrored (`mirrored`
    is None for a candidate: the query's mirror covers a mirrored copy), and that frame's shape."""

    features: SiftFeatures
    shape: tuple[int, ...]
    mirrored: SiftFeatures | None = None


# The closer look (`matching.Matcher`): SIFT at this many px on the long side, one and a half times
# the working frame. At 256 px a subject cut out of its photo, a small pasted piece or a printed copy
# keeps too few keypoints to fit (0-7 inliers for its original); at 384 px, on the queries of the
# families runs that nothing matched, 31 of 261 true originals fitted with 8-62 (BENCHMARKS.md,
# "A closer look").
CLOSER_SIDE = 384


def closer_features(img: Image.Image, side: int = CLOSER_SIDE, mirrored: bool = False, n: int = 2000) -> CloserFeatures:
    """`img` reduced to `side` on its long side (never enlarged) and its SIFT (`n` strongest)."""
    w = img.convert("RGB") if img.mode != "RGB" else img
    if max(w.size) > side:
        w = w.copy()
        w.thumbnail((side, side), Image.BICUBIC, reducing_gap=3.0)
    grey = _grey(np.asarray(w, np.uint8))
    return CloserFeatures(sift_features(grey, n), grey.shape, mirrored_sift(grey) if mirrored else None)


def degraded_features(image: np.ndarray, side: int) -> CloserFeatures:
    """An original's working view (`image`, (h, w, 3) uint8) brought down to `side` px on its long
    side and back up (bicubic), and its SIFT: the loss of detail of a query that small, given to
    the original. A query under the working frame is enlarged to it, and its blurred keypoints do
    not match the original's sharp ones (`matching.Matcher._closer_look`)."""
    h, w = image.shape[:2]
    f = side / max(h, w)
    if f < 1:
        img = Image.fromarray(image).resize((max(1, round(w * f)), max(1, round(h * f))), Image.BICUBIC)
        image = np.asarray(img.resize((w, h), Image.BICUBIC), np.uint8)
    return CloserFeatures(sift_features(image), image.shape)


def closer_counts(query: CloserFeatures, candidates: list[CloserFeatures], bar: int) -> list[int]:
    """RANSAC inliers of each candidate against the query at the closer look, plain or mirrored
    (the better), where they reach `bar`; 0 otherwise (`screen_inliers`' batched matching)."""
    pairs = [(c.features, c.shape) for c in candidates]
    counts = screen_inliers(query.features, query.shape, pairs, bar)
    if query.mirrored is not None:
        rest = [j for j, n in enumerate(counts) if n < bar]
        for j, n in zip(rest, screen_inliers(query.mirrored, query.shape, [pairs[j] for j in rest], bar), strict=True):
            counts[j] = max(counts[j], n)
    return counts


def closer_fit(query: CloserFeatures, candidate: CloserFeatures, q_shape: tuple[int, ...],
               c_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """The candidate -> query homography of the closer look (plain or mirrored, the better),
    rescaled to frames of `q_shape` and `c_shape` (the working views'), and its inliers."""
    h, n = _homography(query.features, candidate.features, query.shape, candidate.shape)
    if query.mirrored is not None:
        hm, nm = _homography(query.mirrored, candidate.features, query.shape, candidate.shape)
        if nm > n:
            h, n = hm, nm
    to_q = np.diag([q_shape[1] / query.shape[1], q_shape[0] / query.shape[0], 1.0])
    from_c = np.diag([candidate.shape[1] / c_shape[1], candidate.shape[0] / c_shape[0], 1.0])
    return to_q @ h @ from_c, n


def plausible_homography(h: np.ndarray, q_shape: tuple[int, ...], c_shape: tuple[int, ...]) -> bool:
    """Whether `h` (candidate -> query) maps the candidate's frame to a convex quadrilateral
    covering at least MIN_FRAME_SHARE of the query (corners in front of the camera)."""
    hc, wc = c_shape[:2]
    corners = np.array([[0, 0, 1], [wc, 0, 1], [wc, hc, 1], [0, hc, 1]], np.float64) @ h.T
    if (corners[:, 2] <= 1e-9).any():  # a corner mapped through infinity
        return False
    quad = (corners[:, :2] / corners[:, 2:]).astype(np.float32)
    area = abs(cv2.contourArea(quad)) / float(q_shape[0] * q_shape[1])
    return bool(cv2.isContourConvex(quad)) and area >= MIN_FRAME_SHARE


def estimate_alignment(
    query: Image.Image | np.ndarray,
    candidate: Image.Image | np.ndarray,
    *,
    flow: bool = True,
    query_feats: SiftFeatures | None = None,
    cand_feats: SiftFeatures | None = None,
    query_mirrored: Callable[[], SiftFeatures] | None = None,
    retry: bool = True,
    invert: bool = True,
    fit: tuple[np.ndarray, int] | None = None,
) -> Alignment:
    """Map every candidate pixel to the query: homography, then DIS flow on the residual.
    Precomputed SIFT features (e.g. the candidate's, cached at registration) skip detection.
    The query is also tried mirrored (`query_mirrored` supplies its features, e.g. cached on the
    query's view; computed here otherwise) and the fit with more inliers kept: a mirrored copy
    then aligns through a reflecting homography. Under MIRROR_RETRY inliers its descriptors are
    tried tone-inverted too, plain and mirrored (a negative). `retry=False` skips these tries
    (stage 2 does once another candidate has aligned well); `invert=False` the inverted ones.
    `fit`: a (homography, inliers) found elsewhere in these two frames (`closer_fit`'s, rescaled):
    no SIFT matching here, the flow refines that homography."""
    q, c = _grey(query), _grey(candidate)
    hc, wc = c.shape
    inverted = False
    if fit is not None:
        h, inliers = fit
        retry = False
    else:
        fq = query_feats if query_feats is not None else sift_features(q)
        fc = cand_feats if cand_feats is not None else sift_features(c)
        h, inliers = _homography(fq, fc, q.shape, c.shape)
    if retry:
        fm = query_mirrored() if query_mirrored is not None else mirrored_sift(q)
        tries: list[Callable[[], SiftFeatures]] = [lambda: fm]
        if invert:  # made only when tried: most fits hold well before them
            tries += [fq.inverted, fm.inverted]
        for i, features in enumerate(tries):
            if i and inliers >= MIRROR_RETRY:  # the inverted tries only where no fit holds well
                break
            ht, n = _homography(features(), fc, q.shape, c.shape)
            if n >= MIN_INLIERS and n > inliers:  # a fit by the aligner's own bar
                h, inliers, inverted = ht, n, i > 0
    ys, xs = np.mgrid[0:hc, 0:wc].astype(np.float32)
    if flow and inliers >= MIN_INLIERS:
        # Query resampled into the candidate frame by the homography; the flow from the
        # candidate to it is the residual displacement, in candidate pixels. (Without a
        # homography there is nothing to refine: flow between unrelated images is noise.)
        warped = cv2.warpPerspective(q, h, (wc, hc), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if inverted:  # a negative: the flow follows brightness, so it sees the query's negative
            warped = 255 - warped
        covered = cv2.warpPerspective(np.full(q.shape, 255, np.uint8), h, (wc, hc),
                                      flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP) > 0
        # Beyond the query's footprint (what a crop left out) the warped query is empty, and DIS
        # matched the candidate there to whatever lay near: its vectors pulled the query's content
        # out over the missing area, which then counted as covered and differed (a tight crop was
        # called manipulated; BENCHMARKS.md, "Reframed copies"). There the flow sees the candidate
        # itself (nothing to follow, no false edge at the border) and is dropped.
        # The same holds for the rows a crop drawn inside the query cut off (`shown_box`).
        # There the flow sees the candidate in the query's tone: in a brightened copy's flat sky
        # the candidate's own levels across the cut drew the flow up into the post's text.
        shown = shown_box(c, warped, covered)
        fill = c
        if shown is not None:
            box = _box_mask(shown, covered.shape)
            toned = np.clip(_tone_matched(c, warped, covered), 0, 255).round().astype(np.uint8)
            fill = np.where(covered & ~box, toned, c)
            covered &= box
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        residual = dis.calc(c, np.where(covered, warped, fill), None)  # (Hc, Wc, 2)
        residual[~covered] = 0.0
        flow_inputs = (c, warped, covered, residual, _local_scale(h, wc, hc))
        xs, ys = xs + residual[..., 0], ys + residual[..., 1]
    else:
        flow_inputs, shown = None, None
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ h.T.astype(np.float32)
    grid = (pts[..., :2] / pts[..., 2:3]).astype(np.float32)
    if shown is not None:
        grid[~_box_mask(shown, grid.shape[:2])] = NOT_SHOWN
    return Alignment(grid=grid, homography=h, inliers=inliers, query_size=(q.shape[1], q.shape[0]), shown=shown,
                     inverted=inverted, flow_inputs=flow_inputs)


def _box_mask(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = np.zeros(shape[:2], bool)
    m[y0:y1, x0:x1] = True
    return m


def shown_box(candidate: np.ndarray, warped: np.ndarray, covered: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) of the candidate's frame that a query shows when it crops the
    original inside its own frame, as a post or a screenshot of one shows a tall photo cut to
    4:5 with text above and below it; None when no edge is cut (SHOWN_*).

    candidate, warped: (H, W) uint8 grey, the query resampled by the homography alone; covered:
    (H, W) bool. Judged on the whole frame, the cut-off rows compare the original with the
    post's text and were called manipulated; a query's own frame edge (an ordinary crop) is
    already outside `covered`."""
    blur = lambda a: cv2.GaussianBlur(a.astype(np.float32), (0, 0), SHOWN_BLUR)
    cand = blur(candidate)
    # the query's own edge rows (resampled against the empty beyond, JPEG's border blocks) differ
    # whatever the copy: a crop's edge would pass for a cut
    covered = cv2.erode(covered.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0
    differs = (np.abs(cand - blur(_tone_matched(warped, candidate, covered))) > SHOWN_DIFFER) & covered
    h, w = covered.shape
    cuts = [_cut(d, c, o) for d, c, o in ((differs, covered, cand), (differs[::-1], covered[::-1], cand[::-1]),
                                          (differs.T, covered.T, cand.T), (differs.T[::-1], covered.T[::-1], cand.T[::-1]))]
    if not any(cuts):
        return None
    top, bottom, left, right = cuts
    return left, top, w - right, h - bottom


def _tone_matched(warped: np.ndarray, candidate: np.ndarray, covered: np.ndarray, bins: int = 32) -> np.ndarray:
    """`warped` with each grey level replaced by the candidate's mean level where the middle of the
    frame (a quarter in from each edge: shown whatever was cut) has it, so that a copy's global
    tone change (a brightened or graded screenshot) does not read as content that differs (and,
    roles swapped, the candidate in the query's tone)."""
    h, w = covered.shape
    mid = np.zeros_like(covered)
    mid[h // 4:h - h // 4, w // 4:w - w // 4] = True
    mid &= covered
    level = warped.astype(np.int64) * bins // 256
    count = np.bincount(level[mid], minlength=bins)
    if count.sum() == 0:
        return warped
    total = np.bincount(level[mid], weights=candidate[mid].astype(np.float64), minlength=bins)
    lut = np.where(count > 0, total / np.maximum(count, 1), (np.arange(bins) + 0.5) * 256 / bins)
    return lut[level].astype(np.float32)


def _cut(differs: np.ndarray, covered: np.ndarray, candidate: np.ndarray) -> int:
    """How many rows from row 0 a crop inside the query cut off (0: none): `shown_box` for one edge
    (`candidate`: the blurred grey candidate, turned as `differs` is)."""
    n = covered.sum(1)
    share = np.where(n > 0.5 * covered.shape[1], differs.sum(1) / np.maximum(n, 1), np.nan)  # rows mostly covered
    side = len(share)
    e, after = SHOWN_EDGE_ROWS, max(4, int(SHOWN_AFTER * side))
    k = np.arange(max(2, int(SHOWN_MIN * side), e), min(int(SHOWN_MAX * side), side - e) + 1)
    if k.size == 0:
        return 0
    known = ~np.isnan(share)
    total = np.concatenate([[0.0], np.cumsum(np.where(known, share, 0.0))])
    count = np.concatenate([[0], np.cumsum(known)])

    def mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # over the known rows of [a, b)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total[b] - total[a]) / (count[b] - count[a])

    end = np.minimum(k + after, side)
    step = np.minimum(mean(np.zeros_like(k), k), mean(k - e, k)) - np.maximum(mean(k, end), mean(k, k + e))
    ok = (count[k] - count[k - e] == e) & (count[k + e] - count[k] == e) & (step >= SHOWN_STEP)  # the rows at the cut all known
    if not ok.any():
        return 0
    cut = int(k[np.flatnonzero(ok & (step == step[ok].max()))[-1]])  # the largest step; of equal ones, the deeper cut
    across = covered[cut - 2] & covered[cut + 1]
    edge = np.abs(candidate[cut + 1] - candidate[cut - 2]) > SHOWN_EDGE_LEVELS
    if across.any() and edge[across].mean() >= SHOWN_OWN_EDGE:
        return 0
    return cut


def _local_scale(h: np.ndarray, wc: int, hc: int) -> float:
    """Query pixels per candidate pixel at the candidate's centre (the homography's local area
    scale, square-rooted)."""
    cx, cy, d = wc / 2, hc / 2, max(1.0, min(wc, hc) / 10)
    pts = np.array([[cx, cy, 1], [cx + d, cy, 1], [cx, cy + d, 1]], np.float64) @ h.T
    if (np.abs(pts[:, 2]) < 1e-9).any():
        return 1.0
    p = pts[:, :2] / pts[:, 2:]
    (ax, ay), (bx, by) = p[1] - p[0], p[2] - p[0]
    area = abs(float(ax * by - ay * bx))
    return float(np.sqrt(area) / d)


def moved_cells(candidate: np.ndarray, warped: np.ndarray, covered: np.ndarray, residual: np.ndarray,
                scale: float = 1.0, grid: int = MOVED_GRID) -> np.ndarray:
    """How far each cell's content moved beyond the global homography: the evidence of a local
    warp (a liquify stroke, a reshaped face), which the flow that refines the alignment would
    otherwise undo silently before ChangeNet sees the pair.

    candidate, warped: (H, W) uint8 grey, the query resampled by the homography alone;
    covered: (H, W) bool; residual: (H, W, 2) the DIS flow from candidate to `warped`; scale:
    query pixels per candidate pixel. Per cell of a grid x grid split: the median displacement
    (less the frame's median, a shift the homography left) over pixels textured in both images
    and covered (MOVED_MARGIN px inside), where the flow explains the difference (see MOVED_*); 0 elsewhere. In pixels
    of the coarser image: a thumbnail's upsampled flow noise is not a move."""
    st = moved_stats(candidate, warped, inside(covered, MOVED_MARGIN), residual, grid)
    explained = (st.share >= MOVED_MIN_SHARE) & (st.err_h - st.err_f >= np.maximum(MOVED_MIN_GAIN, MOVED_EXPLAINS * st.err_h))
    return (np.where(explained, st.disp, 0.0) * min(1.0, scale)).astype(np.float32)


def inside(covered: np.ndarray, margin: int) -> np.ndarray:
    """`covered` less a band of `margin` px along its edges and the frame's."""
    if margin <= 0:
        return covered
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(covered.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


@dataclass(frozen=True)
class MovedStats:
    """Per cell: share of textured covered pixels, their median displacement, and the mean
    difference to the original after the homography alone (err_h) and with the flow (err_f)."""

    share: np.ndarray
    disp: np.ndarray
    err_h: np.ndarray
    err_f: np.ndarray


def _texture(img: np.ndarray) -> np.ndarray:
    blur = cv2.GaussianBlur(img, (3, 3), 0)
    return np.hypot(cv2.Sobel(blur, cv2.CV_32F, 1, 0), cv2.Sobel(blur, cv2.CV_32F, 0, 1)) / 4  # grey levels per px


def moved_stats(candidate: np.ndarray, warped: np.ndarray, covered: np.ndarray, residual: np.ndarray,
                grid: int = MOVED_GRID) -> MovedStats:
    c = candidate.astype(np.float32)
    hgt, wid = c.shape
    ys, xs = np.mgrid[0:hgt, 0:wid].astype(np.float32)
    flowed = cv2.remap(warped, xs + residual[..., 0], ys + residual[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # textured in both: the original, and the query where the homography puts it (a pad, a flat
    # fill or a blank caption box in the query is not content the flow can follow)
    use = covered & (_texture(c) >= MOVED_TEXTURE) & (_texture(warped.astype(np.float32)) >= MOVED_TEXTURE)
    shape = (grid, grid)
    share, disp, err_h, err_f = (np.zeros(shape, np.float32) for _ in range(4))
    if use.any():
        shift = np.median(residual[use], axis=0)
        moved = np.hypot(residual[..., 0] - shift[0], residual[..., 1] - shift[1])
        eh = cv2.blur(np.abs(warped.astype(np.float32) - c), (5, 5))
        ef = cv2.blur(np.abs(flowed.astype(np.float32) - c), (5, 5))
        yb = np.linspace(0, hgt, grid + 1).round().astype(int)
        xb = np.linspace(0, wid, grid + 1).round().astype(int)
        for i in range(grid):
            for j in range(grid):
                win = (slice(yb[i], yb[i + 1]), slice(xb[j], xb[j + 1]))
                cell = use[win]
                if cell.size == 0 or not cell.any():
                    continue
                share[i, j] = cell.mean()
                disp[i, j] = np.median(moved[win][cell])
                err_h[i, j], err_f[i, j] = eh[win][cell].mean(), ef[win][cell].mean()
    return MovedStats(share, disp, err_h, err_f)


def dwu(query: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Differentiable warping unit: (B, C, Hq, Wq) sampled at grid (B, Hc, Wc, 2) in [-1, 1]
    -> (B, C, Hc, Wc), bilinear; gradients reach both the image and the grid."""
    return F.grid_sample(query, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def align_image(query: Image.Image, candidate: Image.Image) -> tuple[Image.Image, Alignment]:
    """The query warped into the candidate's frame (for comparison and display)."""
    a = estimate_alignment(query, candidate)
    x = torch.from_numpy(np.asarray(query.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        out = dwu(x, a.normalised_grid())[0].permute(1, 2, 0).numpy()
    return Image.fromarray((np.clip(out, 0, 1) * 255).round().astype(np.uint8)), a
