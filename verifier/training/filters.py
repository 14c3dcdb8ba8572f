"""A filter generator for training ChangeNet that a filtered copy is still the same picture.

ChangeNet was trained with mild colour changes as benign, so it reads the new contours of a
solarised, posterised or inked copy as edits (the held-out `stylise` family: 19 of 54 matched
copies called manipulated after the colour map). This generator is written apart from
`simprov.edits.stylise` (its own code, operations and ranges; no PIL ImageOps filter it uses),
so `stylise` still measures filters the trainer never produced: tone folds at a random point,
quantisation to a few levels or a small palette, gradient maps, ink lines over a smoothed
copy, a pencil sketch, negatives, channel mixes, glow, grain and lomo. Training code only.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageFilter

FILTERS = ("fold", "levels", "palette", "gradient_map", "ink", "sketch", "negative", "channel_mix", "glow", "grain", "lomo")

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), np.float32) / 255


def _img(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8))


def _sobel(g: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a grey image (H, W) -> (H, W)."""
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def _apply(op: str, img: Image.Image, rng: random.Random) -> Image.Image:
    a = _arr(img)
    if op == "fold":  # tones above a point turn back down; per channel a third of the time
        t = np.array([rng.uniform(0.35, 0.8) for _ in range(3)] if rng.random() < 0.33 else [rng.uniform(0.35, 0.8)] * 3, np.float32)
        return _img(np.where(a < t, a, t * (1 - a) / (1 - t)))
    if op == "levels":  # n evenly spaced levels per channel
        n = rng.randint(3, 6)
        return _img(np.floor(a * n).clip(0, n - 1) / (n - 1))
    if op == "palette":  # a small palette chosen from the picture
        return img.convert("RGB").quantize(colors=rng.randint(4, 16), method=Image.Quantize.MEDIANCUT).convert("RGB")
    if op == "gradient_map":  # luminance through two or three random colour stops
        ranges = [(0.0, 0.35), (0.65, 1.0)] if rng.random() < 0.5 else [(0.0, 0.35), (0.2, 0.8), (0.65, 1.0)]
        stops = np.array([[rng.uniform(lo, hi) for _ in range(3)] for lo, hi in ranges], np.float32)
        lum = a @ _LUMA
        xs = np.linspace(0, 1, len(stops))
        return _img(np.stack([np.interp(lum, xs, stops[:, c]) for c in range(3)], -1))
    if op == "ink":  # dark lines where the smoothed picture has edges
        smooth = _arr(img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5))))
        mag = _sobel(smooth @ _LUMA)
        lines = (mag > np.quantile(mag, rng.uniform(0.8, 0.92))).astype(np.float32)[..., None]
        return _img(smooth * (1 - lines * rng.uniform(0.7, 1.0)))
    if op == "sketch":  # colour dodge of the grey picture by its blurred negative
        g = a @ _LUMA
        blur = _arr(_img(1 - g).filter(ImageFilter.GaussianBlur(rng.uniform(3, 8))))[..., 0]
        s = np.clip(g / np.maximum(1e-3, 1 - blur), 0, 1)
        return _img(np.repeat(s[..., None], 3, -1) if rng.random() < 0.6 else 0.6 * s[..., None] + 0.4 * a)
    if op == "negative":
        keep = rng.random() < 0.3  # sometimes one channel stays
        out = 1 - a
        if keep:
            c = rng.randrange(3)
            out[..., c] = a[..., c]
        return _img(out)
    if op == "channel_mix":
        m = np.eye(3, dtype=np.float32)[rng.sample(range(3), 3)]
        m = m * rng.uniform(0.6, 1.0) + np.array([[rng.uniform(-0.2, 0.4) for _ in range(3)] for _ in range(3)], np.float32) * 0.5
        return _img(a @ m.T)
    if op == "glow":  # blurred highlights added back (soft focus, bloom)
        blur = _arr(img.filter(ImageFilter.GaussianBlur(rng.uniform(4, 12))))
        return _img(a + rng.uniform(0.4, 0.9) * np.clip(blur - rng.uniform(0.3, 0.6), 0, 1) * 2)
    if op == "grain":  # strong film grain and crushed contrast
        r = np.random.default_rng(rng.randrange(1 << 30))
        out = (a - 0.5) * rng.uniform(1.3, 1.8) + 0.5 + r.normal(0, rng.uniform(0.04, 0.1), a.shape[:2])[..., None]
        return _img(out)
    # lomo: saturation up, corners down by a radial power falloff
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    lum = (a @ _LUMA)[..., None]
    sat = lum + (a - lum) * rng.uniform(1.4, 2.0)
    return _img(sat * (1 - rng.uniform(0.4, 0.8) * np.clip(r2 / 2, 0, 1) ** rng.uniform(0.8, 1.6))[..., None])


def apply_filters(img: Image.Image, rng: random.Random) -> tuple[Image.Image, list[str]]:
    """One or two filters; the picture's content (and so any edit mask) stays where it was."""
    ops = rng.sample(FILTERS, rng.randint(1, 2))
    for op in ops:
        img = _apply(op, img, rng)
    return img, ops
