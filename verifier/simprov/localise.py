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
"""

from __future__ import annotations

import cv2
import numpy as np

from verifier.simprov.pairs import AlignedPair

__all__ = ["METHOD", "refine_heat", "significance"]

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
