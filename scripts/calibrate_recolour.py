"""Calibrate stage 3's recoloured-region measure (`localise.recoloured`: CHROMA_LEVEL and the
share `change.RECOLOUR_SHARE`) on `train` photos only.

ChangeNet misses many local recolourings (a hue turned, an object tinted or made grey): no
texture changes. Six kinds of pair are made from `train` photos: local recolourings by a
generator written here, apart from the held-out `recolour` family (a union of ellipses or a
polygon, 3-30 % of the frame, through a channel swap, channel gains, a YIQ hue turn, a colour
splash (made grey) or a flat tint); copies graded throughout (`training.grades`); copies
filtered throughout by filters written here, apart from the held-out `stylise` family
(`filter_throughout`); plain benign copies (`augment.benign`); manipulations
(`augment.manipulate`, some with benign transforms after them); edits of the trainable families. Each is aligned and judged as the service does;
for each chroma level and share, one row of pairs called manipulated (ChangeNet, or a recoloured
region of at least that share of the covered frame).

    python scripts/calibrate_recolour.py --shared ../shared --n 600 --seed 1 --levels 8 --shares 0.02,0.03 --rests 0.06,0.09,0.12,1
"""

from __future__ import annotations

import argparse
import collections
import random
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from verifier.simprov import augment, edits
from verifier.simprov.change import ChangeDetector
from verifier.simprov.localise import CHROMA_DEGREE, REST_FAR_MAX, recoloured
from verifier.simprov.pairs import View, align_pair, aligned_frame
from verifier.training.data import in_turn, jpeg_copy
from verifier.training.grades import grade

KINDS = ("recoloured", "graded copy", "filtered copy", "benign copy", "manipulation", "family edit")
COLOURINGS = ("swap", "gains", "yiq", "splash", "tint")
FILTERS = ("bits", "edge-preserving", "stylization", "mosaic", "bilateral")


def _region(w: int, h: int, rng: random.Random) -> Image.Image:
    """A union of 1-3 ellipses or one 5-9 sided polygon, 3-30 % of the frame, 1-3 px feather."""
    target = rng.uniform(0.03, 0.3) * w * h
    m = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(m)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            r = (target / np.pi) ** 0.5 * rng.uniform(0.6, 1.0)
            a = rng.uniform(0.6, 1.6)
            x, y = cx + rng.uniform(-0.5, 0.5) * r, cy + rng.uniform(-0.5, 0.5) * r
            draw.ellipse((x - r * a, y - r / a, x + r * a, y + r / a), fill=255)
    else:
        k = rng.randint(5, 9)
        r = (target / np.pi) ** 0.5 * 1.15
        pts = [(cx + r * rng.uniform(0.6, 1.3) * np.cos(t), cy + r * rng.uniform(0.6, 1.3) * np.sin(t))
               for t in sorted(rng.uniform(0, 2 * np.pi) for _ in range(k))]
        draw.polygon(pts, fill=255)
    return m.filter(ImageFilter.GaussianBlur(rng.uniform(1, 3)))


def recolour_locally(img: Image.Image, rng: random.Random) -> Image.Image:
    """One colouring (COLOURINGS) of a `_region`, then JPEG 50-95."""
    a = np.asarray(img, np.float32)
    how = rng.choice(COLOURINGS)
    if how == "swap":
        out = a[..., rng.choice([[1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 2, 1], [1, 0, 2]])]
    elif how == "gains":
        out = a * np.array([rng.choice([rng.uniform(0.4, 0.7), rng.uniform(1.4, 1.9)]) for _ in range(3)], np.float32)
    elif how == "yiq":
        yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
        t = np.deg2rad(rng.uniform(60, 300))
        rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]], np.float32)
        out = a @ (np.linalg.inv(yiq) @ rot @ yiq).T
    elif how == "splash":
        out = np.repeat((a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, -1)
    else:
        colour = np.array([rng.uniform(0, 255) for _ in range(3)], np.float32)
        out = (a @ np.array([0.299, 0.587, 0.114], np.float32))[..., None] / 255 * colour * rng.uniform(1.0, 1.6)
    alpha = np.asarray(_region(img.width, img.height, rng), np.float32)[..., None] / 255
    mixed = Image.fromarray(np.clip(a * (1 - alpha) + out * alpha, 0, 255).astype(np.uint8))
    return jpeg_copy(mixed, rng.randint(50, 95))


def filter_throughout(img: Image.Image, rng: random.Random) -> Image.Image:
    """One filter over the whole copy that no global colour map undoes, written apart from the
    held-out `stylise` family: bit-depth reduction (2-5 bits a channel), OpenCV's
    edge-preserving filter or stylization, a mosaic (4-8 px cells), a strong bilateral filter;
    then JPEG 60-95."""
    a = np.asarray(img)
    how = rng.choice(FILTERS)
    if how == "bits":
        step = 256 // 2 ** rng.randint(2, 5)
        out = (a // step * step + step // 2).astype(np.uint8)
    elif how == "edge-preserving":
        out = cv2.edgePreservingFilter(a, flags=rng.choice([1, 2]), sigma_s=rng.uniform(30, 90), sigma_r=rng.uniform(0.3, 0.6))
    elif how == "stylization":
        out = cv2.stylization(a, sigma_s=rng.uniform(30, 90), sigma_r=rng.uniform(0.3, 0.6))
    elif how == "mosaic":
        cell = rng.randint(4, 8)
        h, w = a.shape[:2]
        small = cv2.resize(a, (max(1, w // cell), max(1, h // cell)), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:
        out = cv2.bilateralFilter(a, 9, rng.uniform(60, 150), rng.uniform(10, 30))
    return jpeg_copy(Image.fromarray(out), rng.randint(60, 95))


def pairs(shared: Path, n: int, seed: int) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    """(kind, query, original) from `train` photos."""
    rng = random.Random(seed)
    for kind, img, donor in in_turn(shared, KINDS, n, rng):
        if kind == "recoloured":
            yield kind, recolour_locally(img, rng), img
        elif kind == "graded copy":
            g, ops = grade(img, rng)
            yield kind, augment.jpeg(augment.Sample(g, Image.new("L", g.size, 0), ops), rng).image, img
        elif kind == "filtered copy":
            yield kind, filter_throughout(img, rng), img
        elif kind == "benign copy":
            yield kind, augment.benign(img, rng, n_ops=rng.randint(1, 2)).image, img
        elif kind == "manipulation":
            s = augment.manipulate(img, donor(), rng)
            yield kind, (augment.benign_after(s, rng) if rng.random() < 0.5 else s).image, img
        else:
            fam = rng.choice(edits.TRAIN_FAMILIES)
            donors = [donor() for _ in range(edits.FAMILIES[fam].donors)]
            yield kind, edits.make_edit(fam, img, donors, rng).image, img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=600, help="pairs, a sixth of each kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--levels", default="8,12,16,24", help="chroma levels (Lab a*b* units)")
    ap.add_argument("--shares", default="0.01,0.02,0.04,0.08", help="least share of the covered frame")
    ap.add_argument("--degree", type=int, default=CHROMA_DEGREE, help="the global colour map's polynomial degree")
    ap.add_argument("--rests", default=str(REST_FAR_MAX), help="most shares of the rest of the frame that may depart too")
    args = ap.parse_args()
    det = ChangeDetector.packaged()
    assert det is not None, "ChangeNet weights are not packaged"
    levels = [float(v) for v in args.levels.split(",")]
    shares = [float(v) for v in args.shares.split(",")]
    rests = [float(v) for v in args.rests.split(",")]
    looks = [(lv, rest) for lv in levels for rest in rests]
    rows: dict[str, list[tuple[bool, dict[tuple[float, float], float]]]] = collections.defaultdict(list)
    made: collections.Counter[str] = collections.Counter()
    for kind, query, original in pairs(args.shared, args.n, args.seed):
        made[kind] += 1
        qv, cv = View.of(query), View.of(original)
        pair = align_pair(qv, cv)
        if not pair.alignment.global_ok:
            continue  # a weak fit's pixels do not correspond: the service does not measure it
        frame = aligned_frame(pair, qv, cv)
        called = det.judge(pair, frame).p_manipulated >= 0.5
        taken = det.recolour(pair, frame, query.size) is not None  # where the service takes the measure
        rows[kind].append((called, {(lv, rest): recoloured(frame, lv, args.degree, rest).share if taken else 0.0 for lv, rest in looks}))

    def cells(pick) -> str:  # type: ignore[no-untyped-def]
        return " | ".join(f"{sum(pick(c, s) for c, s in rows[k])} / {len(rows[k])}" for k in KINDS)

    print("| chroma level | rest departing at most | least share | " + " | ".join(f"{k} called manipulated" for k in KINDS) + " |")
    print("|---|---|---|" + "---|" * len(KINDS))
    print("| (ChangeNet alone) | | | " + cells(lambda c, s: c) + " |")
    for look in looks:
        for sh in shares:
            print(f"| {look[0]:g} | {look[1]:g} | {sh:g} | " + cells(lambda c, s, look=look, sh=sh: c or s[look] >= sh) + " |")
    print("| pairs made (aligned above) | | | " + " | ".join(str(made[k]) for k in KINDS) + " |")


if __name__ == "__main__":
    main()
