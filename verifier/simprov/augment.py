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


def _region(w: int, h: int, rng: random.Random, area: tuple[float, float]) -> tuple[int, int, int, int]:
    frac = rng.uniform(*area)
    aspect = rng.uniform(0.5, 2.0)
    pw = max(8, min(w - 1, round((frac * w * h * aspect) ** 0.5)))
    ph = max(8, min(h - 1, round((frac * w * h / aspect) ** 0.5)))
    x, y = rng.randint(0, w - pw), rng.randint(0, h - ph)
    return x, y, x + pw, y + ph


def _ellipse_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    return mask


def copy_move(img: Image.Image, rng: random.Random, area: tuple[float, float] = (0.02, 0.1)) -> Sample:
    """Copy a region of the image elsewhere in the same image (COVERAGE-style forgery)."""
    base = img.convert("RGB").copy()
    w, h = base.size
    x0, y0, x1, y1 = _region(w, h, rng, area)
    patch = base.crop((x0, y0, x1, y1))
    tx, ty = rng.randint(0, w - patch.width), rng.randint(0, h - patch.height)
    shape = _ellipse_mask(patch.size, (0, 0, patch.width - 1, patch.height - 1))
    base.paste(patch, (tx, ty), shape)
    mask = Image.new("L", base.size, 0)
    mask.paste(shape, (tx, ty))
    return Sample(base, mask, ["copymove"])


def removal(img: Image.Image, rng: random.Random, area: tuple[float, float] = (0.02, 0.1)) -> Sample:
    """'Inpainted' object removal: the region is filled from its blurred surroundings."""
    base = img.convert("RGB").copy()
    w, h = base.size
    box = _region(w, h, rng, area)
    radius = max(box[2] - box[0], box[3] - box[1]) / 2
    fill = base.filter(ImageFilter.GaussianBlur(radius)).filter(ImageFilter.GaussianBlur(radius / 2))
    mask = _ellipse_mask(base.size, box)
    base.paste(fill, (0, 0), mask)
    return Sample(base, mask, ["removal"])


def local_colour(img: Image.Image, rng: random.Random, area: tuple[float, float] = (0.03, 0.2)) -> Sample:
    """Recolour one region (e.g. a garment, a sky) by shifting its hue and saturation."""
    base = img.convert("RGB").copy()
    box = _region(*base.size, rng, area)
    hsv = np.asarray(base.convert("HSV"), np.int16).copy()
    hsv[..., 0] = (hsv[..., 0] + rng.randint(40, 200)) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.6) + 30, 0, 255)
    recoloured = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    mask = _ellipse_mask(base.size, box)
    base.paste(recoloured, (0, 0), mask)
    return Sample(base, mask, ["colourchange"])


def inserted_text(img: Image.Image, rng: random.Random) -> Sample:
    """Text that changes what the picture says (a caption, a sign), with its mask."""
    base = img.convert("RGB").copy()
    w, h = base.size
    words = rng.choice(["FAKE", "NO ENTRY", "SOLD OUT", "VOTE NOW", "CLOSED", "DANGER", "FREE"])
    layer = Image.new("L", (max(8, len(words) * 6 + 4), 14), 0)
    ImageDraw.Draw(layer).text((2, 1), words, fill=255)
    scale = rng.uniform(0.3, 0.8) * w / layer.width
    layer = layer.resize((max(8, round(layer.width * scale)), max(8, round(layer.height * scale))), Image.NEAREST)
    layer = layer.crop((0, 0, min(layer.width, w), min(layer.height, h)))
    x, y = rng.randint(0, w - layer.width), rng.randint(0, h - layer.height)
    colour = Image.new("RGB", layer.size, tuple(rng.randint(0, 255) for _ in range(3)))
    base.paste(colour, (x, y), layer)
    mask = Image.new("L", base.size, 0)
    mask.paste(layer.point(lambda v: 255 if v > 0 else 0), (x, y))
    return Sample(base, mask, ["text-insert"])


MANIPULATIONS = ("splice", "copymove", "removal", "colourchange", "text-insert")


def manipulate(img: Image.Image, donor: Image.Image, rng: random.Random, kind: str | None = None) -> Sample:
    """One editorial manipulation with its ground-truth mask."""
    kind = kind or rng.choice(MANIPULATIONS)
    if kind == "splice":
        return splice(img, donor, rng)
    if kind == "copymove":
        return copy_move(img, rng)
    if kind == "removal":
        return removal(img, rng)
    if kind == "colourchange":
        return local_colour(img, rng)
    return inserted_text(img, rng)


def benign_after(sample: Sample, rng: random.Random, n_ops: int = 2) -> Sample:
    """Benign transforms on top of an existing sample (the mask follows the geometry)."""
    for name in rng.sample([k for k in BENIGN if k != "jpeg"], n_ops):
        sample = BENIGN[name](sample, rng)
    return jpeg(sample, rng)
