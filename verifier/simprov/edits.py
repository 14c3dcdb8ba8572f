"""Edit families that look like real edits (composites, memes, transplants, stylisation), for
benchmarks that the training generator does not define.

`augment.manipulate` makes small, local edits; real edits shared online (e.g. PS-Battles) are
often large: an object pasted over half the frame, the subject cut out into another scene,
the photo embedded small in a meme, heavy grading. Each family below is one function with
its parameters in its docstring, returning a `Sample` whose mask marks (in the query's
pixels) what did *not* come from the original or was changed. `finish` then applies what
sharing does (mirror, non-uniform rescale, grade, crop, JPEG) with the mask following.

Leave-family-out: trainers may use only `TRAIN_FAMILIES`; `HELD_OUT_FAMILIES` exist to
measure whether what was learned carries over to kinds of edit never seen in training.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import (
    Image,
    ImageChops,
    ImageDraw,
    ImageEnhance,
    ImageFilter,
    ImageFont,
    ImageOps,
)

from verifier.simprov.augment import Sample, jpeg

Donors = list[Image.Image]

CAPTIONS = (
    "WHEN THE MEETING COULD HAVE BEEN AN EMAIL", "NOBODY:", "BREAKING NEWS", "THIS IS FINE", "ME EXPLAINING",
    "TOTALLY REAL PHOTO", "FIRST DAY ON THE JOB", "PLOT TWIST", "NOT WHAT IT LOOKS LIKE", "MEANWHILE IN EUROPE",
)


def _rgb(img: Image.Image) -> Image.Image:
    return img.convert("RGB")


def _ellipse(size: tuple[int, int], box: tuple[int, int, int, int], feather: float = 0.0) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).ellipse(box, fill=255)
    return m.filter(ImageFilter.GaussianBlur(feather)) if feather > 0 else m


def _binary(mask: Image.Image) -> Image.Image:
    """Where a feathered paste changed the pixels noticeably (alpha >= 1/8)."""
    return mask.point(lambda v: 255 if v >= 32 else 0)


def _box(w: int, h: int, frac: float, rng: random.Random, aspect: tuple[float, float] = (0.6, 1.6)) -> tuple[int, int, int, int]:
    """A box of about `frac` of the w x h frame, anywhere inside it."""
    a = rng.uniform(*aspect)
    bw = max(8, min(w, round((frac * w * h * a) ** 0.5)))
    bh = max(8, min(h, round((frac * w * h / a) ** 0.5)))
    x, y = rng.randint(0, w - bw), rng.randint(0, h - bh)
    return x, y, x + bw, y + bh


def _match_colour(patch: Image.Image, target: Image.Image) -> Image.Image:
    """Per-channel mean/std transfer, as an editor blending a pasted element would (the
    element keeps at least half its own contrast, so it never melts into a flat target)."""
    p = np.asarray(patch, np.float32)
    t = np.asarray(target, np.float32)
    p_std = p.std((0, 1))
    out = (p - p.mean((0, 1))) / (p_std + 1e-3) * np.maximum(t.std((0, 1)), 0.5 * p_std) + t.mean((0, 1))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def _text_layer(size: tuple[int, int], text: str, height: int) -> Image.Image:
    """Meme-style caption: white text with a black outline, centred, wrapped to the width."""
    w, _ = size
    font = _font(height)
    words, lines, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if line and ImageDraw.Draw(Image.new("L", (1, 1))).textlength(trial, font=font) > 0.95 * w:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    layer = Image.new("RGBA", (w, round(height * 1.25 * len(lines)) + 4), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for i, ln in enumerate(lines):
        tw = draw.textlength(ln, font=font)
        draw.text(((w - tw) / 2, i * height * 1.25), ln, font=font, fill=(255, 255, 255, 255),
                  stroke_width=max(1, height // 12), stroke_fill=(0, 0, 0, 255))
    return layer


# -- the families -------------------------------------------------------------------------------


def paste_large(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """An object from another photo pasted big: an ellipse or rectangle of a donor covering
    20-70 % of the frame, colour-matched to the original half the time, edges feathered."""
    base = _rgb(img).copy()
    w, h = base.size
    frac = rng.uniform(0.2, 0.7)
    x0, y0, x1, y1 = _box(w, h, frac, rng)
    patch = _rgb(donors[0]).resize((x1 - x0, y1 - y0), Image.BICUBIC)
    if rng.random() < 0.5:
        patch = _match_colour(patch, base)
    shape = _ellipse(patch.size, (0, 0, patch.width - 1, patch.height - 1), feather=2) if rng.random() < 0.6 else Image.new("L", patch.size, 255)
    base.paste(patch, (x0, y0), shape)
    mask = Image.new("L", base.size, 0)
    mask.paste(_binary(shape), (x0, y0))
    return Sample(base, mask, [f"paste_large{frac:.2f}"])


def transplant(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The original's subject cut out and placed into another scene: an ellipse of 25-60 % of
    the original, scaled to cover 12-35 % of a donor frame. The original is a minority of the
    query; the mask is everything that is not from it."""
    src = _rgb(img)
    scene = _rgb(donors[0]).resize(src.size, Image.BICUBIC).copy()
    w, h = src.size
    x0, y0, x1, y1 = _box(w, h, rng.uniform(0.25, 0.6), rng)
    piece = src.crop((x0, y0, x1, y1))
    shape = _ellipse(piece.size, (0, 0, piece.width - 1, piece.height - 1), feather=2)
    cover = rng.uniform(0.12, 0.35)
    s = (cover * w * h / (piece.width * piece.height)) ** 0.5
    size = (max(8, min(w, round(piece.width * s))), max(8, min(h, round(piece.height * s))))
    piece, shape = piece.resize(size, Image.BICUBIC), shape.resize(size, Image.BILINEAR)
    tx, ty = rng.randint(0, w - size[0]), rng.randint(0, h - size[1])
    scene.paste(piece, (tx, ty), shape)
    kept = Image.new("L", scene.size, 0)
    kept.paste(_binary(shape), (tx, ty))
    return Sample(scene, ImageOps.invert(kept), [f"transplant{cover:.2f}"])


def background_swap(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The background replaced: an ellipse of 35-65 % of the original (its subject) is kept
    in place, the rest comes from a donor scene."""
    src = _rgb(img)
    w, h = src.size
    frac = rng.uniform(0.35, 0.65)
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    a = rng.uniform(0.7, 1.4)
    rx, ry = min(w / 2, (frac * w * h * a / np.pi) ** 0.5), min(h / 2, (frac * w * h / a / np.pi) ** 0.5)
    keep = _ellipse(src.size, (round(cx - rx), round(cy - ry), round(cx + rx), round(cy + ry)), feather=3)
    out = _rgb(donors[0]).resize(src.size, Image.BICUBIC)
    out.paste(src, (0, 0), keep)
    return Sample(out, ImageOps.invert(_binary(keep)), [f"background_swap{frac:.2f}"])


def multi_source(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Several sources combined: 2-4 elements of 5-20 % each, from up to three donors."""
    base = _rgb(img).copy()
    w, h = base.size
    mask = Image.new("L", base.size, 0)
    n = rng.randint(2, 4)
    for k in range(n):
        donor = _rgb(donors[k % len(donors)])
        x0, y0, x1, y1 = _box(w, h, rng.uniform(0.05, 0.2), rng)
        dw, dh = x1 - x0, y1 - y0
        scale = max(dw / donor.width, dh / donor.height, 1e-6)
        if scale > 1:
            donor = donor.resize((round(donor.width * scale) + 1, round(donor.height * scale) + 1), Image.BICUBIC)
        sx, sy = rng.randint(0, donor.width - dw), rng.randint(0, donor.height - dh)
        patch = _match_colour(donor.crop((sx, sy, sx + dw, sy + dh)), base) if rng.random() < 0.5 else donor.crop((sx, sy, sx + dw, sy + dh))
        shape = _ellipse(patch.size, (0, 0, dw - 1, dh - 1), feather=1.5)
        base.paste(patch, (x0, y0), shape)
        mask.paste(255, (x0, y0), _binary(shape))
    return Sample(base, mask, [f"multi_source{n}"])


def head_swap(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Faces/heads swapped: 1-3 small ellipses (1-5 % each, upper two thirds of the frame,
    taller than wide) replaced by colour-matched donor patches."""
    base = _rgb(img).copy()
    w, h = base.size
    mask = Image.new("L", base.size, 0)
    n = rng.randint(1, 3)
    for _ in range(n):
        frac = rng.uniform(0.01, 0.05)
        bw = max(8, round((frac * w * h * 0.75) ** 0.5))
        bh = max(8, min(h, round(bw / 0.75)))
        bw = min(bw, w)
        x, y = rng.randint(0, w - bw), rng.randint(0, max(0, round(h * 0.67) - bh))
        donor = _rgb(rng.choice(donors))
        dx0, dy0, dx1, dy1 = _box(donor.width, donor.height, rng.uniform(0.02, 0.1), rng, aspect=(0.6, 0.9))
        patch = _match_colour(donor.crop((dx0, dy0, dx1, dy1)).resize((bw, bh), Image.BICUBIC), base.crop((x, y, x + bw, y + bh)))
        shape = _ellipse((bw, bh), (0, 0, bw - 1, bh - 1), feather=1.5)
        base.paste(patch, (x, y), shape)
        mask.paste(255, (x, y), _binary(shape))
    return Sample(base, mask, [f"head_swap{n}"])


def meme(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The original embedded in a meme or poster: scaled to 40-85 % of a canvas (plain
    colour or a donor as background), caption bars above and/or below."""
    src = _rgb(img)
    w, h = src.size
    s = rng.uniform(0.4, 0.85)
    inner = src.resize((max(16, round(w * s)), max(16, round(h * s))), Image.BICUBIC)
    canvas = _rgb(donors[0]).resize((w, h), Image.BICUBIC).filter(ImageFilter.GaussianBlur(4)) if rng.random() < 0.4 \
        else Image.new("RGB", (w, h), rng.choice([(255, 255, 255), (0, 0, 0), (20, 20, 60), (250, 220, 0)]))
    x = rng.randint(0, w - inner.width)
    y = rng.randint(0, h - inner.height)
    canvas.paste(inner, (x, y))
    mask = Image.new("L", canvas.size, 255)
    mask.paste(0, (x, y, x + inner.width, y + inner.height))
    for where in rng.sample(["top", "bottom"], rng.randint(1, 2)):
        layer = _text_layer(canvas.size, rng.choice(CAPTIONS), max(10, round(h * rng.uniform(0.06, 0.11))))
        ty = 0 if where == "top" else max(0, h - layer.height)
        canvas.paste(layer, (0, ty), layer)
        mask.paste(255, (0, ty), _binary(layer.getchannel("A")))  # captions over the photo count too
    return Sample(canvas, mask, [f"meme{s:.2f}"])


def caption(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Caption or meme text written over the photo itself, over 10-35 % of its area."""
    base = _rgb(img).copy()
    h = base.height
    layer = _text_layer(base.size, " ".join(rng.sample(CAPTIONS, rng.randint(1, 2))), max(10, round(h * rng.uniform(0.08, 0.16))))
    y = rng.randint(0, max(0, h - layer.height))
    base.paste(layer, (0, y), layer)
    mask = Image.new("L", base.size, 0)
    mask.paste(_binary(layer.getchannel("A")), (0, y))
    return Sample(base, mask, ["caption"])


def copy_move_small(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Copy-move within the image, of small regions: 1-3 ellipses of 0.3-2 % of the frame,
    each possibly rotated (+-30 deg) and rescaled (0.8-1.25), pasted elsewhere."""
    base = _rgb(img).copy()
    w, h = base.size
    mask = Image.new("L", base.size, 0)
    n = rng.randint(1, 3)
    for _ in range(n):
        x0, y0, x1, y1 = _box(w, h, rng.uniform(0.003, 0.02), rng)
        patch = base.crop((x0, y0, x1, y1))
        shape = _ellipse(patch.size, (0, 0, patch.width - 1, patch.height - 1))
        s, a = rng.uniform(0.8, 1.25), rng.uniform(-30, 30)
        size = (max(8, min(w, round(patch.width * s))), max(8, min(h, round(patch.height * s))))
        patch = patch.resize(size, Image.BICUBIC).rotate(a, Image.BICUBIC, expand=False)
        shape = shape.resize(size, Image.BILINEAR).rotate(a, Image.BILINEAR, expand=False)
        tx, ty = rng.randint(0, w - size[0]), rng.randint(0, h - size[1])
        base.paste(patch, (tx, ty), shape)
        mask.paste(255, (tx, ty), _binary(shape))
    return Sample(base, mask, [f"copy_move_small{n}"])


def collage(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A collage: the original is one tile of a 2x1, 1x2 or 2x2 grid with donor photos."""
    src = _rgb(img)
    w, h = src.size
    cols, rows = rng.choice([(2, 1), (1, 2), (2, 2)])
    tw, th = w // cols, h // rows
    canvas = Image.new("RGB", (tw * cols, th * rows), (255, 255, 255))
    slot = rng.randrange(cols * rows)
    mask = Image.new("L", canvas.size, 255)
    for k in range(cols * rows):
        x, y = (k % cols) * tw, (k // cols) * th
        tile = src if k == slot else _rgb(donors[k % len(donors)])
        canvas.paste(ImageOps.fit(tile, (tw, th), Image.BICUBIC), (x, y))
        if k == slot:
            mask.paste(0, (x, y, x + tw, y + th))
    return Sample(canvas, mask, [f"collage{cols}x{rows}"])


def stylise(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Heavy grading and filters (content unchanged, so the mask is empty): one or two of
    posterize, solarize, duotone, strong contrast/saturation, cartoon (median + edges),
    vignette; mirrored half the time; non-uniform rescale (aspect x0.7-1.4)."""
    out = _rgb(img)
    for op in rng.sample(["posterize", "solarize", "duotone", "punch", "cartoon", "vignette"], rng.randint(1, 2)):
        if op == "posterize":
            out = ImageOps.posterize(out, rng.randint(2, 4))
        elif op == "solarize":
            out = ImageOps.solarize(out, rng.randint(96, 200))
        elif op == "duotone":
            out = ImageOps.colorize(ImageOps.grayscale(out), tuple(rng.randint(0, 90) for _ in range(3)),
                                    tuple(rng.randint(170, 255) for _ in range(3))).convert("RGB")
        elif op == "punch":
            out = ImageEnhance.Color(ImageEnhance.Contrast(out).enhance(rng.uniform(1.5, 2.2))).enhance(rng.uniform(1.5, 2.5))
        elif op == "cartoon":
            edges = out.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 0 if v > 40 else 255)
            out = ImageChops.multiply(out.filter(ImageFilter.MedianFilter(5)), Image.merge("RGB", [edges] * 3))
        else:
            w, h = out.size
            vign = _ellipse(out.size, (-w // 5, -h // 5, w + w // 5, h + h // 5), feather=max(w, h) / 6)
            out = Image.composite(out, Image.new("RGB", out.size, (0, 0, 0)), vign)
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    w, h = out.size
    a = rng.uniform(0.7, 1.4)
    out = out.resize((max(16, round(w * a)), h), Image.BICUBIC)
    return Sample(out, Image.new("L", out.size, 0), ["stylise"])


def _perspective(quad: list[tuple[float, float]], w: int, h: int) -> list[float]:
    """PIL's PERSPECTIVE coefficients that map the output points `quad` (clockwise from the top
    left) onto the corners of a w x h input."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(quad, [(0, 0), (w, 0), (w, h), (0, h)], strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    return [float(c) for c in np.linalg.solve(np.array(rows, float), np.array(rhs, float))]


def screen(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A photo of the photo: the original on a screen, billboard or print, photographed at an
    angle inside another scene (a donor, or a dark bezel 40 % of the time): 45-85 % of the
    frame's width, each corner moved by up to 12 % of its size (a tilt), then what the camera
    does to the whole frame: a colour cast (x0.75-1.2 per channel), on the screen half the time
    a moire (a sinusoidal grating of amplitude 3-8, period 3-7 px), sensor noise (sigma 2-6),
    blur (radius 0.4-1.5). Benign: the photo shown is unchanged (the scene around it is where it
    was shown, not an edit of it), so the mask is empty, as for `stylise`."""
    src = _rgb(img)
    w, h = src.size
    host = _rgb(donors[0]).resize((w, h), Image.BICUBIC) if rng.random() < 0.6 \
        else Image.new("RGB", (w, h), tuple(rng.randint(5, 40) for _ in range(3)))
    s = rng.uniform(0.45, 0.85)
    qw, qh = w * s, h * s
    x0, y0 = rng.uniform(0, w - qw), rng.uniform(0, h - qh)
    quad = [(min(w - 1.0, max(0.0, x0 + dx + rng.uniform(-0.12, 0.12) * qw)),
             min(h - 1.0, max(0.0, y0 + dy + rng.uniform(-0.12, 0.12) * qh)))
            for dx, dy in ((0, 0), (qw, 0), (qw, qh), (0, qh))]
    warped = src.transform((w, h), Image.PERSPECTIVE, _perspective(quad, w, h), Image.BICUBIC)
    region = Image.new("L", (w, h), 0)
    ImageDraw.Draw(region).polygon(quad, fill=255)
    arr = np.asarray(Image.composite(warped, host, region), np.float32)
    arr *= np.array([rng.uniform(0.75, 1.2) for _ in range(3)], np.float32)
    inside = np.asarray(region, np.float32)[..., None] / 255
    if rng.random() < 0.5:
        period, angle = rng.uniform(3, 7), rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        grating = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
        arr += rng.uniform(3, 8) * grating[..., None] * inside
    arr += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 6), arr.shape).astype(np.float32)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.5)))
    return Sample(out, Image.new("L", out.size, 0), [f"screen{s:.2f}"])


def _inpaint_removal(img: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """An object removed by a healing brush: an ellipse of 1-6 % of the frame filled from its
    surroundings by OpenCV's inpainting (Telea or Navier-Stokes, radius 3-9 px)."""
    h, w = img.shape[:2]
    region = np.asarray(_ellipse((w, h), _box(w, h, rng.uniform(0.01, 0.06), rng)), np.uint8)
    method = cv2.INPAINT_TELEA if rng.random() < 0.5 else cv2.INPAINT_NS
    return cv2.inpaint(img, region, rng.randint(3, 9), method), region > 0


def _liquify(img: np.ndarray, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """A liquify stroke: a smooth local warp around a point (a Gaussian of sigma 6-14 % of the
    short side) that pushes the content sideways by 0.8-2 sigma x 0.3, or bloats/pinches it by
    up to +-35 % at its centre (reshaping a face, a waist, a crowd). Changed: where the content
    moved by 1 px or more."""
    h, w = img.shape[:2]
    sigma = rng.uniform(0.06, 0.14) * min(w, h)
    cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gauss = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)).astype(np.float32)
    if rng.random() < 0.5:  # push: sample from behind the stroke
        angle, mag = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 2.0) * sigma * 0.3
        dx, dy = mag * np.cos(angle) * gauss, mag * np.sin(angle) * gauss
    else:  # bloat (k > 0) or pinch (k < 0): sample closer to / further from the centre
        k = rng.choice([-1, 1]) * rng.uniform(0.15, 0.35)
        dx, dy = -k * (xx - cx) * gauss, -k * (yy - cy) * gauss
    dx, dy = dx.astype(np.float32), dy.astype(np.float32)
    out = cv2.remap(img, xx - dx, yy - dy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return out, np.hypot(dx, dy) >= 1.0


def retouch(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Retouching with nothing pasted in: one or two of an object removed by inpainting
    (`_inpaint_removal`) and a liquify warp (`_liquify`), each applied once or twice. The
    mask marks every pixel either changed."""
    arr = np.ascontiguousarray(np.asarray(_rgb(img)))
    changed = np.zeros(arr.shape[:2], bool)
    ops = []
    for op in rng.sample(["inpaint", "liquify"], rng.randint(1, 2)):
        for _ in range(rng.randint(1, 2)):
            arr, where = (_inpaint_removal if op == "inpaint" else _liquify)(arr, rng)
            changed |= where
            ops.append(op)
    # the tag names the variant (which operations, not how often), for per-variant verdicts
    return Sample(Image.fromarray(arr), Image.fromarray((changed * 255).astype(np.uint8)), ["retouch:" + "+".join(sorted(set(ops)))])


REFRAMES = {"story": 9 / 16, "square": 1.0, "portrait": 4 / 5, "own": 0.0}  # width / height; 0: the photo's own


def reframe(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A social-media reframing, content unchanged: a tight crop to a 9:16 story, 1:1 square,
    4:5 portrait or the photo's own aspect (a quarter each), keeping 20-60 % of the frame's
    area where that shape allows (a story crop of a 3:2 landscape holds at most 37.5 %), at a
    random place, scaled back up so its long side is the original's (a zoom); then turned by
    90, 180 or 270 degrees a quarter of the time (a phone that lost the orientation flag).
    Benign (the mask is empty); the variant names the frame and the turn."""
    src = _rgb(img)
    w, h = src.size
    frame = rng.choice(sorted(REFRAMES))
    aspect = REFRAMES[frame] or w / h
    area = rng.uniform(0.2, 0.6) * w * h
    ch = min(h, (area / aspect) ** 0.5)
    cw = min(w, ch * aspect)
    ch = min(ch, cw / aspect)  # the shape holds when the frame caps either side
    cw, ch = max(16, round(cw)), max(16, round(ch))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    scale = max(w, h) / max(cw, ch)
    out = src.crop((x, y, x + cw, y + ch)).resize((max(16, round(cw * scale)), max(16, round(ch * scale))), Image.BICUBIC)
    turn = rng.choice([90, 180, 270]) if rng.random() < 0.25 else 0
    if turn:
        out = out.rotate(turn, expand=True)
    return Sample(out, Image.new("L", out.size, 0), [f"reframe:{frame}" + (f"+turn{turn}" if turn else ""), f"box{x},{y},{cw},{ch}"])


def _colour_segments(arr: np.ndarray, k: int, rng: random.Random) -> np.ndarray:
    """Labels (h, w) of a k-colour clustering (Lloyd's k-means in RGB, seeded from `rng`) of a
    ~96 px copy of `arr`, blown back up to its size: regions of one colour, as a magic wand finds."""
    h, w = arr.shape[:2]
    s = 96 / max(h, w)
    small = cv2.resize(arr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    px = small.reshape(-1, 3).astype(np.float32)
    centres = px[[rng.randrange(len(px)) for _ in range(k)]]
    for _ in range(10):
        label = ((px[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([px[label == j].mean(0) if (label == j).any() else centres[j] for j in range(k)])
    return cv2.resize(label.reshape(small.shape[:2]).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)


def recolour(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """An object recoloured, nothing pasted (a car, a shirt, the sky turned another colour): a
    connected region of one colour (a 5-8 colour k-means of the photo, 4-35 % of the frame; an
    ellipse of 8-25 % when no region is that size) has its hue turned by 60-300 degrees, or
    when it is nearly grey is tinted (saturation 90-200, a random hue); 1-3 px feathered edge.
    The mask marks the region."""
    arr = np.ascontiguousarray(np.asarray(_rgb(img)))
    h, w = arr.shape[:2]
    labels = _colour_segments(arr, rng.randint(5, 8), rng)
    found = []
    for j in np.unique(labels).tolist():
        n, comp, stats, _ = cv2.connectedComponentsWithStats((labels == j).astype(np.uint8), connectivity=8)
        found += [(comp == c) for c in range(1, n) if 0.04 <= stats[c, cv2.CC_STAT_AREA] / (w * h) <= 0.35]
    if found:
        region = found[rng.randrange(len(found))]
        variant = "segment"
    else:
        region = np.asarray(_ellipse((w, h), _box(w, h, rng.uniform(0.08, 0.25), rng)), bool)
        variant = "ellipse"
    hsv = np.asarray(Image.fromarray(arr).convert("HSV")).astype(np.int32)
    hue, sat = hsv[..., 0], hsv[..., 1]
    if np.median(sat[region]) < 40:  # grey: a hue turn would not show, so tint it
        hue = np.full_like(hue, rng.randint(0, 255))
        sat = np.full_like(sat, rng.randint(90, 200))
        variant += "+tint"
    else:
        hue = (hue + round(rng.uniform(60, 300) / 360 * 256)) % 256
    new = np.stack([hue, sat, hsv[..., 2]], -1).astype(np.uint8)
    changed = Image.fromarray(new, "HSV").convert("RGB")
    alpha = Image.fromarray(region.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(rng.uniform(1, 3)))
    out = Image.composite(changed, Image.fromarray(arr), alpha)
    return Sample(out, _binary(alpha), [f"recolour:{variant}"])


PADS = {"story": 9 / 16, "square": 1.0, "portrait": 4 / 5, "wide": 16 / 9}  # canvas width / height


def pad(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A repost padded to a platform's frame, content unchanged: the whole photo, scaled to
    75-100 % of the fit, placed centred (else anywhere) on a 9:16 story, 1:1 square, 4:5
    portrait or 16:9 landscape canvas that differs from its own shape by at least 15 %; the
    rest filled with a blurred, zoomed copy of the photo itself (half, a third of those
    darkened), or plain black or white. Benign (the mask is empty); the variant names the
    frame and the fill, and a "box" tag where the photo lies on the canvas."""
    src = _rgb(img)
    w, h = src.size
    frames = [f for f, a in sorted(PADS.items()) if abs(np.log(a * h / w)) >= np.log(1.15)]
    frame = rng.choice(frames)
    aspect = PADS[frame]
    cw, ch = (w, round(w / aspect)) if w / h > aspect else (round(h * aspect), h)
    s = rng.uniform(0.75, 1.0)
    pw, ph = max(16, round(w * s)), max(16, round(h * s))
    fill = rng.choice(["blur", "blur", "dark", "plain"]) if rng.random() < 0.75 else "blur"
    if fill == "plain":
        canvas = Image.new("RGB", (cw, ch), rng.choice([(0, 0, 0), (255, 255, 255)]))
    else:
        z = max(cw / w, ch / h)
        big = src.resize((max(cw, round(w * z)), max(ch, round(h * z))), Image.BICUBIC)
        left, top = (big.width - cw) // 2, (big.height - ch) // 2
        canvas = big.crop((left, top, left + cw, top + ch)).filter(ImageFilter.GaussianBlur(max(cw, ch) * rng.uniform(0.02, 0.05)))
        if fill == "dark":
            canvas = ImageEnhance.Brightness(canvas).enhance(rng.uniform(0.4, 0.8))
    if rng.random() < 0.7:
        x, y = (cw - pw) // 2, (ch - ph) // 2
    else:
        x, y = rng.randint(0, cw - pw), rng.randint(0, ch - ph)
    canvas.paste(src.resize((pw, ph), Image.BICUBIC) if (pw, ph) != (w, h) else src, (x, y))
    return Sample(canvas, Image.new("L", canvas.size, 0), [f"pad:{frame}+{fill}", f"box{x},{y},{pw},{ph}"])


ANNOTATION_COLOURS = ((230, 30, 30), (255, 220, 0), (255, 255, 255), (30, 200, 60))


def annotate(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The photo marked up by hand, as shared to point at something: 1-4 marks in red, yellow,
    white or green, 0.6-1.6 % of the long side thick, each a circle or ellipse around a spot
    (6-30 % of the long side), an arrow pointing at one, a box, or a freehand scribble.
    Manipulated (drawn over); the mask is the strokes, the variant lists the marks."""
    base = _rgb(img).copy()
    w, h = base.size
    side = max(w, h)
    layer = Image.new("L", base.size, 0)
    draw, marks = ImageDraw.Draw(base), []
    mdraw = ImageDraw.Draw(layer)
    colour = rng.choice(ANNOTATION_COLOURS)
    for _ in range(rng.randint(1, 4)):
        width = max(2, round(side * rng.uniform(0.006, 0.016)))
        kind = rng.choice(["circle", "circle", "arrow", "box", "scribble"])
        r = side * rng.uniform(0.03, 0.15)
        cx, cy = rng.uniform(r, w - r) if w > 2 * r else w / 2, rng.uniform(r, h - r) if h > 2 * r else h / 2
        shapes: list[tuple[str, object]] = []
        if kind == "circle":
            rx, ry = r, r * rng.uniform(0.6, 1.4)
            shapes.append(("ellipse", (cx - rx, cy - ry, cx + rx, cy + ry)))
        elif kind == "box":
            rx, ry = r, r * rng.uniform(0.5, 1.5)
            shapes.append(("rect", (cx - rx, cy - ry, cx + rx, cy + ry)))
        elif kind == "arrow":
            ang = rng.uniform(0, 2 * np.pi)
            length = side * rng.uniform(0.12, 0.3)
            tx, ty = cx + length * np.cos(ang), cy + length * np.sin(ang)  # the tail; the head is at (cx, cy)
            head = length * 0.3
            shapes.append(("line", [(tx, ty), (cx, cy)]))
            for da in (0.5, -0.5):
                shapes.append(("line", [(cx, cy), (cx + head * np.cos(ang + da), cy + head * np.sin(ang + da))]))
        else:
            pts, (px, py) = [], (cx, cy)
            for _ in range(rng.randint(6, 14)):
                px = min(w - 1, max(0, px + rng.uniform(-r, r)))
                py = min(h - 1, max(0, py + rng.uniform(-r, r)))
                pts.append((px, py))
            shapes.append(("line", pts))
        for shape, xy in shapes:
            for d, fill in ((draw, colour), (mdraw, 255)):
                if shape == "ellipse":
                    d.ellipse(xy, outline=fill, width=width)  # type: ignore[arg-type]
                elif shape == "rect":
                    d.rectangle(xy, outline=fill, width=width)  # type: ignore[arg-type]
                else:
                    d.line(xy, fill=fill, width=width, joint="curve")  # type: ignore[arg-type]
        marks.append(kind)
    return Sample(base, _binary(layer), [f"annotate:{'+'.join(sorted(set(marks)))}"])


def _blob(size: tuple[int, int], rng: random.Random, feather: float = 1.5) -> Image.Image:
    """A cut-out's outline: 2-4 overlapping ellipses filling most of `size`, feathered."""
    w, h = size
    m = Image.new("L", size, 0)
    draw = ImageDraw.Draw(m)
    for _ in range(rng.randint(2, 4)):
        ew, eh = rng.uniform(0.45, 0.9) * w, rng.uniform(0.45, 0.9) * h
        x, y = rng.uniform(0, w - ew), rng.uniform(0, h - eh)
        draw.ellipse((x, y, x + ew, y + eh), fill=255)
    return m.filter(ImageFilter.GaussianBlur(feather)) if feather > 0 else m


def paste_small(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A small object from another photo added, as most joke and hoax edits do (a figure in
    the sky, a person in a crowd, a prop in a hand): 1-2 cut-outs from the middle of a donor
    (irregular outlines of 2-4 ellipses, feathered 1-2 px), each 1.5-8 % of the frame,
    colour-matched to the original half the time, placed anywhere."""
    base = _rgb(img).copy()
    w, h = base.size
    mask = Image.new("L", base.size, 0)
    donor = _rgb(donors[0])
    n = rng.randint(1, 2)
    for _ in range(n):
        x0, y0, x1, y1 = _box(w, h, rng.uniform(0.015, 0.08), rng)
        dw, dh = donor.size
        cw, ch = round(dw * rng.uniform(0.3, 0.6)), round(dh * rng.uniform(0.3, 0.6))
        cx, cy = round(dw / 2 + rng.uniform(-0.15, 0.15) * dw), round(dh / 2 + rng.uniform(-0.15, 0.15) * dh)
        left, top = min(max(0, cx - cw // 2), dw - cw), min(max(0, cy - ch // 2), dh - ch)
        patch = donor.crop((left, top, left + cw, top + ch)).resize((x1 - x0, y1 - y0), Image.BICUBIC)
        if rng.random() < 0.5:
            patch = _match_colour(patch, base.crop((x0, y0, x1, y1)))
        shape = _blob(patch.size, rng, rng.uniform(1.0, 2.0))
        base.paste(patch, (x0, y0), shape)
        mask.paste(255, (x0, y0), _binary(shape))
    return Sample(base, mask, [f"paste_small{n}"])


def tilt(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A tilted copy, content unchanged: turned by 3-20 degrees either way (a straightened
    horizon, a Dutch angle), then cropped to the largest upright box of its own shape inside
    the turned photo (half; a straighten tool's crop) or kept whole with the corners filled in
    black, white or a blurred copy of itself. Benign (the mask is empty); the variant names
    the finish."""
    src = _rgb(img)
    w, h = src.size
    deg = rng.uniform(3, 20) * rng.choice([-1, 1])
    finish = rng.choice(["crop", "crop", "black", "white", "blur"])
    if finish == "crop":
        a = np.radians(abs(deg))
        # the largest w:h box centred in a w x h frame turned by a: scale k with
        # k*(w*cos + h*sin) <= w and k*(w*sin + h*cos) <= h
        k = min(w / (w * np.cos(a) + h * np.sin(a)), h / (w * np.sin(a) + h * np.cos(a)))
        turned = src.rotate(deg, Image.BICUBIC, expand=False)
        cw, ch = max(16, int(w * k)), max(16, int(h * k))
        x, y = (w - cw) // 2, (h - ch) // 2
        out = turned.crop((x, y, x + cw, y + ch))
    else:
        turned = src.rotate(deg, Image.BICUBIC, expand=True, fillcolor=(0, 0, 0) if finish != "white" else (255, 255, 255))
        out = turned
        if finish == "blur":
            back = src.resize(turned.size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(max(turned.size) * 0.03))
            inside = Image.new("L", src.size, 255).rotate(deg, Image.NEAREST, expand=True)
            out = Image.composite(turned, back, inside)
    return Sample(out, Image.new("L", out.size, 0), [f"tilt:{finish}", f"deg{deg:.1f}"])


# the families `stack` draws from: each keeps the frame, so their masks add up
STACK_STEPS = ("paste_large", "paste_small", "head_swap", "multi_source", "copy_move_small", "recolour", "retouch",
               "caption", "annotate")


def stack(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Several edits stacked, as a contest entry is usually made: 2-3 edits in sequence, each
    from a different family of `STACK_STEPS` (an element pasted, a head swapped, a region
    recoloured or retouched, text or marks on top), then half the time a colour cast over the
    whole frame (each channel's gain 0.8-1.2, as a grade in an editor). The mask is the union
    of the steps' masks; the variant is the number of steps, the further tags name them."""
    out = _rgb(img)
    mask = np.zeros((out.height, out.width), bool)
    steps = rng.sample(STACK_STEPS, rng.randint(2, 3))
    for name in steps:
        s = FAMILIES[name].fn(out, donors, rng)
        out, mask = s.image, mask | (np.asarray(s.mask) > 127)
    tags = [f"stack:{len(steps)}", *steps]
    if rng.random() < 0.5:
        gain = np.array([rng.uniform(0.8, 1.2) for _ in range(3)], np.float32)
        out = Image.fromarray(np.clip(np.asarray(out, np.float32) * gain, 0, 255).astype(np.uint8))
        tags.append("cast")
    return Sample(out, Image.fromarray(mask.astype(np.uint8) * 255), tags)


def _subject(img: Image.Image, rng: random.Random) -> tuple[tuple[int, int, int, int], Image.Image, str]:
    """The photo's subject as an editor's selection tool cuts it: GrabCut (OpenCV, 4
    iterations at <= 320 px) from a box of 45-80 % of each side around the middle, its largest
    connected piece kept. Returns the box, the cut's alpha inside it (full resolution) and how
    it was cut: "grabcut", or "lasso" (a freehand-like outline of 2-4 ellipses) when GrabCut
    kept under 15 % or over 90 % of the box (no subject it could separate from the border)."""
    w, h = img.size
    bw, bh = round(w * rng.uniform(0.45, 0.8)), round(h * rng.uniform(0.45, 0.8))
    x0 = min(max(0, round((w - bw) / 2 + rng.uniform(-0.1, 0.1) * w)), w - bw)
    y0 = min(max(0, round((h - bh) / 2 + rng.uniform(-0.1, 0.1) * h)), h - bh)
    box = (x0, y0, x0 + bw, y0 + bh)
    s = min(1.0, 320 / max(w, h))
    small = np.ascontiguousarray(np.asarray(img.resize((max(8, round(w * s)), max(8, round(h * s))), Image.BILINEAR))[..., ::-1])
    rect = (round(x0 * s), round(y0 * s), max(2, round(bw * s)), max(2, round(bh * s)))
    labels = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(rng.randrange(2**31))  # GrabCut's k-means draws from OpenCV's generator
    cv2.grabCut(small, labels, rect, np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64), 4, cv2.GC_INIT_WITH_RECT)
    fg = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n > 1:
        fg = (comp == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    cut = Image.fromarray(fg * 255).resize((w, h), Image.BILINEAR).crop(box)
    share = float((np.asarray(cut) > 127).mean())
    if not 0.15 <= share <= 0.9:
        return box, _blob((bw, bh), rng, 0.0), "lasso"
    return box, cut.point(lambda v: 255 if v > 127 else 0), "grabcut"


def cutout(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The original's subject cut along its outline and placed into another scene, as contest
    entries do: the cut of `_subject`, mirrored (half the time), turned by 5-30 degrees either
    way (half the time), colour-matched to the scene (half the time), feathered 1-2 px, scaled
    so the cut covers 8-35 % of the donor scene (kept at its own size and shape; less when
    the cut would not fit), placed anywhere. The query is the donor's frame; the mask is everything that is not from the
    original. The variant names the cut and what was done to it ("grabcut+mirror+turn+match")."""
    src = _rgb(img)
    scene = _rgb(donors[0]).copy()
    box, alpha, how = _subject(src, rng)
    piece, tags = src.crop(box), [how]
    if rng.random() < 0.5:
        piece, alpha, tags = ImageOps.mirror(piece), ImageOps.mirror(alpha), tags + ["mirror"]
    if rng.random() < 0.5:
        deg = rng.uniform(5, 30) * rng.choice([-1, 1])
        piece, alpha, tags = piece.rotate(deg, Image.BICUBIC, expand=True), alpha.rotate(deg, Image.BILINEAR, expand=True), tags + ["turn"]
    sw, sh = scene.size
    cover = rng.uniform(0.08, 0.35)
    area = max(1.0, float((np.asarray(alpha) > 127).sum()))
    k = min((cover * sw * sh / area) ** 0.5, sw / piece.width, sh / piece.height)
    size = (max(8, round(piece.width * k)), max(8, round(piece.height * k)))
    piece, alpha = piece.resize(size, Image.BICUBIC), alpha.resize(size, Image.BILINEAR)
    if rng.random() < 0.5:
        piece, tags = _match_colour(piece, scene), tags + ["match"]
    alpha = alpha.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.0)))
    tx, ty = rng.randint(0, sw - size[0]), rng.randint(0, sh - size[1])
    scene.paste(piece, (tx, ty), alpha)
    kept = Image.new("L", scene.size, 0)
    kept.paste(_binary(alpha), (tx, ty))
    return Sample(scene, ImageOps.invert(kept), [f"cutout:{'+'.join(tags)}", f"cover{cover:.2f}"])


def resize_part(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A part of the photo scaled in place, as "big head" and "tiny person" contest entries do:
    an ellipse of 2-12 % of the frame (taller than wide half the time) either enlarged by
    1.4-2.5 about its own centre and laid over itself, feathered 2-4 px (two times in three;
    variant "grow"), or shrunk to 0.4-0.7 of its size with what it uncovers filled by OpenCV
    inpainting first (variant "shrink"). The mask marks what changed: the enlarged ellipse, or the
    whole original ellipse."""
    base = _rgb(img).copy()
    w, h = base.size
    aspect = (0.5, 0.9) if rng.random() < 0.5 else (0.9, 1.6)
    x0, y0, x1, y1 = _box(w, h, rng.uniform(0.02, 0.12), rng, aspect)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    piece = base.crop((x0, y0, x1, y1))
    shape = _ellipse(piece.size, (0, 0, piece.width - 1, piece.height - 1))
    mask = Image.new("L", base.size, 0)
    if rng.random() < 2 / 3:
        k, tag = rng.uniform(1.4, 2.5), "grow"
        feather = rng.uniform(2, 4)
    else:
        k, tag = rng.uniform(0.4, 0.7), "shrink"
        feather = 1.5
        hole = np.asarray(_ellipse(base.size, (x0, y0, x1 - 1, y1 - 1)), np.uint8)
        base = Image.fromarray(cv2.inpaint(np.ascontiguousarray(np.asarray(base)), hole, 7, cv2.INPAINT_TELEA))
        mask.paste(255, (0, 0), _ellipse(base.size, (x0, y0, x1 - 1, y1 - 1)))
    size = (max(8, round(piece.width * k)), max(8, round(piece.height * k)))
    piece = piece.resize(size, Image.BICUBIC)
    shape = shape.resize(size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(feather))
    at = (round(cx - size[0] / 2), round(cy - size[1] / 2))
    base.paste(piece, at, shape)  # PIL clips what falls outside the frame
    placed = Image.new("L", base.size, 0)
    placed.paste(_binary(shape), at)
    mask = ImageChops.lighter(mask, placed)
    return Sample(base, mask, [f"resize_part:{tag}", f"x{k:.2f}"])


def mirror_half(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A photo made symmetric, a contest staple: the frame split across its width (or, one time
    in four, its height) with the kept side 50-65 % of it, and the other side replaced by the kept
    side mirrored about the split. The mask marks the replaced side."""
    arr = np.asarray(_rgb(img)).copy()
    vertical = rng.random() < 0.25  # split across the height: top and bottom
    if vertical:
        arr = arr.transpose(1, 0, 2).copy()
    h, w = arr.shape[:2]
    keep = max((w + 1) // 2, round(w * rng.uniform(0.5, 0.65)))  # never under half: the mirror covers the rest
    left = rng.random() < 0.5  # keep the left side (columns [0, keep)), else the right one
    if not left:
        arr = arr[:, ::-1].copy()
    arr[:, keep:] = arr[:, keep - 1 - np.arange(w - keep)]
    mask = np.zeros((h, w), np.uint8)
    mask[:, keep:] = 255
    if not left:
        arr, mask = arr[:, ::-1], mask[:, ::-1]
    if vertical:
        arr, mask = arr.transpose(1, 0, 2), mask.T
    side = ("top" if left else "bottom") if vertical else ("left" if left else "right")
    return Sample(Image.fromarray(np.ascontiguousarray(arr)), Image.fromarray(np.ascontiguousarray(mask)),
                  [f"mirror_half:{side}"])


def clone(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """One part of the photo repeated across it (a crowd of one person, a flock of one bird): an
    ellipse of 3-10 % of the frame copied 2-4 times, each copy scaled by 0.6-1.3 and mirrored
    half the time, feathered 2 px, pasted anywhere in the frame. The mask marks the copies."""
    base = _rgb(img).copy()
    w, h = base.size
    x0, y0, x1, y1 = _box(w, h, rng.uniform(0.03, 0.10), rng)
    piece = base.crop((x0, y0, x1, y1))
    shape = _ellipse(piece.size, (0, 0, piece.width - 1, piece.height - 1))
    mask = Image.new("L", base.size, 0)
    n = rng.randint(2, 4)
    for _ in range(n):
        k = rng.uniform(0.6, 1.3)
        size = (max(8, min(w, round(piece.width * k))), max(8, min(h, round(piece.height * k))))
        p, m = piece.resize(size, Image.BICUBIC), shape.resize(size, Image.BILINEAR)
        if rng.random() < 0.5:
            p, m = ImageOps.mirror(p), ImageOps.mirror(m)
        m = m.filter(ImageFilter.GaussianBlur(2))
        at = (rng.randint(0, w - size[0]), rng.randint(0, h - size[1]))
        base.paste(p, at, m)
        mask.paste(255, at, _binary(m))
    return Sample(base, mask, [f"clone{n}"])


_WORDS = ("the", "this", "is", "why", "breaking", "news", "today", "look", "at", "what", "they", "did", "photo",
          "taken", "yesterday", "near", "city", "hall", "wow", "unbelievable", "share", "before", "deleted", "real",
          "footage", "from", "scene", "people", "said", "official", "report", "thread", "1/", "via", "source")


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def screenshot(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A phone screenshot of a social-media post, the photo unchanged inside: a portrait screen
    (width 540-720 px, 19.5:9 to 20:9), light or dark theme; a status bar (clock, signal and
    battery marks), the app's header bar, the post's header (an avatar disc, a name and a
    handle), 0-4 lines of post text, then the photo at the screen's width less margins of 0,
    12 or 24 px (on a 540-px screen; the layout scales with the screen), cropped by the app to
    at most 4:5 portrait or 1.91:1 landscape (centred), its corners rounded half the time it
    has margins; under it an action bar (icons and counts) and, half the time, the start of the
    next post (header, a line of text and the top of a donor photo) cut by the screen's edge.
    The post is scrolled so the photo starts 12-45 % down the screen. Benign (the photo shown
    is the original, cropped as the platform crops it); the variant names the theme, the crop
    and whether the next post shows."""
    src = _rgb(img)
    sw = rng.randint(540, 720)
    sh = round(sw * rng.uniform(19.5 / 9, 20 / 9))
    dark = rng.random() < 0.4
    bg, fg, dim = ((0, 0, 0), (236, 236, 236), (130, 130, 135)) if dark else ((255, 255, 255), (20, 20, 24), (110, 110, 118))
    screen = Image.new("RGB", (sw, sh), bg)
    draw = ImageDraw.Draw(screen)
    unit = sw / 540  # layout sizes scale with the screen

    def text(x: float, y: float, words: str, size: float, colour: tuple[int, int, int]) -> None:
        draw.text((round(x), round(y)), words, fill=colour, font=_font(round(size * unit)))

    # the photo as the app crops it
    w, h = src.size
    crop = "none"
    if h / w > 5 / 4:
        ch = round(w * 5 / 4)
        y = (h - ch) // 2
        src, crop = src.crop((0, y, w, y + ch)), "4:5"
    elif w / h > 1.91:
        cw = round(h * 1.91)
        x = (w - cw) // 2
        src, crop = src.crop((x, 0, x + cw, h)), "1.91:1"
    margin = rng.choice([0, 0, round(12 * unit), round(24 * unit)])
    pw = sw - 2 * margin
    ph = max(8, round(src.height * pw / src.width))
    photo = src.resize((pw, ph), Image.BICUBIC)
    rounded = margin > 0 and rng.random() < 0.5

    # the post laid out from the top of its header; scrolled so the photo starts 12-45 % down the screen
    lines = rng.randint(0, 4)
    header_h = round(64 * unit)
    line_h = round(26 * unit)
    photo_top_in_post = header_h + lines * line_h + round(8 * unit)
    photo_y = round(sh * rng.uniform(0.12, 0.45))
    post_y = photo_y - photo_top_in_post
    avatar = round(40 * unit)
    colour = tuple(rng.randint(40, 220) for _ in range(3))
    draw.ellipse((round(12 * unit), post_y + round(12 * unit), round(12 * unit) + avatar, post_y + round(12 * unit) + avatar),
                 fill=colour)
    text(64 * unit, post_y + 14 * unit, _words(rng, 2).title(), 17, fg)
    text(64 * unit, post_y + 36 * unit, "@" + _words(rng, 1) + str(rng.randint(1, 999)) + " · " + str(rng.randint(1, 23)) + "h",
         14, dim)
    for k in range(lines):
        text(14 * unit, post_y + header_h + k * line_h, _words(rng, rng.randint(4, 8)), 16, fg)
    if rounded:
        corner = Image.new("L", photo.size, 0)
        ImageDraw.Draw(corner).rounded_rectangle((0, 0, pw - 1, ph - 1), radius=round(14 * unit), fill=255)
        screen.paste(photo, (margin, photo_y), corner)
    else:
        screen.paste(photo, (margin, photo_y))
    bar_y = photo_y + ph + round(10 * unit)
    for k in range(4):  # reply, repost, like, share
        x = round((24 + k * 130) * unit)
        draw.ellipse((x, bar_y, x + round(18 * unit), bar_y + round(18 * unit)), outline=dim, width=max(1, round(2 * unit)))
        text(x + 26 * unit, bar_y, str(rng.randint(2, 9999)), 14, dim)
    next_post = rng.random() < 0.5
    if next_post:
        ny = bar_y + round(44 * unit)
        draw.line((0, ny - round(10 * unit), sw, ny - round(10 * unit)), fill=dim, width=1)
        draw.ellipse((round(12 * unit), ny, round(12 * unit) + avatar, ny + avatar),
                     fill=tuple(rng.randint(40, 220) for _ in range(3)))
        text(64 * unit, ny + 2 * unit, _words(rng, 2).title(), 17, fg)
        text(14 * unit, ny + header_h - 8 * unit, _words(rng, rng.randint(4, 8)), 16, fg)
        donor = _rgb(donors[0])
        dh = max(8, round(donor.height * pw / donor.width))
        screen.paste(donor.resize((pw, dh), Image.BICUBIC), (margin, ny + header_h + line_h))
    # what the phone draws over everything: the status bar and the app's header bar
    draw.rectangle((0, 0, sw, round(84 * unit)), fill=bg)
    text(20 * unit, 10 * unit, f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}", 16, fg)
    for k in range(3):
        x = sw - round((90 - k * 22) * unit)
        draw.rectangle((x, round(14 * unit), x + round(14 * unit), round(26 * unit)), fill=fg)
    draw.rectangle((sw - round(30 * unit), round(13 * unit), sw - round(10 * unit), round(27 * unit)), outline=fg)
    text(sw / 2 - 30 * unit, 48 * unit, rng.choice(("Home", "For you", "Post", "Feed")), 18, fg)
    draw.line((0, round(83 * unit), sw, round(83 * unit)), fill=dim, width=1)
    draw.rectangle((0, sh - round(56 * unit), sw, sh), fill=bg)  # the tab bar
    for k in range(5):
        x = round((36 + k * 104) * unit)
        draw.rectangle((x, sh - round(40 * unit), x + round(22 * unit), sh - round(18 * unit)), outline=fg,
                       width=max(1, round(2 * unit)))
    tags = f"screenshot:{'dark' if dark else 'light'}+{crop}" + ("+next" if next_post else "")
    return Sample(screen, Image.new("L", screen.size, 0), [tags])


def _halftone(arr: np.ndarray, cell: float, angles: tuple[float, ...]) -> np.ndarray:
    """Amplitude-modulated halftone of a (h, w, c) float image in 0..255: per channel, ink where the darkness
    exceeds a dot screen of period `cell` px turned by that channel's angle (the print's rosette)."""
    h, w, c = arr.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty_like(arr)
    for k in range(c):
        a = angles[k % len(angles)]
        u = (xx * np.cos(a) + yy * np.sin(a)) * (2 * np.pi / cell)
        v = (-xx * np.sin(a) + yy * np.cos(a)) * (2 * np.pi / cell)
        screen = 0.5 + 0.25 * (np.cos(u) + np.cos(v))  # 0..1, dots centred on the cells
        out[..., k] = np.where(1 - arr[..., k] / 255 > screen, 0.0, 255.0)
    return out


def newsprint(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The photo as printed in a newspaper, then scanned or photographed: a page of newsprint
    (paper R 225-245, G 222-242, B 211-231; dark grey ink), a headline, columns of text lines, the photo at 40-80 %
    of the page's width with a caption line under it; the photo halftoned (a dot screen of
    period 3-6 px, greyscale 40 % of the time, else four inks at the CMYK screen angles, ink
    at 85-95 % density) and the page softened (radius 0.6-1.4); then scanned (turned by up to
    2 degrees, even light) or photographed (each corner moved by up to 6 %, a light gradient of
    up to 30 %, sensor noise sigma 2-5). Benign: the photo printed is the original, the mask
    is empty."""
    src = _rgb(img)
    pw = rng.randint(560, 900)
    s = rng.uniform(0.4, 0.8)
    iw = round(pw * s)
    ih = max(8, round(src.height * iw / src.width))
    margin = round(pw * 0.05)
    head = round(pw * rng.uniform(0.08, 0.14))
    ph = head + ih + round(pw * rng.uniform(0.25, 0.6))
    paper = tuple(rng.randint(225, 245) - d for d in (0, 3, 14))
    page = Image.new("RGB", (pw, ph), paper)
    draw = ImageDraw.Draw(page)
    ink = (rng.randint(20, 45),) * 3
    draw.text((margin, round(head * 0.15)), _words(rng, rng.randint(3, 6)).upper(), fill=ink,
              font=_font(round(head * 0.45)))
    x = margin if rng.random() < 0.5 else pw - margin - iw
    y = head
    # the photo, halftoned
    photo = np.asarray(src.resize((iw, ih), Image.BICUBIC), np.float32)
    grey = rng.random() < 0.4
    cell = rng.uniform(3, 6)
    density = rng.uniform(0.85, 0.95)
    if grey:
        g = photo @ np.array([0.299, 0.587, 0.114], np.float32)
        dots = _halftone(g[..., None], cell, (np.pi / 4,))[..., 0]
        printed = np.stack([np.where(dots > 0, paper[k], paper[k] * (1 - density)) for k in range(3)], -1)
    else:
        cmy = 255 - photo  # ink amounts; black drawn from their common part
        k_ink = cmy.min(-1, keepdims=True) * 0.5
        inks = np.concatenate([cmy - k_ink, k_ink], -1)
        dots = _halftone(255 - inks, cell, (np.radians(15), np.radians(75), 0.0, np.radians(45)))
        cover = (dots < 128).astype(np.float32) * density  # where each ink lies
        paper_rgb = np.array(paper, np.float32)
        printed = paper_rgb * (1 - cover[..., :3]) * (1 - cover[..., 3:4])  # subtractive: C, M, Y, then K
    page.paste(Image.fromarray(np.clip(printed, 0, 255).astype(np.uint8)), (x, y))
    draw.text((x, y + ih + 6), _words(rng, rng.randint(5, 9)).capitalize(), fill=ink, font=_font(max(10, pw // 60)))
    # text columns beside and under the photo
    line = max(10, pw // 48)
    cols = [(margin, pw - margin)] if iw > pw - 3 * margin else [(margin, x - margin), (x + iw + margin, pw - margin)]
    for y0, y1, spans in ((head, head + ih, cols), (head + ih + line * 3, ph - margin, [(margin, pw - margin)])):
        for a, b in spans:
            if b - a < 4 * line:
                continue
            for ty in range(y0, y1 - line, line + line // 2):
                end = b if rng.random() < 0.85 else a + rng.randint((b - a) // 3, b - a)
                draw.rectangle((a, ty, end, ty + line // 2), fill=tuple(min(255, c + 60) for c in ink))
    page = page.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.4)))
    arr = np.asarray(page, np.float32)
    how = "scanned" if rng.random() < 0.5 else "photographed"
    if how == "scanned":
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).rotate(rng.uniform(-2, 2), Image.BICUBIC,
                                                                           expand=True, fillcolor=(250, 250, 250))
    else:
        h, w = arr.shape[:2]
        quad = [(cx + rng.uniform(-0.06, 0.06) * w, cy + rng.uniform(-0.06, 0.06) * h)
                for cx, cy in ((0, 0), (w, 0), (w, h), (0, h))]
        gx = np.linspace(1.0, 1.0 - rng.uniform(0, 0.3), w, dtype=np.float32)[None, :, None]
        arr = arr * (gx if rng.random() < 0.5 else gx[:, ::-1])
        arr += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 5), arr.shape).astype(np.float32)
        page2 = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        out = page2.transform((w, h), Image.PERSPECTIVE, _perspective(quad, w, h), Image.BICUBIC)
    return Sample(out, Image.new("L", out.size, 0), [f"newsprint:{'grey' if grey else 'cmyk'}+{how}"])


def distort(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Photoshop's Distort filters over a large part of the photo, as contest entries bend a
    head, a belly or a building: a disc of radius 20-45 % of the short side, centred in the
    middle half of the frame, spherized (its middle magnified: content at radius r comes from
    R (r / R)^p, p 1.3-2.2; variant "spherize"), pinched (p 0.5-0.75; "pinch") or twirled
    (turned by a (1 - r / R)^2, a 1-3 radians either way; "twirl"), a third each. Nothing comes
    from another photo; the mask marks where the content moved by 1 px or more."""
    arr = np.ascontiguousarray(np.asarray(_rgb(img)))
    h, w = arr.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tag = rng.choice(["spherize", "pinch", "twirl"])
    radius = rng.uniform(0.2, 0.45) * min(w, h)
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    dx, dy = xx - cx, yy - cy
    r = np.hypot(dx, dy)
    inside = r < radius
    t = np.minimum(r / radius, 1.0)
    if tag == "twirl":
        a = rng.choice([-1, 1]) * rng.uniform(1.0, 3.0) * (1 - t) ** 2
        src_x, src_y = cx + np.cos(a) * dx - np.sin(a) * dy, cy + np.sin(a) * dx + np.cos(a) * dy
    else:
        p = rng.uniform(1.3, 2.2) if tag == "spherize" else rng.uniform(0.5, 0.75)
        k = np.power(np.maximum(t, 1e-6), p - 1)  # r_src / r
        src_x, src_y = cx + dx * k, cy + dy * k
    src_x = np.where(inside, src_x, xx).astype(np.float32)
    src_y = np.where(inside, src_y, yy).astype(np.float32)
    out = cv2.remap(arr, src_x, src_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    moved = np.hypot(src_x - xx, src_y - yy) >= 1.0
    return Sample(Image.fromarray(out), Image.fromarray((moved * 255).astype(np.uint8)), [f"distort:{tag}"])


def inset(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The whole photo shown inside another one, seen at an angle: on a billboard, a TV in a
    room, a framed print on a wall, as contest entries and news graphics place it. The photo,
    framed half the time (a border of 2-5 % of its size, near black or near white), fills a
    quadrilateral of 12-40 % of a donor scene's area (the scene at the photo's size), its
    corners moved by up to 12 % of the quad's size (perspective), lit by a gradient of 0.7-1.05
    across it and softened by 0-1 px. The mask marks all that is not the photo: the scene and
    the border (variant "framed" or "bare")."""
    src = _rgb(img)
    w, h = src.size
    framed = rng.random() < 0.5
    if framed:
        b = max(2, round(rng.uniform(0.02, 0.05) * max(w, h)))
        shade = rng.randint(5, 40) if rng.random() < 0.5 else rng.randint(215, 250)
        pic = ImageOps.expand(src, border=b, fill=(shade,) * 3)
        photo = Image.new("L", pic.size, 0)
        photo.paste(255, (b, b, b + w, b + h))
    else:
        pic, photo = src, Image.new("L", src.size, 255)
    scene = _rgb(donors[0]).resize((w, h), Image.BICUBIC)
    area = rng.uniform(0.12, 0.40) * w * h
    qh = min(h * 0.95, (area * pic.height / pic.width) ** 0.5)
    qw = min(w * 0.95, qh * pic.width / pic.height)
    x0, y0 = rng.uniform(0, w - qw), rng.uniform(0, h - qh)
    j = rng.uniform(0.03, 0.12)
    quad = [(x0 + dx * qw + rng.uniform(-j, j) * qw, y0 + dy * qh + rng.uniform(-j, j) * qh)
            for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))]
    coeffs = _perspective(quad, pic.width, pic.height)
    warped = pic.transform((w, h), Image.PERSPECTIVE, coeffs, Image.BICUBIC)
    alpha = Image.new("L", pic.size, 255).transform((w, h), Image.PERSPECTIVE, coeffs, Image.BILINEAR)
    shown = photo.transform((w, h), Image.PERSPECTIVE, coeffs, Image.NEAREST)
    light = np.linspace(rng.uniform(0.7, 1.05), rng.uniform(0.7, 1.05), w, dtype=np.float32)
    lit = np.asarray(warped, np.float32) * (light[None, :, None] if rng.random() < 0.5 else light[::-1][None, :, None])
    warped = Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))
    out = Image.composite(warped, scene, alpha)
    mask = ImageOps.invert(_binary(shown))
    return Sample(out, mask, [f"inset:{'framed' if framed else 'bare'}"])


def double_exposure(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """Another photo blended into this one, as double-exposure art and contest entries layer
    two pictures: the donor (at the photo's size) shows through a soft region, either an
    ellipse inscribed in a box of 25-70 % of the frame, feathered by 10-25 % of its short side (variant "disc") or
    a linear ramp across the frame in any direction, from nothing to full over 40-100 % of it
    (variant "ramp"); its opacity at most 0.45-0.9; blended normally, with Photoshop's "screen"
    (1 - (1 - a)(1 - b): light parts of the donor lighten) or "multiply" (a b: dark parts
    darken), a third each (the second tag). The mask marks where the result differs from the
    photo visibly (by more than 24 of 255 in a channel)."""
    src = np.asarray(_rgb(img), np.float32) / 255
    h, w = src.shape[:2]
    donor = np.asarray(_rgb(donors[0]).resize((w, h), Image.BICUBIC), np.float32) / 255
    top = rng.uniform(0.45, 0.9)
    if rng.random() < 0.5:
        tag = "disc"
        x0, y0, x1, y1 = _box(w, h, rng.uniform(0.25, 0.7), rng, aspect=(0.6, 1.6))
        feather = rng.uniform(0.10, 0.25) * min(w, h)
        alpha = np.asarray(_ellipse((w, h), (x0, y0, x1, y1), feather=feather), np.float32) / 255
    else:
        tag = "ramp"
        theta = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        proj = (xx - w / 2) * np.cos(theta) + (yy - h / 2) * np.sin(theta)
        span = rng.uniform(0.4, 1.0) * float(proj.max() - proj.min())
        start = float(proj.min()) + rng.uniform(0, float(proj.max() - proj.min()) - span)
        alpha = np.clip((proj - start) / span, 0, 1)
    mode = rng.choice(["normal", "screen", "multiply"])
    layer = {"normal": donor, "screen": 1 - (1 - src) * (1 - donor), "multiply": src * donor}[mode]
    a = (alpha * top)[..., None]
    out = np.clip((src * (1 - a) + layer * a) * 255 + 0.5, 0, 255).astype(np.uint8)
    changed = np.abs(out.astype(np.int16) - np.round(src * 255).astype(np.int16)).max(-1) > 24
    return Sample(Image.fromarray(out), Image.fromarray(changed.astype(np.uint8) * 255),
                  [f"double_exposure:{tag}", mode])


def popart(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """The photo repeated in a grid of tinted tiles, as pop-art posters and meme templates
    print it: 2x2 (three times in five), 1x2 / 2x1 (the long way) or 3x3 tiles in the photo's own frame, gutters of
    0-3 % of its short side in black or white; every tile the whole photo at the tile's size,
    posterized to 2-4 bits then colourised between a dark and a bright colour of its own
    (a different pair per tile), a quarter of the tiles mirrored. Content unchanged, so the
    mask is empty; the variant names the grid."""
    src = _rgb(img)
    w, h = src.size
    cols, rows = rng.choice([(2, 2), (2, 2), (2, 2), (1, 2) if h >= w else (2, 1), (3, 3)])
    gutter = round(rng.uniform(0, 0.03) * min(w, h))
    canvas = Image.new("RGB", (w, h), (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255))
    tw, th = max(8, (w - gutter * (cols + 1)) // cols), max(8, (h - gutter * (rows + 1)) // rows)
    tile = src.resize((tw, th), Image.LANCZOS)
    for r in range(rows):
        for c in range(cols):
            grey = ImageOps.posterize(ImageOps.grayscale(tile), rng.randint(2, 4))
            dark = tuple(rng.randint(0, 110) for _ in range(3))
            bright = tuple(rng.randint(150, 255) for _ in range(3))
            t = ImageOps.colorize(grey, dark, bright).convert("RGB")
            if rng.random() < 0.25:
                t = ImageOps.mirror(t)
            canvas.paste(t, (gutter + c * (tw + gutter), gutter + r * (th + gutter)))
    return Sample(canvas, Image.new("L", (w, h), 0), [f"popart:{cols}x{rows}"])


def glitch(img: Image.Image, donors: Donors, rng: random.Random) -> Sample:
    """A glitch-art filter, as shared on social media: the red and blue channels shifted
    sideways by 2-3 % of the width in opposite directions (chromatic split), 4-12 horizontal
    bands (each 1-8 % of the height) displaced sideways by up to 10 % of the width (wrapping
    round), and half the time scanlines (every other row darkened by 15-40 %). Nothing comes
    from elsewhere and nothing is drawn over, so the mask is empty (an appearance filter, as
    `stylise`); the variant says whether scanlines were drawn."""
    arr = np.asarray(_rgb(img)).copy()
    h, w = arr.shape[:2]
    d = max(1, round(rng.uniform(0.02, 0.03) * w))
    arr[..., 0] = np.roll(arr[..., 0], d, axis=1)
    arr[..., 2] = np.roll(arr[..., 2], -d, axis=1)
    for _ in range(rng.randint(4, 12)):
        bh = max(1, round(rng.uniform(0.01, 0.08) * h))
        y = rng.randint(0, h - bh)
        shift = round(rng.uniform(-0.1, 0.1) * w)
        arr[y:y + bh] = np.roll(arr[y:y + bh], shift, axis=1)
    lines = rng.random() < 0.5
    if lines:
        arr[::2] = (arr[::2].astype(np.float32) * (1 - rng.uniform(0.15, 0.4))).astype(np.uint8)
    return Sample(Image.fromarray(arr), Image.new("L", (w, h), 0), [f"glitch:{'scanlines' if lines else 'plain'}"])


@dataclass(frozen=True)
class EditFamily:
    name: str
    fn: Callable[[Image.Image, Donors, random.Random], Sample]
    kind: str  # the benchmark kind: "manip" (content changed) or "benign" (appearance only)
    donors: int = 0  # other photos it needs

    @property
    def description(self) -> str:
        return (self.fn.__doc__ or "").split("\n\n")[0].replace("\n", " ")


FAMILIES: dict[str, EditFamily] = {
    f.name: f
    for f in (
        EditFamily("paste_large", paste_large, "manip", 1),
        EditFamily("transplant", transplant, "manip", 1),
        EditFamily("background_swap", background_swap, "manip", 1),
        EditFamily("multi_source", multi_source, "manip", 3),
        EditFamily("head_swap", head_swap, "manip", 2),
        EditFamily("meme", meme, "manip", 1),
        EditFamily("caption", caption, "manip", 0),
        EditFamily("copy_move_small", copy_move_small, "manip", 0),
        EditFamily("collage", collage, "manip", 3),
        EditFamily("stylise", stylise, "benign", 0),
        EditFamily("screen", screen, "benign", 1),  # added after the others: their queries stayed the same
        EditFamily("retouch", retouch, "manip", 0),  # last, for the same reason
        EditFamily("reframe", reframe, "benign", 0),  # after retouch, for the same reason
        EditFamily("recolour", recolour, "manip", 0),  # after reframe, for the same reason
        EditFamily("pad", pad, "benign", 0),  # after recolour, for the same reason
        EditFamily("annotate", annotate, "manip", 0),  # after pad, for the same reason
        EditFamily("paste_small", paste_small, "manip", 1),  # after annotate, for the same reason
        EditFamily("tilt", tilt, "benign", 0),  # after paste_small, for the same reason
        EditFamily("stack", stack, "manip", 3),  # after tilt, for the same reason
        EditFamily("cutout", cutout, "manip", 1),  # after stack, for the same reason
        EditFamily("resize_part", resize_part, "manip", 0),  # after cutout, for the same reason
        EditFamily("mirror_half", mirror_half, "manip", 0),
        EditFamily("clone", clone, "manip", 0),
        EditFamily("screenshot", screenshot, "benign", 1),  # after clone, for the same reason
        EditFamily("newsprint", newsprint, "benign", 0),  # after screenshot, for the same reason
        EditFamily("distort", distort, "manip", 0),  # after newsprint, for the same reason
        EditFamily("inset", inset, "manip", 1),  # after distort, for the same reason
        EditFamily("double_exposure", double_exposure, "manip", 1),  # after inset, for the same reason
        EditFamily("popart", popart, "benign", 0),
        EditFamily("glitch", glitch, "benign", 0),
    )
}
# Whole families kept out of training, to measure generalisation to unseen kinds of edit.
HELD_OUT_FAMILIES = (
    "transplant", "meme", "head_swap", "stylise", "screen", "retouch", "reframe", "recolour", "pad", "annotate",
    "paste_small", "tilt", "stack", "cutout", "resize_part", "mirror_half", "clone", "screenshot", "newsprint",
    "distort", "inset", "double_exposure", "popart", "glitch",
)
TRAIN_FAMILIES = tuple(f for f in FAMILIES if f not in HELD_OUT_FAMILIES)


def finish(s: Sample, rng: random.Random) -> Sample:
    """What sharing does after editing, each step with its probability: mirror (0.2),
    non-uniform rescale (0.3, aspect x0.8-1.25, 40-100 % size), grade (0.3), crop (0.3,
    70-95 % of the area); always a JPEG re-encode (quality 20-95). The mask follows."""
    img, mask, ops = s.image, s.mask, list(s.ops)
    if rng.random() < 0.2:
        img, mask, ops = ImageOps.mirror(img), ImageOps.mirror(mask), ops + ["mirror"]
    if rng.random() < 0.3:
        w, h = img.size
        f, a = rng.uniform(0.4, 1.0), rng.uniform(0.8, 1.25)
        size = (max(16, round(w * f * a)), max(16, round(h * f)))
        img, mask, ops = img.resize(size, Image.BICUBIC), mask.resize(size, Image.NEAREST), ops + ["aspect"]
    if rng.random() < 0.3:
        img = ImageEnhance.Color(ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.4))).enhance(rng.uniform(0.6, 1.5))
        ops.append("grade")
    if rng.random() < 0.3:
        w, h = img.size
        area = rng.uniform(0.7, 0.95)
        cw, ch = max(16, round(w * area**0.5)), max(16, round(h * area**0.5))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img, mask, ops = img.crop((x, y, x + cw, y + ch)), mask.crop((x, y, x + cw, y + ch)), ops + ["crop"]
    return jpeg(Sample(img, mask, ops), rng)


def variant(s: Sample) -> str:
    """The family's variant of an edit when its first tag names one ("retouch:inpaint+liquify"
    -> "inpaint+liquify"), else "": benchmarks report verdicts per variant."""
    head = s.ops[0] if s.ops else ""
    return head.split(":", 1)[1] if ":" in head else ""


def make_edit(family: str, img: Image.Image, donors: Donors, rng: random.Random, *, finished: bool = True) -> Sample:
    """One edit of `family` (then `finish`, unless `finished` is False)."""
    fam = FAMILIES[family]
    if len(donors) < fam.donors:
        raise ValueError(f"{family} needs {fam.donors} donor photos, got {len(donors)}")
    s = fam.fn(img, donors, rng)
    return finish(s, rng) if finished else s
