"""Pieces of a photo placed into another photo: the generator written for the local-feature
vote's calibration (`scripts/calibrate_min_votes.py`), apart from the held-out `transplant` and
`cutout` families, and used on `train` photos only (a lasso-like polygon of 6-30 % of the
original, turned up to 15 degrees and mirrored one time in five, covering 4-20 % of another
photo's frame, then resized to 60-100 % half the time and JPEG 60-95)."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from verifier.training.data import jpeg_copy


def _lasso(w: int, h: int, share: float, rng: random.Random) -> tuple[tuple[int, int, int, int], Image.Image]:
    """A 6-11 sided polygon around a random centre of about `share` of the frame: its box and its
    mask over that box (255 inside)."""
    r = (share * w * h / np.pi) ** 0.5
    cx, cy = rng.uniform(min(r, w / 2), max(w - r, w / 2)), rng.uniform(min(r, h / 2), max(h - r, h / 2))
    k = rng.randint(6, 11)
    pts = [(cx + r * rng.uniform(0.6, 1.4) * np.cos(t), cy + r * rng.uniform(0.6, 1.4) * np.sin(t))
           for t in sorted(rng.uniform(0, 2 * np.pi) for _ in range(k))]
    pts = [(min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)) for x, y in pts]
    x0, y0 = int(min(x for x, _ in pts)), int(min(y for _, y in pts))
    x1, y1 = int(max(x for x, _ in pts)) + 1, int(max(y for _, y in pts)) + 1
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).polygon([(x - x0, y - y0) for x, y in pts], fill=255)
    return (x0, y0, x1, y1), mask


def piece_into(original: Image.Image, scene: Image.Image, rng: random.Random) -> Image.Image:
    """A piece of `original` placed into `scene` (module docstring)."""
    return shared_copy(placed_piece(original, scene, rng)[0], rng)


def placed_piece(original: Image.Image, scene: Image.Image, rng: random.Random
                 ) -> tuple[Image.Image, Image.Image, tuple[int, int, int, int]]:
    """`piece_into` before sharing, with where the piece lies: the composite, the piece's mask over
    the scene's frame (255 inside) and its box in `original`; what a trainer needs to know which
    part of the query shows which part of the original."""
    box, mask = _lasso(original.width, original.height, rng.uniform(0.06, 0.3), rng)
    piece = original.crop(box)
    if rng.random() < 0.2:
        piece, mask = ImageOps.mirror(piece), ImageOps.mirror(mask)
    angle = rng.uniform(-15, 15)
    piece = piece.rotate(angle, resample=Image.BICUBIC, expand=True)
    mask = mask.rotate(angle, resample=Image.BILINEAR, expand=True)
    cover = rng.uniform(0.04, 0.2) * scene.width * scene.height
    s = (cover / max(1.0, float(np.asarray(mask, np.float32).mean() / 255) * piece.width * piece.height)) ** 0.5
    size = (max(8, min(scene.width, round(piece.width * s))), max(8, min(scene.height, round(piece.height * s))))
    piece, mask = piece.resize(size, Image.BICUBIC), mask.resize(size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(1.5))
    out = scene.copy()
    at = (rng.randint(0, scene.width - size[0]), rng.randint(0, scene.height - size[1]))
    out.paste(piece, at, mask)
    where = Image.new("L", scene.size, 0)
    where.paste(mask, at)
    return out, where, box


def shared_copy(img: Image.Image, rng: random.Random) -> Image.Image:
    """What sharing does: resized to 60-100 % half the time, then JPEG 60-95."""
    if rng.random() < 0.5:
        f = rng.uniform(0.6, 1.0)
        img = img.resize((max(16, round(img.width * f)), max(16, round(img.height * f))), Image.BICUBIC)
    return jpeg_copy(img, rng.randint(60, 95))
