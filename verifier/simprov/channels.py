"""A colour-channel split undone: glitch and "RGB split" filters shift the red and blue
channels sideways against the green one, and every edge of the photo then shows three times
in the grey image that SIFT and the embeddings read. On the held-out `glitch` family the
RANSAC inliers between a query and its own original fell to a third of what the green channel
alone still gives (BENCHMARKS.md "Three families nothing was tuned on"). A split is measured by
phase correlation of the channels' edge maps (edges, not intensities: a red and a green
channel differ in brightness but not in where the edges lie), and undone by shifting the
channels back onto the green one.

The thresholds were chosen on `train` photos by `scripts/calibrate_channel_split.py`, with
splits of a generator written apart from `simprov.edits.glitch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

DETECT_SIDE = 512  # the split is measured on a copy this size (long side): ~7 ms, and a split under a pixel here does not matter
MIN_RESPONSE = 0.25  # phase correlation's peak height (0-1) from which a channel's shift is believed
MIN_SHIFT = 1.5  # px at DETECT_SIDE: a smaller shift is a lens's colour fringe or none
# JPEG keeps chroma at half resolution in 8 px blocks, which puts edges of its own into the red and
# blue channels: the edge maps are smoothed by EDGE_SIGMA px (at DETECT_SIDE; 1 px found 241 of 300
# train splits, 2 px 298), and under MIN_MEASURE_SIDE px those blocks are most of a thumbnail's edges
# (4 of 69 train thumbnails under 64 px called split, none of 78 at 64-95 px).
EDGE_SIGMA = 2.0
MIN_MEASURE_SIDE = 64


@dataclass(frozen=True)
class ChannelSplit:
    """How far the red and blue channels lie from the green one, in the image's own pixels
    ((0, 0) where that channel is not shifted)."""

    red: tuple[float, float]
    blue: tuple[float, float]


def _edges(channel: np.ndarray, sigma: float) -> np.ndarray:
    c = cv2.GaussianBlur(channel.astype(np.float32), (0, 0), sigma)
    return cv2.magnitude(cv2.Sobel(c, cv2.CV_32F, 1, 0), cv2.Sobel(c, cv2.CV_32F, 0, 1))


def measure(img: Image.Image, sigma: float = EDGE_SIGMA, min_side: int = MIN_MEASURE_SIDE,
            ) -> tuple[float, tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """(scale, ((dx, dy, response) of red, of blue)) against green, measured at DETECT_SIDE;
    `scale` turns those pixels into the image's. The raw measure, for calibration."""
    arr = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    h, w = arr.shape[:2]
    scale = max(h, w) / DETECT_SIDE if max(h, w) > DETECT_SIDE else 1.0
    if scale > 1.0:
        arr = cv2.resize(arr, (max(1, round(w / scale)), max(1, round(h / scale))), interpolation=cv2.INTER_AREA)
    if max(arr.shape[:2]) < min_side or min(arr.shape[:2]) < 16:
        return scale, ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    green = _edges(arr[..., 1], sigma)
    window = cv2.createHanningWindow((arr.shape[1], arr.shape[0]), cv2.CV_32F)
    out = []
    for c in (0, 2):
        (dx, dy), response = cv2.phaseCorrelate(green, _edges(arr[..., c], sigma), window)
        out.append((float(dx), float(dy), float(response)))
    return scale, (out[0], out[1])


def channel_split(img: Image.Image, *, min_response: float = MIN_RESPONSE, min_shift: float = MIN_SHIFT) -> ChannelSplit | None:
    """The split of `img`'s channels, or None when neither red nor blue is shifted. `img` is the
    matcher's RGB frame (a grey upload is three equal channels there, which measure no shift);
    another mode is not measured."""
    if img.mode != "RGB":
        return None
    scale, measured = measure(img)
    shifts = []
    for dx, dy, response in measured:
        shifted = response >= min_response and float(np.hypot(dx, dy)) >= min_shift
        shifts.append((dx * scale, dy * scale) if shifted else (0.0, 0.0))
    if shifts == [(0.0, 0.0), (0.0, 0.0)]:
        return None
    return ChannelSplit(red=shifts[0], blue=shifts[1])


def realigned(img: Image.Image, split: ChannelSplit) -> Image.Image:
    """`img` with its red and blue channels moved back onto the green one (the edge rows a
    shift uncovers repeat their neighbours)."""
    arr = np.array(img.convert("RGB"))
    h, w = arr.shape[:2]
    for c, (dx, dy) in ((0, split.red), (2, split.blue)):
        if (dx, dy) != (0.0, 0.0):
            m = np.float32([[1, 0, -dx], [0, 1, -dy]])
            arr[..., c] = cv2.warpAffine(np.ascontiguousarray(arr[..., c]), m, (w, h), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(arr)
