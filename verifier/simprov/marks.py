"""A publisher's mark (a watermark, a credit line, a logo) is not evidence of provenance.

When many registered photos carry one publisher's mark, an unrelated photo with the same mark
aligns with one of them through the mark alone: stage 2 sees a well-aligned region and PSEN calls
the pair the same (BENCHMARKS.md, "A shared watermark": 5 of 100 unrelated marked photos were
matched). A registered mark makes the query's keypoints on it count for nothing: they are removed
from the query's features before stage 2 fits, the screen, the vote and stage 3's alignment.

A mark is found in two ways: keypoints whose RootSIFT descriptor lies within `MARK_DISTANCE` of the
mark's own (rendered at several heights over flat backgrounds, where a semi-opaque mark looks the
same on any photo), and, where at least `MIN_PLACED` of those agree on one placement of the mark
(a similarity transform, RANSAC), every keypoint inside the placed mark's outline and near a
placed keypoint: over a textured background the mark's descriptors change, its place does not.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from verifier.simprov.align import SiftFeatures, sift_features

# Heights (px) the mark is rendered at: a mark is seen at the query's working size (256 px on the
# long side), where a credit line is ~10 px high and a centred name 20-40 px.
HEIGHTS = (12, 18, 26, 36, 52, 75, 110)
BACKGROUNDS = (0, 64, 128, 192, 255)  # flat greys under the mark; over white a white mark is its outline
# RootSIFT distance under which a query keypoint is the mark's. Chosen on the families benchmark's
# 150 right answers at <= 20 inliers with a marked bench's mark registered: at 0.3 one of them
# (8 inliers) lost a fit, at 0.25 none (BENCHMARKS.md, "Publisher marks").
MARK_DISTANCE = 0.25
# Looser, for the keypoints that may show where the mark lies: RANSAC keeps those agreeing on one place.
PLACE_DISTANCE = 0.4
MIN_PLACED = 6  # mark keypoints agreeing on a placement before its outline is cut out
PLACE_TOLERANCE = 3.0  # px, RANSAC reprojection error of the placement
MARGIN = 3.0  # px around the placed outline
NEAR = 1.0  # x the placed mark's height: how far from a placed keypoint the outline is cut
# A "mark" covering more of a query than this (its placed outline's share of the frame, or without
# a placement the share of keypoints it claims) is not a mark: it is ignored for that query, so a
# registered image cannot hide the content of others.
MAX_SHARE = 0.35
MIN_HEIGHT = 4.0  # px: a placement smaller than this is chance
# Longer marks are refused: rendered 110 px high, a 400:1 strip would be a 44,000 px wide image to
# search (the bench's credit line is 13:1).
MAX_ASPECT = 30.0


@dataclass(frozen=True)
class MarkModel:
    """What the matcher needs of a mark: RootSIFT descriptors of its renderings, each keypoint's
    place in the mark's frame (x, y in units of the mark's height), and its opaque outline."""

    descriptors: np.ndarray  # (M, 128) float32 RootSIFT
    points: np.ndarray  # (M, 2) float32, mark-height units
    outline: np.ndarray  # (P, 2) float32 convex hull of the opaque pixels, mark-height units

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def places(self) -> int:
        """Distinct places of its keypoints (a quarter of its height apart): a mark needs many to be
        told from generic content (an opaque rectangle has one, a blob at its centre)."""
        return len({(round(float(x) * 4), round(float(y) * 4)) for x, y in self.points})


def mark_model(image: Image.Image) -> MarkModel:
    """`image`: the mark as the publisher overlays it (RGBA; an RGB image is wholly opaque)."""
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba)[:, :, 3]
    ys, xs = np.nonzero(alpha)
    if not len(xs):
        raise ValueError("the mark has no opaque pixel")
    crop = rgba.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    if max(crop.width / crop.height, crop.height / crop.width) > MAX_ASPECT:
        raise ValueError(f"its opaque part is {crop.width}x{crop.height} px; a mark is at most {MAX_ASPECT:g} times as long "
                         "as it is high (or the reverse)")
    a = np.asarray(crop)[:, :, 3]
    ys, xs = np.nonzero(a)
    hull = cv2.convexHull(np.float32(np.c_[xs, ys]))[:, 0] / crop.height
    descs, points = [], []
    for h in HEIGHTS:
        w = max(1, round(crop.width * h / crop.height))
        small = crop.resize((w, h), Image.LANCZOS)
        pad = 2 * h  # room for SIFT's border
        for grey in BACKGROUNDS:
            canvas = Image.new("RGBA", (w + 2 * pad, h + 2 * pad), (grey, grey, grey, 255))
            canvas.alpha_composite(small, (pad, pad))
            f = sift_features(np.asarray(canvas.convert("L")))
            if len(f):
                descs.append(f.matching)
                points.append((f.points - pad) / h)
    if not descs:
        raise ValueError("SIFT finds nothing in the mark")
    return MarkModel(np.concatenate(descs).astype(np.float32), np.concatenate(points).astype(np.float32),
                     hull.astype(np.float32))


# What a stored model was made with: renderings (HEIGHTS, BACKGROUNDS) and OpenCV's SIFT. A stored
# model of another key is built again. Bump MODEL_VERSION whenever `mark_model` changes.
MODEL_VERSION = 1
MODEL_KEY = f"m{MODEL_VERSION}-cv{cv2.__version__}"


def model_bytes(model: MarkModel) -> bytes:
    """`model` as an .npz (no pickle): the cache that spares a process its marks' SIFT at start-up."""
    buf = io.BytesIO()
    np.savez(buf, descriptors=model.descriptors, points=model.points, outline=model.outline)
    return buf.getvalue()


def model_from_bytes(data: bytes) -> MarkModel:
    """The model `model_bytes` wrote; ValueError for anything else."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            d, p, o = (np.asarray(z[k], np.float32) for k in ("descriptors", "points", "outline"))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a stored mark model: {exc}") from exc
    if d.ndim != 2 or d.shape[1] != 128 or p.shape != (len(d), 2) or o.ndim != 2 or o.shape[1] != 2 or not len(o):
        raise ValueError("not a stored mark model: its arrays have the wrong shapes")
    if not (np.isfinite(d).all() and np.isfinite(p).all() and np.isfinite(o).all()):
        raise ValueError("not a stored mark model: values that are not finite")
    return MarkModel(d, p, o)


def on_mark(features: SiftFeatures, mark: MarkModel, shape: tuple[int, ...]) -> np.ndarray:
    """(N,) bool: the keypoints of `features` (an image of `shape`) that lie on `mark`; none
    where what it would claim exceeds `MAX_SHARE`."""
    n = len(features)
    if not n or not len(mark):
        return np.zeros(n, bool)
    q = features.matching
    d2 = (q * q).sum(1)[:, None] + (mark.descriptors * mark.descriptors).sum(1)[None] - 2 * q @ mark.descriptors.T
    nearest = d2.argmin(1)
    dist = np.sqrt(np.maximum(d2[np.arange(n), nearest], 0))
    return _claim(features, mark, nearest, dist, shape)


def _claim(features: SiftFeatures, mark: MarkModel, nearest: np.ndarray, dist: np.ndarray,
           shape: tuple[int, ...]) -> np.ndarray:
    """`on_mark` given each keypoint's nearest descriptor of the mark and its distance (only
    those under `PLACE_DISTANCE` are read: `MarkIndex` leaves the rest at infinity)."""
    n = len(features)
    found = dist < MARK_DISTANCE
    share = float(found.mean())
    idx = np.flatnonzero(dist < PLACE_DISTANCE)
    if len(idx) >= MIN_PLACED:
        m, inl = cv2.estimateAffinePartial2D(mark.points[nearest[idx]], features.points[idx], method=cv2.RANSAC,
                                             ransacReprojThreshold=PLACE_TOLERANCE)
        height = float(np.hypot(m[0, 0], m[1, 0])) if m is not None else 0.0  # the placed mark's height, px
        if inl is not None and int(inl.sum()) >= MIN_PLACED and height >= MIN_HEIGHT:
            poly = (mark.outline @ m[:, :2].T + m[:, 2]).astype(np.float32)
            # a placement larger than the frame is not a mark on it (e.g. a photo enrolled as a "mark")
            share = abs(float(cv2.contourArea(poly))) / float(shape[0] * shape[1]) if height <= max(shape[:2]) else 1.0
            inside = np.array([cv2.pointPolygonTest(poly, (float(x), float(y)), True) >= -MARGIN
                               for x, y in features.points], bool)
            # and near where the mark was seen: text in the mark's font elsewhere can place a long
            # credit line whose outline would cross the photo itself
            placed = features.points[idx[inl.ravel().astype(bool)]]
            gap = np.sqrt(((features.points[:, None] - placed[None]) ** 2).sum(-1)).min(1)
            found |= inside & (gap <= NEAR * height)
    return found if share <= MAX_SHARE else np.zeros(n, bool)


_NO_DESCRIPTORS = np.zeros((0, 128), np.float32)

# Up to this many descriptors in all (about ten marks) each mark's are searched exactly; above it
# an IVF index finds every keypoint's neighbours at once, so that the cost of a view grows slowly
# with the marks enrolled (BENCHMARKS.md, "Many publishers' marks": a view 38 -> 28 ms at 16 marks,
# 168 -> 44 at 64, 713 -> 138 at 256, the same keypoints taken out).
EXACT_MAX = 32768
LIST_SIZE = 256  # descriptors per IVF list ...
MAX_LISTS = 1024  # ... up to this many lists (more lists: a slower build and, at NPROBE, lower recall)
NPROBE = 16  # lists searched per keypoint: where the keypoints found equal the exact search's
TRAIN_PER_LIST = 64  # k-means samples per list: the build stays seconds at hundreds of marks


class MarkIndex:
    """Every enrolled mark's descriptors, searched together. Up to `EXACT_MAX` descriptors each
    mark's nearest are found exactly (as `on_mark`); above it a view's keypoints are searched once
    in an IVF index for their neighbours within `PLACE_DISTANCE` of any mark. Either way only the
    marks that some keypoint comes near are then placed (`_claim`)."""

    def __init__(self, marks: Sequence[MarkModel]) -> None:
        self.marks = list(marks)
        sizes = [len(m) for m in self.marks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.owner = np.repeat(np.arange(len(self.marks)), sizes)
        self.size = int(self.offsets[-1])  # descriptors in all
        self._norms: list[np.ndarray] = []  # the exact search's
        self._ivf = None
        if self.size <= EXACT_MAX:
            self._norms = [(m.descriptors * m.descriptors).sum(1) for m in self.marks]
            return
        descriptors = np.concatenate([m.descriptors for m in self.marks]).astype(np.float32)
        import faiss  # here, not at the top: the GPU training machine has no FAISS

        nlist = min(MAX_LISTS, max(16, self.size // LIST_SIZE))
        # float16 codes of each descriptor's offset from its list's centroid: half the memory of
        # float32; on marks' RootSIFT a component moves by 3e-6 on average, 1.2e-4 at most (coding
        # the descriptors themselves changed which of a mark's near-identical renderings was nearest)
        ivf = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatL2(128), 128, nlist, faiss.ScalarQuantizer.QT_fp16,
                                            faiss.METRIC_L2)
        ivf.cp.seed = 0
        ivf.cp.max_points_per_centroid = TRAIN_PER_LIST
        ivf.train(descriptors)
        ivf.add(descriptors)
        ivf.nprobe = min(NPROBE, nlist)
        ivf.make_direct_map()  # for `model`: 8 bytes a descriptor
        self._ivf = ivf
        # the index's copy is the only one kept (~0.9 MB a mark): the marks keep their places
        self.marks = [dataclasses.replace(m, descriptors=_NO_DESCRIPTORS) for m in self.marks]

    def model(self, i: int) -> MarkModel:
        """Mark `i` whole, its descriptors included: what a rebuilt index is made of."""
        mark = self.marks[i]
        if self._ivf is None:
            return mark
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return dataclasses.replace(mark, descriptors=self._ivf.reconstruct_n(a, b - a))

    def __len__(self) -> int:
        return len(self.marks)

    def _nearest(self, q: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(mark, each keypoint's nearest descriptor of it, the distance) for the marks that some
        keypoint comes within `PLACE_DISTANCE` of; the distance is infinite where none does in the
        index's search (the exact search gives every keypoint's)."""
        r2 = PLACE_DISTANCE ** 2
        n = len(q)
        if self._ivf is None:
            qn = (q * q).sum(1)[:, None]
            for i, mark in enumerate(self.marks):  # mark by mark: each block stays in cache
                d2 = q @ mark.descriptors.T  # (N, M_i)
                d2 *= -2
                d2 += self._norms[i][None]
                d2 += qn
                nearest = d2.argmin(1)
                best = d2[np.arange(n), nearest]
                if best.min() < r2:
                    yield i, nearest, np.sqrt(np.maximum(best, 0))
            return
        lims, d2, desc = self._ivf.range_search(q, r2)
        if not len(desc):
            return
        kp = np.repeat(np.arange(n), np.diff(lims).astype(np.int64))
        owner = self.owner[desc]
        order = np.lexsort((d2, kp, owner))  # by mark, then keypoint, nearest first
        kp, desc, d2, owner = kp[order], desc[order], d2[order], owner[order]
        first = np.r_[True, (owner[1:] != owner[:-1]) | (kp[1:] != kp[:-1])]
        kp, desc, d2, owner = kp[first], desc[first].astype(np.int64), d2[first], owner[first]
        bounds = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1], True])
        for a, b in itertools.pairwise(bounds):
            i = int(owner[a])
            nearest = np.zeros(n, np.int64)
            dist = np.full(n, np.inf)
            nearest[kp[a:b]] = desc[a:b] - self.offsets[i]
            dist[kp[a:b]] = np.sqrt(np.maximum(d2[a:b], 0))
            yield i, nearest, dist

    def on(self, features: SiftFeatures, shape: tuple[int, ...]) -> dict[int, np.ndarray]:
        """{mark's position in `marks`: (N,) bool of the keypoints on it}, for the marks found."""
        if not len(features) or not self.size:
            return {}
        out: dict[int, np.ndarray] = {}
        for i, nearest, dist in self._nearest(np.ascontiguousarray(features.matching, np.float32)):
            on = _claim(features, self.marks[i], nearest, dist, shape)
            if on.any():
                out[i] = on
        return out


def without(features: SiftFeatures, drop: np.ndarray) -> SiftFeatures:
    """`features` less the keypoints `drop` marks."""
    keep = ~drop
    return SiftFeatures(features.points[keep], features.descriptors[keep])


# -- finding the overlays a publisher's photos share, for an operator to enrol ----------------------
# RootSIFT distance between two photos' keypoints on the same overlay: looser than MARK_DISTANCE, as
# a semi-opaque mark's descriptors change with what lies under it (at 0.25 the bench's mark on 300
# real photos recurred nowhere); with the place and the share below, 300 unmarked test photos give
# no suggestion (BENCHMARKS.md, "Finding a publisher's marks").
FIND_DISTANCE = 0.35
FIND_PLACE = 0.02  # how far (share of the frame, or of its height or width) a keypoint may sit from photo to photo
FIND_MIN_SHARE = 0.03  # of the photos looked at that must hold a keypoint before it counts as recurring
FIND_MIN_KEYPOINTS = 12  # recurring keypoints in one region before it is suggested
FIND_CELL = 0.05  # grid (share of the frame) that joins recurring keypoints into regions, up to two cells apart


# Where a publisher places its overlay: at the same share of the frame, or at the same place from
# the centre or from a corner in units of the photo's height (a mark sized to the height) or of its
# width (a mark sized to the width). Photos of other shapes agree only in the frame their publisher
# used. (kind, anchor x, anchor y as shares)
_ANCHORS = ((0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
FIND_FRAMES = (("share", 0.0, 0.0), *(("height", x, y) for x, y in _ANCHORS), *(("width", x, y) for x, y in _ANCHORS))


def _units(kind: str, w: int, h: int) -> tuple[int, int]:
    return {"share": (w, h), "height": (h, h), "width": (w, w)}[kind]


@dataclass(frozen=True)
class Recurring:
    """A region where many of a publisher's photos show the same local features at the same place:
    an overlay (a watermark, a credit line, a logo), or a frame or template they share."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in `frame`'s coordinates
    frame: tuple[str, float, float]  # one of FIND_FRAMES
    photos: list[int]  # positions (in the views given) of the photos that show it
    keypoints: int
    image: Image.Image  # the region's per-pixel median over those photos: the overlay over a blur of backgrounds


def _in_frame(points: np.ndarray, w: int, h: int, frame: tuple[str, float, float]) -> np.ndarray:
    kind, ax, ay = frame
    return (points - np.float32([ax * w, ay * h])) / np.float32(_units(kind, w, h))


def _pixel_box(box: tuple[float, float, float, float], w: int, h: int,
               frame: tuple[str, float, float]) -> tuple[int, int, int, int]:
    kind, ax, ay = frame
    ux, uy = _units(kind, w, h)
    x0, x1 = (int(np.clip(v * ux + ax * w, 0, w)) for v in (box[0], box[2]))
    y0, y1 = (int(np.clip(v * uy + ay * h, 0, h)) for v in (box[1], box[3]))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def recurring_overlays(views: Sequence[tuple[np.ndarray, SiftFeatures]]) -> list[Recurring]:
    """Regions whose keypoints recur, by descriptor and by place (in one of FIND_FRAMES), over at
    least FIND_MIN_SHARE of `views` ((h, w, 3) uint8 image, its SIFT), most photos first; a region
    found in several frames is given once, in the frame where the most photos show it."""
    n = len(views)
    if n < 3 or not sum(len(f) for _, f in views):
        return []
    owner = np.concatenate([np.full(len(f), i) for i, (_, f) in enumerate(views)])
    alld = np.concatenate([f.matching.astype(np.float32) for _, f in views])
    norms = (alld * alld).sum(1)
    found: list[tuple[Recurring, set[int]]] = []
    for frame in FIND_FRAMES:
        pos = np.concatenate([_in_frame(f.points, img.shape[1], img.shape[0], frame) for img, f in views])
        for members in _recurring_regions(pos, alld, norms, owner, n):
            p = pos[members]
            x0, y0 = p.min(0) - FIND_PLACE
            x1, y1 = p.max(0) + FIND_PLACE
            box = (float(x0), float(y0), float(x1), float(y1))
            photos = sorted({int(owner[k]) for k in members})
            crops = [Image.fromarray(views[i][0]).crop(_pixel_box(box, views[i][0].shape[1], views[i][0].shape[0], frame))
                     for i in photos]
            found.append((Recurring(box, frame, photos, len(members), _median(crops)), set(members)))
    found.sort(key=lambda rs: (-len(rs[0].photos), -rs[0].keypoints))
    kept: list[tuple[Recurring, set[int]]] = []
    for r, members in found:
        if all(len(members & other) < 0.5 * min(len(members), len(other)) for _, other in kept):
            kept.append((r, members))
    return [r for r, _ in kept]


def _recurring_regions(pos: np.ndarray, alld: np.ndarray, norms: np.ndarray, owner: np.ndarray, n: int) -> list[list[int]]:
    """Keypoint indices of each region of recurring keypoints, for positions `pos` (N, 2)."""
    grid = np.floor(pos / FIND_PLACE).astype(np.int64)
    cells: dict[tuple[int, int], list[int]] = {}
    for k, (gx, gy) in enumerate(grid.tolist()):
        cells.setdefault((gx, gy), []).append(k)
    need = max(3, int(np.ceil(FIND_MIN_SHARE * n)))
    support = np.zeros(len(owner), np.int64)
    for (gx, gy), members in cells.items():
        b = np.array([k for dx in (-1, 0, 1) for dy in (-1, 0, 1) for k in cells.get((gx + dx, gy + dy), ())])
        if len(np.unique(owner[b])) < need:  # too few photos nearby for any keypoint here to recur
            continue
        a = np.array(members)
        d2 = alld[a] @ alld[b].T  # (|a|, |b|), made the squared distance in place: the matrices are the cost
        d2 *= -2
        d2 += norms[a][:, None]
        d2 += norms[b][None]
        close = d2 < FIND_DISTANCE**2
        for axis in (0, 1):
            off = pos[a, axis][:, None] - pos[b, axis][None]
            close &= np.abs(off, out=off) <= FIND_PLACE
        close &= owner[a][:, None] != owner[b][None]
        some = np.flatnonzero(close.any(1))  # few keypoints have any: count the distinct other photos of those
        rows, cols = np.nonzero(close[some])
        seen = np.unique(rows.astype(np.int64) * n + owner[b][cols])
        support[a[some]] = np.bincount(seen // n, minlength=len(some))
    recurring = np.flatnonzero(support + 1 >= need)
    coarse: dict[tuple[int, int], list[int]] = {}
    for k in recurring:
        cx, cy = (int(v) for v in np.floor(pos[k] / FIND_CELL))
        coarse.setdefault((cx, cy), []).append(int(k))
    seen: set[tuple[int, int]] = set()
    regions: list[list[int]] = []
    for start in coarse:
        if start in seen:
            continue
        stack, members = [start], []
        seen.add(start)
        while stack:
            cx, cy = stack.pop()
            members += coarse[(cx, cy)]
            for nb in ((cx + dx, cy + dy) for dx in (-2, -1, 0, 1, 2) for dy in (-2, -1, 0, 1, 2)):
                if nb in coarse and nb not in seen:
                    seen.add(nb)
                    stack.append(nb)
        if len(members) >= FIND_MIN_KEYPOINTS:
            regions.append(members)
    return regions


def _median(crops: Sequence[Image.Image]) -> Image.Image:
    size = (int(np.median([c.width for c in crops])), int(np.median([c.height for c in crops])))
    stack = np.stack([np.asarray(c.resize(size, Image.BICUBIC), np.float32) for c in crops])
    return Image.fromarray(np.median(stack, axis=0).round().astype(np.uint8))
