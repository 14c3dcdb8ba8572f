"""Stage 3 localisation below the 7x7 grid: ChangeNet says *where roughly*, the aligned
residual says *which pixels*.

A 7x7 cell is 1/49 of the frame, so the coarse map cannot outline a copy-moved patch of
0.3-3 % of it (issue 17: IoU 0.17 on small copy-moves, below plain SSD). The query aligned
into the original's working frame (`pairs.aligned_frame`: up to 256 px on the long side, about
twice as fine as the networks' 112-px square) differs from the original pixel by pixel; alone
that difference also lights up re-compression and grading. Here it is made a
*significance* map and gated by the coarse map:

* colour: a per-channel linear fit query ~ a * original + b over the pixels ChangeNet calls
  unchanged (coarse < BACKGROUND), so a global grade does not count as an edit;
* noise floor: the residual is divided by NOISE_FACTOR x its median over those same
  pixels (+ NOISE_FLOOR grey levels), so JPEG and resampling noise stay below 1;
* fusion: for a small flagged area (< SMALL_AREA of the frame) coarse x significance (the
  residual picks the pixels inside the flagged cells); for a large one their geometric
  mean (the coarse map keeps the extent where pasted content happens to resemble the
  original's colours).

Constants were chosen on copy-moves and composites of `train` photos (leave-family-out
families, never COVERAGE or MICC-F220); the measurements are in BENCHMARKS.md ("Heatmaps
below the 7x7 grid", then "Stage 3's pixel map at the working frame": moving from the
112-px pair to the working frame, NOISE_FACTOR 5 -> 6).

`recoloured` reads the same aligned pair for a different edit: an object recoloured on its own
(a hue turned, a tint, a colour splash), which changes no texture and which ChangeNet mostly
calls benign. Its constants were chosen on `train` photos with generators written apart from
the held-out families (`scripts/calibrate_recolour.py`; BENCHMARKS.md, "Recoloured regions").
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import cv2
import numpy as np

from verifier.simprov.pairs import AlignedPair

__all__ = ["METHOD", "Recoloured", "recoloured", "refine_heat", "significance"]

METHOD = "7x7 ChangeNet map refined by the colour-corrected aligned residual"
BACKGROUND = 0.2
NOISE_FACTOR = 6.0
NOISE_FLOOR = 2.0
SMALL_AREA = 0.1
AREA_LEVEL = 0.35  # = change.OUTLINE_THRESHOLD: the coarse outline whose area picks the fusion
BLUR_SIGMA = 1.5
MIN_FIT_SHARE = 0.04  # of the frame: fewer background pixels than this, and the fit uses all covered ones


def _colour_matched(query: np.ndarray, original: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """`original` mapped onto `query`'s colours by a per-channel least-squares line over `fit`
    (quantile matching was tried: worse under saturation changes and with edits in `fit`)."""
    out = np.empty_like(original)
    for k in range(3):
        x, y = original[..., k][fit], query[..., k][fit]
        a, b = 1.0, 0.0
        if x.size > 10 and float(x.var()) > 1e-3:
            a = float(((x - x.mean()) * (y - y.mean())).mean() / x.var())
            b = float(y.mean() - a * x.mean())
        out[..., k] = a * original[..., k] + b
    return out


def significance(pair: AlignedPair, background: np.ndarray | None = None, noise_factor: float = NOISE_FACTOR) -> np.ndarray:
    """(h, w) in [0, 1]: how far each aligned query pixel departs from the original, in
    units of the pair's own noise (1 = clearly edited); 0 outside the query's footprint."""
    valid = pair.valid.astype(bool)
    fit = valid & background if background is not None else valid
    if fit.sum() < MIN_FIT_SHARE * fit.size:
        fit = valid
    q = pair.query.astype(np.float32)
    c = _colour_matched(q, pair.candidate.astype(np.float32), fit)
    diff = cv2.GaussianBlur(q, (0, 0), BLUR_SIGMA) - cv2.GaussianBlur(c, (0, 0), BLUR_SIGMA)
    r = np.sqrt((diff**2).sum(-1)) * valid
    noise = float(np.median(r[fit])) if fit.any() else 0.0
    sig = np.clip(r / (noise_factor * noise + NOISE_FLOOR), 0.0, 1.0)
    return cv2.GaussianBlur(sig.astype(np.float32), (0, 0), BLUR_SIGMA)


def refine_heat(grid: np.ndarray, pair: AlignedPair, noise_factor: float = NOISE_FACTOR) -> np.ndarray:
    """7x7 map in [0, 1] (max 1), or a coarse map already over the frame (h, w) -> (h, w) map
    over the pair's frame, max-normalised."""
    h, w = pair.query.shape[:2]
    coarse = grid.astype(np.float32) if grid.shape == (h, w) else cv2.resize(grid.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    coarse = np.clip(coarse, 0.0, 1.0)
    sig = significance(pair, coarse < BACKGROUND, noise_factor)
    small = float((coarse >= AREA_LEVEL).mean()) < SMALL_AREA
    fine = coarse * sig if small else np.sqrt(coarse * sig)
    peak = float(fine.max())
    # nothing departs from the original where ChangeNet points: keep its coarse map
    return fine / peak if peak > 1e-6 else coarse


CHROMA_BLUR = 2.0  # px at the working frame: JPEG's chroma blocks and a pixel of misalignment at colour edges
CHROMA_LEVEL = 8.0  # Lab a*b* units after the global map: a region recoloured
CHROMA_KEEP = 0.8  # the map is fitted again on this share of the covered pixels that it explained best
CHROMA_DEGREE = 3  # the global map: a polynomial of this degree in the original's R, G, B
CHROMA_CLOSE = 9  # px: a hue turn leaves an object's grey parts unchanged, and its coloured pieces are joined across them
CHROMA_FIT_PIXELS = 16384  # the map is fitted on at most this many of the covered pixels
TEXTURE_CORR = 0.5  # a recoloured region's lightness correlates with the original's at least this much
TEXTURE_FLAT = 4.0  # or the original is this flat there (std of 8-bit Lab L), and the query about as flat
TEXTURE_TRIES = 5  # the largest regions tried
REST_FAR_MAX = 0.09  # the rest of the covered frame may depart by the level on at most this share of its pixels: a region
# stands out only in a copy that is otherwise faithful (a copy filtered, posterised or moire'd throughout departs everywhere)
EDGE_BAND = 0.04  # of the frame's long side: a band inside the covered area's edge where nothing counts (a border or
# frame drawn over a copy's edge is a flat colour there, and so may be the original's blurred background)


def _colour_terms(rgb: np.ndarray, degree: int) -> np.ndarray:
    """(n, 3) colours in [0, 1] -> (n, t) monomials of R, G, B up to `degree`."""
    terms = [np.ones(len(rgb), np.float32)]
    for d in range(1, degree + 1):
        terms += [np.prod(rgb[:, list(c)], axis=1) for c in combinations_with_replacement(range(3), d)]
    return np.stack(terms, 1)


def _global_map(query: np.ndarray, original: np.ndarray, fit: np.ndarray, degree: int) -> np.ndarray:
    """`original` (h, w, 3) through the polynomial colour map least-squares fitted over `fit`
    to `query`'s colours, then fitted again on the CHROMA_KEEP of those pixels it explains best
    (a recoloured minority does not pull the map). Normal equations on at most CHROMA_FIT_PIXELS
    evenly strided pixels: numpy's lstsq on every pixel of the frame took ~55 ms a fit."""
    rgb = original.reshape(-1, 3).astype(np.float32) / 255
    idx = np.flatnonzero(fit.reshape(-1))
    idx = idx[:: max(1, len(idx) // CHROMA_FIT_PIXELS)]
    xs, ys = _colour_terms(rgb[idx], degree).astype(np.float64), query.reshape(-1, 3)[idx].astype(np.float64)
    for first in (True, False):
        gram = xs.T @ xs
        m = np.linalg.solve(gram + 1e-6 * np.trace(gram) / len(gram) * np.eye(len(gram)), xs.T @ ys)
        if first:
            err = np.abs(xs @ m - ys).sum(1)
            keep = err <= np.quantile(err, CHROMA_KEEP)
            xs, ys = xs[keep], ys[keep]
    mapped = _colour_terms(rgb, degree) @ m.astype(np.float32)
    return np.clip(mapped, 0, 255).round().astype(np.uint8).reshape(original.shape)


@dataclass(frozen=True)
class Recoloured:
    """The largest connected region of the covered frame whose colour (Lab a*b*) departs from
    the original's after one global colour map: `share` of the covered pixels, `region` (h, w)."""

    share: float
    region: np.ndarray  # (h, w) bool


def recoloured(pair: AlignedPair, level: float = CHROMA_LEVEL, degree: int = CHROMA_DEGREE, rest_far_max: float = REST_FAR_MAX) -> Recoloured:
    """An object recoloured (a hue turned, a region tinted or made grey) changes no texture,
    and ChangeNet, trained on pastes and on global grading as benign, often misses it. One
    global colour map (a polynomial in R, G, B, fitted robustly) undoes a grade of the whole
    frame, curves and split toning included; what it does not explain, in chroma, as one
    connected region away from the covered area's edge (EDGE_BAND), with its lightness kept
    (`_texture_kept`), in a copy whose rest the map does explain (REST_FAR_MAX), is a local
    recolouring."""
    valid = pair.valid.astype(bool)
    h, w = valid.shape
    if valid.sum() < 64:
        return Recoloured(0.0, np.zeros((h, w), bool))
    q = cv2.GaussianBlur(pair.query, (0, 0), CHROMA_BLUR)
    c = cv2.GaussianBlur(_global_map(pair.query, pair.candidate, valid, degree), (0, 0), CHROMA_BLUR)
    lab_q = cv2.cvtColor(q, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab_c = cv2.cvtColor(c, cv2.COLOR_RGB2LAB).astype(np.float32)
    band = 2 * round(EDGE_BAND * max(h, w)) + 1
    inner = cv2.erode(valid.astype(np.uint8), np.ones((band, band), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    departs = np.hypot(lab_q[..., 1] - lab_c[..., 1], lab_q[..., 2] - lab_c[..., 2]) >= level
    far = departs & inner
    far = cv2.morphologyEx(far.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    far = cv2.morphologyEx(far, cv2.MORPH_CLOSE, np.ones((CHROMA_CLOSE, CHROMA_CLOSE), np.uint8))  # one object's pieces
    _, comp, stats, _ = cv2.connectedComponentsWithStats(far, connectivity=8)
    lum_q = cv2.cvtColor(pair.query, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    lum_c = cv2.cvtColor(pair.candidate, cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32)
    for k in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:TEXTURE_TRIES]:
        region = comp == k
        rest = valid & ~(cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0)
        if _texture_kept(lum_q[region], lum_c[region]) and rest.any() and float(departs[rest].mean()) <= rest_far_max:
            return Recoloured(float(stats[k, cv2.CC_STAT_AREA]) / float(valid.sum()), region)
    return Recoloured(0.0, np.zeros((h, w), bool))


def _texture_kept(q: np.ndarray, c: np.ndarray) -> bool:
    """Whether a region's lightness keeps the original's structure (a recolouring) rather than
    replacing it (a flat border or a paste over textured content): correlated, or flat in both."""
    sq, sc = float(q.std()), float(c.std())
    if sc < TEXTURE_FLAT:
        return sq < TEXTURE_FLAT * 2
    return sq > 1e-3 and float(np.corrcoef(q, c)[0, 1]) >= TEXTURE_CORR
