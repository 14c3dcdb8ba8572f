"""Benign transforms and editorial manipulations of photos, with ground-truth masks.

Used to calibrate decision thresholds, to train (stage 1-3) and to build benchmarks. A
benign transform changes how an image looks, not what it shows; a manipulation changes
what it shows, and its mask (white = manipulated, in the output's pixel frame) says where.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps


@dataclass
class Sample:
    image: Image.Image
    mask: Image.Image  # mode "L", same size as image; 255 = manipulated
    ops: list[str]


def _blank_mask(img: Image.Image) -> Image.Image:
    return Image.new("L", img.size, 0)


def _geom(sample: Sample, fn: Callable[[Image.Image, int], Image.Image], name: str) -> Sample:
    """Apply a geometric op to image and mask alike."""
    return Sample(fn(sample.image, Image.BICUBIC), fn(sample.mask, Image.NEAREST), sample.ops + [name])


def jpeg(s: Sample, rng: random.Random) -> Sample:
    q = rng.randint(20, 95)
    buf = io.BytesIO()
    s.image.save(buf, "JPEG", quality=q)
    return Sample(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), s.mask, s.ops + [f"jpeg{q}"])


def rescale(s: Sample, rng: random.Random) -> Sample:
    f = rng.uniform(0.1, 0.9)
    w, h = s.image.size
    size = (max(16, round(w * f)), max(16, round(h * f)))
    return _geom(s, lambda im, r: im.resize(size, r), f"rescale{f:.2f}")


def crop(s: Sample, rng: random.Random) -> Sample:
    w, h = s.image.size
    area = rng.uniform(0.7, 0.97)
    cw, ch = max(16, round(w * area**0.5)), max(16, round(h * area**0.5))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return _geom(s, lambda im, r: im.crop((x, y, x + cw, y + ch)), f"crop{area:.2f}")


def pad(s: Sample, rng: random.Random) -> Sample:
    w, h = s.image.size
    p = [round(rng.uniform(0, 0.15) * (w if i % 2 == 0 else h)) for i in range(4)]
    colour = tuple(rng.randint(0, 255) for _ in range(3))
    image = ImageOps.expand(s.image, tuple(p), fill=colour)
    mask = ImageOps.expand(s.mask, tuple(p), fill=0)
    return Sample(image, mask, s.ops + ["pad"])


def rotate(s: Sample, rng: random.Random) -> Sample:
    a = rng.uniform(-10, 10)
    return _geom(s, lambda im, r: im.rotate(a, resample=r, expand=False), f"rot{a:.1f}")


def perspective(s: Sample, rng: random.Random) -> Sample:
    w, h = s.image.size
    d = 0.08
    src = [(rng.uniform(0, d) * w, rng.uniform(0, d) * h), (w - rng.uniform(0, d) * w, rng.uniform(0, d) * h),
           (w - rng.uniform(0, d) * w, h - rng.uniform(0, d) * h), (rng.uniform(0, d) * w, h - rng.uniform(0, d) * h)]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    coeffs = _perspective_coeffs(dst, src)
    return _geom(s, lambda im, r: im.transform(im.size, Image.PERSPECTIVE, coeffs, resample=r), "persp")


def _perspective_coeffs(dst: list[tuple[float, float]], src: list[tuple[float, float]]) -> list[float]:
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, np.float64)
    b = np.array([c for p in src for c in p], np.float64)
    return np.linalg.solve(a, b).tolist()


def blur(s: Sample, rng: random.Random) -> Sample:
    r = rng.uniform(0.5, 2.0)
    return Sample(s.image.filter(ImageFilter.GaussianBlur(r)), s.mask, s.ops + [f"blur{r:.1f}"])


def noise(s: Sample, rng: random.Random) -> Sample:
    sigma = rng.uniform(2, 12)
    arr = np.asarray(s.image, np.float32)
    arr = arr + np.random.default_rng(rng.randint(0, 2**31)).normal(0, sigma, arr.shape)
    return Sample(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), s.mask, s.ops + [f"noise{sigma:.0f}"])


def colour(s: Sample, rng: random.Random) -> Sample:
    img = ImageEnhance.Brightness(s.image).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4))
    return Sample(img, s.mask, s.ops + ["colour"])


def greyscale(s: Sample, rng: random.Random) -> Sample:
    return Sample(ImageOps.grayscale(s.image).convert("RGB"), s.mask, s.ops + ["grey"])


def overlay_text(s: Sample, rng: random.Random) -> Sample:
    img = s.image.copy()
    draw = ImageDraw.Draw(img)
    w, h = img.size
    text = rng.choice(["BREAKING", "@newsdesk", "EXCLUSIVE", "via social media", "LIVE"])
    x, y = rng.randint(0, max(1, w // 2)), rng.randint(0, max(1, h - 20))
    draw.text((x, y), text, fill=tuple(rng.randint(0, 255) for _ in range(3)))
    return Sample(img, s.mask, s.ops + ["text"])


BENIGN: dict[str, Callable[[Sample, random.Random], Sample]] = {
    "jpeg": jpeg, "rescale": rescale, "crop": crop, "pad": pad, "rotate": rotate, "perspective": perspective,
    "blur": blur, "noise": noise, "colour": colour, "greyscale": greyscale, "text": overlay_text,
}


def benign(img: Image.Image, rng: random.Random, n_ops: int = 2) -> Sample:
    """`n_ops` random benign transforms, always ending with a JPEG re-encode (as shared online)."""
    s = Sample(img.convert("RGB"), _blank_mask(img), [])
    for name in rng.sample([k for k in BENIGN if k != "jpeg"], n_ops):
        s = BENIGN[name](s, rng)
    return jpeg(s, rng)


def splice(img: Image.Image, donor: Image.Image, rng: random.Random, area: tuple[float, float] = (0.03, 0.15)) -> Sample:
    """Paste a rectangle from `donor` into `img`: the classic editorial manipulation."""
    base = img.convert("RGB").copy()
    w, h = base.size
    frac = rng.uniform(*area)
    pw, ph = max(8, round(w * frac**0.5)), max(8, round(h * frac**0.5))
    donor = donor.convert("RGB").resize((max(pw, donor.width), max(ph, donor.height)))
    dx, dy = rng.randint(0, donor.width - pw), rng.randint(0, donor.height - ph)
    x, y = rng.randint(0, w - pw), rng.randint(0, h - ph)
    base.paste(donor.crop((dx, dy, dx + pw, dy + ph)), (x, y))
    mask = _blank_mask(base)
    ImageDraw.Draw(mask).rectangle((x, y, x + pw - 1, y + ph - 1), fill=255)
    return Sample(base, mask, [f"splice{frac:.2f}"])
