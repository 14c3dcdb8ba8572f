"""Printed-and-captured copies of train photos, for choosing the query descreen
(`simprov.descreen`, `scripts/calibrate_descreen.py`).

Written apart from the held-out `newsprint` family (`simprov.edits.newsprint`), which the choice
must not see: another halftone model (a spot-function screen rendered at 3x and averaged down,
so dots have soft edges as a scanner sees them, with dot gain and plates out of register),
another ink model (Yule-Nielsen-free subtractive mixing of measured-looking ink colours), other
framings (a clipping cut to the photo, or a page with grey text bars) and other captures
(a flatbed scan with JPEG, or a phone photo with perspective, vignetting and noise), over a wider
range of screen periods (2.5-9 px at the capture's resolution) and capture sizes.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

# sRGB transmittance of each process ink at full cover (cyan, magenta, yellow, black)
INKS = np.array([[0.0, 0.62, 0.93], [0.93, 0.0, 0.55], [1.0, 0.94, 0.0], [0.12, 0.12, 0.13]], np.float32)
ANGLE_SETS = ((15.0, 75.0, 0.0, 45.0), (105.0, 75.0, 90.0, 45.0), (165.0, 45.0, 90.0, 105.0))


@dataclass(frozen=True)
class PrintParams:
    period: float  # screen period at the capture's resolution, px
    process: bool  # four inks (else one black ink)
    angles: tuple[float, ...]
    dot_gain: float  # tone exponent < 1 darkens mid-tones as ink spreads
    misregister: float  # px, each plate's largest shift
    clipping: bool  # cut to the photo (else a page with text around it)
    capture: str  # "scan" | "phone"


def draw_params(rng: random.Random) -> PrintParams:
    process = rng.random() < 0.65
    base = rng.choice(ANGLE_SETS) if process else (rng.choice((45.0, 45.0, 0.0, 30.0)),)
    turn = rng.uniform(-3, 3)
    return PrintParams(period=rng.uniform(2.5, 9.0), process=process, angles=tuple(a + turn for a in base),
                       dot_gain=rng.uniform(0.7, 0.95), misregister=rng.uniform(0, 1.5) if process else 0.0,
                       clipping=rng.random() < 0.5, capture=rng.choice(("scan", "phone")))


def _screen(h: int, w: int, period: float, angle: float, shift: tuple[float, float], ss: int) -> np.ndarray:
    """A round-dot spot function in [0, 1] on an (h*ss, w*ss) grid: a dot grows from each cell's
    centre as the threshold rises (ordered clustered dot)."""
    yy, xx = np.mgrid[0 : h * ss, 0 : w * ss].astype(np.float32)
    xx = xx / ss + shift[0]
    yy = yy / ss + shift[1]
    a = math.radians(angle)
    u = (xx * math.cos(a) + yy * math.sin(a)) / period
    v = (-xx * math.sin(a) + yy * math.cos(a)) / period
    return (2 - np.cos(2 * np.pi * u) - np.cos(2 * np.pi * v)) / 4  # 0 at the dot's centre, 1 at the cell's corner


def halftone(photo: np.ndarray, p: PrintParams, rng: random.Random, paper: np.ndarray, ss: int = 3) -> np.ndarray:
    """photo (h, w, 3) float 0..255 -> printed (h, w, 3) float, dots rendered at `ss`x then averaged."""
    h, w, _ = photo.shape
    rgb = photo / 255.0
    if p.process:
        k = 1 - rgb.max(-1)
        cmy = (1 - rgb - k[..., None]) / np.maximum(1 - k[..., None], 1e-3)
        cover = np.concatenate([cmy * (1 - 0.3 * k[..., None]), k[..., None] * 0.9], -1)  # (h, w, 4)
    else:
        cover = (1 - rgb @ np.array([0.3, 0.59, 0.11], np.float32))[..., None]
    cover = np.clip(cover, 0, 1) ** p.dot_gain
    big = np.repeat(np.repeat(cover, ss, 0), ss, 1)
    out = np.ones((h * ss, w * ss, 3), np.float32)
    inks = INKS if p.process else INKS[3:]
    for i, angle in enumerate(p.angles):
        shift = (rng.uniform(-p.misregister, p.misregister), rng.uniform(-p.misregister, p.misregister))
        dots = (_screen(h, w, p.period, angle, shift, ss) < big[..., i]).astype(np.float32)
        out *= 1 - dots[..., None] * (1 - inks[i])
    out = out.reshape(h, ss, w, ss, 3).mean((1, 3))
    return out * paper


def _page(printed: np.ndarray, paper: np.ndarray, rng: random.Random) -> np.ndarray:
    """The printed photo on a page with a headline bar and text-line bars around it."""
    ih, iw, _ = printed.shape
    pw = round(iw / rng.uniform(0.5, 0.9))
    ph = round(ih + pw * rng.uniform(0.3, 0.7))
    page = np.ones((ph, pw, 3), np.float32) * paper
    top = rng.randint(round(pw * 0.05), round(pw * 0.2))
    left = rng.randint(0, pw - iw)
    ink = np.float32(rng.uniform(0.15, 0.3)) * paper
    line = max(2, round(pw / rng.uniform(90, 160)))
    y = round(top * 0.2)
    page[y : y + max(3, round(top * 0.3)), round(pw * 0.04) : round(pw * rng.uniform(0.5, 0.95))] = ink
    page[top : top + ih, left : left + iw] = printed
    text = 0.5 * (ink + paper)  # a line of small type averages to mid grey
    for y in range(top + ih + line, ph - line, 2 * line + 1):
        x1 = round(pw * rng.uniform(0.85, 0.97))
        page[y : y + line, round(pw * 0.03) : x1] = text
    return page


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _capture(page: np.ndarray, p: PrintParams, rng: random.Random) -> bytes:
    """The capture as the JPEG file a scanner or a phone writes."""
    img = Image.fromarray(np.clip(page * 255, 0, 255).astype(np.uint8))
    if p.capture == "scan":
        img = img.rotate(rng.uniform(-1.5, 1.5), Image.BICUBIC, expand=False, fillcolor=(235, 233, 225))
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
        return _jpeg(img, rng.randint(70, 92))
    w, h = img.size
    d = [rng.uniform(-0.05, 0.05) * s for s in (w, h, w, h, w, h, w, h)]
    quad = (d[0], d[1], d[2], h + d[3], w + d[4], h + d[5], w + d[6], d[7])  # ul, ll, lr, ur corners sampled
    img = img.transform((w, h), Image.QUAD, quad, Image.BICUBIC, fillcolor=(60, 55, 50))
    a = np.asarray(img, np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
    a = a * (1 - rng.uniform(0.1, 0.35) * r)[..., None] + np.random.default_rng(rng.randrange(1 << 30)).normal(
        0, rng.uniform(1.5, 5), a.shape)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    return _jpeg(img, rng.randint(75, 95))


def print_copy(photo: Image.Image, rng: random.Random, params: PrintParams | None = None) -> tuple[Image.Image, PrintParams]:
    """`photo` printed with halftone screens and captured, decoded; the print's parameters."""
    data, p = print_file(photo, rng, params)
    return Image.open(io.BytesIO(data)).convert("RGB"), p


def print_file(photo: Image.Image, rng: random.Random, params: PrintParams | None = None) -> tuple[bytes, PrintParams]:
    """`print_copy` as the captured JPEG file (what a fact-checker would upload)."""
    p = params or draw_params(rng)
    side = rng.randint(300, 900)  # the photo's long side at the capture's resolution
    src = photo.convert("RGB")
    scale = side / max(src.size)
    src = src.resize((max(8, round(src.width * scale)), max(8, round(src.height * scale))), Image.LANCZOS)
    paper = np.array([rng.uniform(0.9, 0.97), rng.uniform(0.89, 0.95), rng.uniform(0.82, 0.9)], np.float32)
    printed = halftone(np.asarray(src, np.float32), p, rng, paper)
    if p.clipping:
        m = round(side * rng.uniform(0.0, 0.06))
        page = np.ones((printed.shape[0] + 2 * m, printed.shape[1] + 2 * m, 3), np.float32) * paper
        page[m : m + printed.shape[0], m : m + printed.shape[1]] = printed
    else:
        page = _page(printed, paper, rng)
    return _capture(page, p, rng), p
