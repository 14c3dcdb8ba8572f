"""Descreening, measured and **not used by the service** (BENCHMARKS.md, "Tried, not kept: a descreen
of printed queries"): kept for the calibration and the probes that measured it, and for whoever
tries prints again.

A photo printed in a newspaper or a magazine and scanned or photographed is made of halftone dots,
a lattice of full-contrast dots a few pixels apart, which the models and SIFT were never shown.
`screen_period` finds the lattice: in small patches of the image at its own resolution, a halftone
screen shows as two strong, sharp peaks of the spectrum at the same radius and at right angles (a
2-D lattice), where a natural image's spectrum falls off smoothly, a striped texture (a fence, a
shirt) gives one direction only and a straight edge gives a line through the origin, not a point.
Peaks on the axes are ignored: JPEG's 8x8 blocks and nearest-neighbour enlargements put theirs
there. `descreen` blurs the image by a fraction of the period. Parameters chosen on printed copies
of train photos from `training.prints` (a generator written apart from the held-out `newsprint`
family), `scripts/calibrate_descreen.py`. With it before every stage (commit 2137738), printed
copies of train photos were found more often and the held-out `newsprint` family less often.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFilter

PATCH = 128  # px, analysed at the query's own resolution (periods 2.3-12 px are 10-55 bins out)
MAX_PATCHES = 48
MIN_PERIOD, MAX_PERIOD = 2.3, 12.0
ISOLATION = 8.0  # a screen peak over the spectrum along its direction at 0.7 and 1.3 x its radius
AXIS_DEG = 4.0  # peaks this close to the axes are JPEG blocks or pixel repetition, not a screen
_WINDOW = np.outer(np.hanning(PATCH), np.hanning(PATCH)).astype(np.float32)


@dataclass(frozen=True)
class DescreenParams:
    peak_ratio: float = 30.0  # a screen peak's power over its ring's median
    min_share: float = 0.25  # of the textured patches, that show the lattice
    min_patches: int = 2
    sigma: float = 0.4  # blur, in periods


def _grid() -> tuple[np.ndarray, np.ndarray]:
    f = np.fft.fftfreq(PATCH)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    radius = np.hypot(fx, fy) * PATCH  # bins
    angle = np.degrees(np.arctan2(fy, fx)) % 180.0
    return radius, angle


_RADIUS, _ANGLE = _grid()
_BAND = (_RADIUS >= PATCH / MAX_PERIOD) & (_RADIUS <= PATCH / MIN_PERIOD)
_OFF_AXIS = np.minimum(np.minimum(_ANGLE, np.abs(_ANGLE - 90.0)), 180.0 - _ANGLE) > AXIS_DEG
_CANDIDATES = _BAND & _OFF_AXIS & (_ANGLE < 180.0)


def _patches(grey: np.ndarray) -> list[np.ndarray]:
    """Up to MAX_PATCHES non-overlapping patches on an even grid over the image."""
    h, w = grey.shape
    ny, nx = h // PATCH, w // PATCH
    if ny == 0 or nx == 0:
        return []
    ys = np.linspace(0, h - PATCH, ny).round().astype(int)
    xs = np.linspace(0, w - PATCH, nx).round().astype(int)
    cells = [(y, x) for y in ys for x in xs]
    if len(cells) > MAX_PATCHES:
        cells = [cells[i] for i in np.linspace(0, len(cells) - 1, MAX_PATCHES).round().astype(int)]
    return [grey[y : y + PATCH, x : x + PATCH] for y, x in cells]


def _isolated(power: np.ndarray, at: int, r: float) -> bool:
    """A screen's peak is a point: along its own direction, at 0.7 and 1.3 times its radius, the
    spectrum is far below it. A straight edge's spectrum is a line through the origin instead,
    strong at every radius (buildings, shelves, a table's rim)."""
    fy, fx = np.unravel_index(at, power.shape)
    fy = fy - PATCH if fy >= PATCH // 2 else fy
    fx = fx - PATCH if fx >= PATCH // 2 else fx
    peak = power.flat[at]
    for scale in (0.7, 1.3):
        y, x = round(fy * scale), round(fx * scale)
        near = power[np.ix_([(y + d) % PATCH for d in (-1, 0, 1)], [(x + d) % PATCH for d in (-1, 0, 1)])]
        if near.max() * ISOLATION > peak:
            return False
    return True


def _power(patch: np.ndarray) -> np.ndarray:
    """The windowed patch's power spectrum (OpenCV's DFT: ~8x numpy's on float32 patches)."""
    z = cv2.dft(np.ascontiguousarray((patch - patch.mean()) * _WINDOW), flags=cv2.DFT_COMPLEX_OUTPUT)
    return z[..., 0] ** 2 + z[..., 1] ** 2


def _lattice(power: np.ndarray, peak_ratio: float) -> float | None:
    """The screen period in px when this patch's power spectrum shows a 2-D lattice, else None."""
    cand = power * _CANDIDATES
    first = int(np.argmax(cand))
    r1, a1 = _RADIUS.flat[first], _ANGLE.flat[first]
    ring = (np.abs(_RADIUS - r1) <= 1.0) & _BAND
    level = float(np.median(power[ring])) + 1e-6  # the median: the peaks themselves pull a mean up
    if cand.flat[first] < peak_ratio * level or not _isolated(power, first, r1):
        return None
    # a lattice: another strong peak at the same radius and a right angle to the first
    d = np.abs(((_ANGLE - a1) % 180.0) - 90.0)
    partner = _CANDIDATES & (np.abs(_RADIUS - r1) <= max(1.5, 0.08 * r1)) & (d <= 10.0)
    if not partner.any() or float(power[partner].max()) < 0.5 * peak_ratio * level:
        return None
    return PATCH / float(r1)


def screen_period(img: Image.Image, params: DescreenParams = DescreenParams()) -> float | None:
    """The halftone screen's period in px when `img` is a printed picture, else None."""
    grey = np.asarray(img.convert("L"), np.float32)
    textured = [p for p in _patches(grey) if p.std() >= 4.0]
    if not textured:
        return None
    found = [period for p in textured if (period := _lattice(_power(p), params.peak_ratio)) is not None]
    if len(found) < max(params.min_patches, params.min_share * len(textured)):
        return None
    return float(np.median(found))


def descreen(img: Image.Image, params: DescreenParams = DescreenParams()) -> tuple[Image.Image, float | None]:
    """`img` with its halftone dots blurred away, and the screen's period (None: not a print, `img`
    returned as it is)."""
    period = screen_period(img, params)
    if period is None:
        return img, None
    return img.convert("RGB").filter(ImageFilter.GaussianBlur(params.sigma * period)), period
