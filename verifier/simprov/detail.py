"""Stage 3 at the scale the query shows: a crop of a large original judged against that part of it.

An original's working view is its whole frame at WORK_SIDE px. A query that shows a part of a
large original (a detail cropped from a 12 MP wire photo, posted at 1080 px) covers a box of
that view a few dozen pixels wide: the query is squeezed into it (bilinear, aliased) while the
view was reduced with a proper filter, so their fine textures differ and ChangeNet called plain
crops of real camera photos manipulated (p 0.52-0.78 on three of six; BENCHMARKS.md, "Crops of
a large original"). The original holds far more pixels in that box than its view: the box,
with a margin, is cut from the image the view came from (ingest's `work_max_side` frame, already
decoded for stage 3) and made a view of its own, the query is aligned to it, and the pair is
judged there. Every result is then said in the whole original's frame (`in_whole_frame`), so
the report, the heatmap and the compare view read as before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image

from verifier.simprov.change import ChangeResult
from verifier.simprov.nn.pen import GRID
from verifier.simprov.pairs import AlignedPair, View

# The query covers under this share of the original's working frame ...
DETAIL_SHARE = 0.5
# ... and the view of the box would hold at least this many times the working view's pixels
# along a side: below it the look adds nothing the working view has not.
DETAIL_GAIN = 1.5
# Margin around the query's footprint, a share of the box's side on each side: a fit from the
# working view places the box within a few pixels of it.
DETAIL_MARGIN = 0.1


@dataclass(frozen=True)
class Detail:
    """The part of an original a detail view is cut from."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the pixels of the image the working view came from
    full_size: tuple[int, int]  # (W, H) of that image (`View.full_size`)

    @property
    def share(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0) / float(self.full_size[0] * self.full_size[1])

    def view(self, image: Image.Image) -> View:
        """The detail view: the box of `image` (the image the working view came from)."""
        if image.size != self.full_size:
            raise ValueError("the detail is cut from the image the working view came from")
        return View.of(image.crop(self.box))

    def holds(self, pair: AlignedPair, view: View, tolerance: float = 0.02) -> bool:
        """Whether the query, aligned to the detail view by `pair` (a fit that holds), lies inside it
        where the box was cut from the image (`tolerance`: a share of the side): a query reaching
        past the cut would be judged as content the original lacks."""
        if not pair.alignment.global_ok:
            return False
        xy = _footprint(pair)
        if xy is None:
            return False
        vh, vw = view.image.shape[:2]
        x0, y0, x1, y1 = self.box
        fw, fh = self.full_size
        tx, ty = tolerance * vw, tolerance * vh
        return not ((x0 > 0 and xy[:, 0].min() < -tx) or (y0 > 0 and xy[:, 1].min() < -ty)
                    or (x1 < fw and xy[:, 0].max() > vw + tx) or (y1 < fh and xy[:, 1].max() > vh + ty))


def _footprint(pair: AlignedPair) -> np.ndarray | None:
    """(4, 2) the query's corners in the candidate's working frame; None through infinity."""
    qw, qh = pair.alignment.query_size
    try:
        to_candidate = np.linalg.inv(pair.alignment.homography)
    except np.linalg.LinAlgError:
        return None
    corners = np.array([[0, 0, 1], [qw, 0, 1], [qw, qh, 1], [0, qh, 1]], np.float64) @ to_candidate.T
    if (corners[:, 2] <= 1e-9).any():
        return None
    return corners[:, :2] / corners[:, 2:]


def detail_of(pair: AlignedPair, candidate: View, share: float = DETAIL_SHARE, gain: float = DETAIL_GAIN,
              margin: float = DETAIL_MARGIN) -> Detail | None:
    """The box to look at more closely when the query (aligned by `pair`, a fit that holds) covers
    under `share` of the candidate's working frame and its original has `gain` times the pixels
    there; None otherwise."""
    if not pair.alignment.global_ok:
        return None
    ch, cw = candidate.image.shape[:2]
    xy = _footprint(pair)
    if xy is None:
        return None
    x0, y0 = np.clip(xy.min(0), 0, [cw, ch])
    x1, y1 = np.clip(xy.max(0), 0, [cw, ch])
    if (x1 - x0) < 8 or (y1 - y0) < 8 or (x1 - x0) * (y1 - y0) >= share * cw * ch:
        return None
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    x0, y0, x1, y1 = max(0.0, x0 - mx), max(0.0, y0 - my), min(float(cw), x1 + mx), min(float(ch), y1 + my)
    fw, fh = candidate.full_size
    sx, sy = fw / cw, fh / ch
    box = (int(np.floor(x0 * sx)), int(np.floor(y0 * sy)), int(np.ceil(x1 * sx)), int(np.ceil(y1 * sy)))
    box = (max(0, box[0]), max(0, box[1]), min(fw, box[2]), min(fh, box[3]))
    long_box = max(x1 - x0, y1 - y0)  # working pixels
    long_detail = min(max(box[2] - box[0], box[3] - box[1]), max(cw, ch))  # what its own view would hold
    if long_detail < gain * long_box:
        return None
    return Detail(box, (fw, fh))


def in_whole_frame(result: ChangeResult, detail: Detail, frame_shape: tuple[int, int]) -> ChangeResult:
    """A stage-3 result judged on a detail view, said in the whole original's frame:
    `frame_shape` (h, w) is the original's working view. The query's heatmap, the outside and the
    colour measures are the query's and stay; the 7x7 grids are placed at the box; the alignment
    maps the whole image's pixels; the share shown is of the whole frame. A local warp keeps the
    decision made at the query's scale: its displacements and threshold are rescaled together."""
    x0, y0, x1, y1 = detail.box
    fw, fh = detail.full_size
    h, w = frame_shape
    box = (x0 * w / fw, y0 * h / fh, x1 * w / fw, y1 * h / fh)  # in the working frame

    grid = _placed(result.grid, box, (h, w))
    peak = float(grid.max())
    grid = grid / peak if peak > 1e-6 else grid
    to_query = None
    if result.to_query is not None:
        to_query = result.to_query @ np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        to_query = to_query / to_query[2, 2] if abs(to_query[2, 2]) > 1e-12 else to_query
    moved, threshold = result.moved, result.warp_threshold
    if moved is not None:
        k = max(box[2] - box[0], box[3] - box[1]) / max(h, w)  # a share of the box's long side -> of the frame's
        moved, threshold = _max_placed(moved, box, (h, w)) * k, threshold * k
    shown = None if result.original_shown is None else result.original_shown * detail.share
    return replace(result, grid=grid.astype(np.float32), to_query=to_query, moved=moved, warp_threshold=threshold,
                   original_frame=detail.full_size, original_shown=shown)


def _placed(cells: np.ndarray, box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """(GRID, GRID) cells over `box` (working pixels) -> the GRID x GRID cells of the whole frame."""
    h, w = shape
    x0, y0, x1, y1 = (round(v) for v in box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    out = np.zeros((h, w), np.float32)
    out[y0:y1, x0:x1] = np.clip(cv2.resize(cells.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC), 0, None)
    return cv2.resize(out, (GRID, GRID), interpolation=cv2.INTER_AREA)


def _max_placed(cells: np.ndarray, box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """Each of `cells` (over `box`) into the whole frame's cell under its centre, the largest where
    several fall in one: the largest value, which decides, is kept."""
    h, w = shape
    n_y, n_x = cells.shape
    x0, y0, x1, y1 = box
    out = np.zeros_like(cells, dtype=np.float32)
    for i in range(n_y):
        for j in range(n_x):
            cx = x0 + (j + 0.5) * (x1 - x0) / n_x
            cy = y0 + (i + 0.5) * (y1 - y0) / n_y
            gi, gj = min(n_y - 1, int(cy * n_y / h)), min(n_x - 1, int(cx * n_x / w))
            out[gi, gj] = max(out[gi, gj], float(cells[i, j]))
    return out
