"""Calibrate stage 3's local-change measure (`localise.local_change`: NOISE/EDGE allowances, the
share `change.LOCAL_CHANGE_SHARE`) on `train` photos only.

ChangeNet, which sees the pair at 112 px, calls some small edits benign although they are
aligned and found (issue 17: small pastes, marks, small copy-moves). Seven kinds of pair are made
from `train` photos: small edits by a generator written here, apart from the held-out
`paste_small` and `annotate` families and from the trainable `copy_move_small` (`small_edit`: a
cut-out pasted from another photo, a region copied within the photo, a region removed by
in-painting, or strokes drawn; 0.3-6 % of the frame); plain benign copies (`augment.benign`,
small text overlays included); copies graded throughout (`training.grades`); copies filtered
throughout (`training.grades.filter_throughout`); copies resized hard or noised
(`degraded_copy`); manipulations (`augment.manipulate`); edits of the trainable families. Each
is aligned and judged as the service does; for each allowance and share, one row of pairs
called manipulated (ChangeNet, or one local change of at least that share of the covered frame).

    python scripts/calibrate_local_change.py --shared ../shared --n 700 --seed 1
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
from verifier.simprov.localise import (
    LOCAL_EDGE,
    LOCAL_NOISE,
    LOCAL_REST_MAX,
    local_change,
)
from verifier.simprov.pairs import View, align_pair, aligned_frame
from verifier.training.data import in_turn, jpeg_copy
from verifier.training.grades import filter_throughout, grade

KINDS = ("small edit", "benign copy", "graded copy", "filtered copy", "degraded copy", "manipulation", "family edit")
SMALL = ("paste", "clone", "inpaint", "strokes")


def _blob(w: int, h: int, rng: random.Random, lo: float, hi: float) -> Image.Image:
    """A feathered ellipse or 5-9 sided polygon of lo-hi of the frame, anywhere in it."""
    area = rng.uniform(lo, hi) * w * h
    r = (area / np.pi) ** 0.5
    cx, cy = rng.uniform(r, max(r + 1, w - r)), rng.uniform(r, max(r + 1, h - r))
    m = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(m)
    if rng.random() < 0.5:
        a = rng.uniform(0.6, 1.6)
        draw.ellipse((cx - r * a, cy - r / a, cx + r * a, cy + r / a), fill=255)
    else:
        k = rng.randint(5, 9)
        pts = [(cx + r * rng.uniform(0.7, 1.4) * np.cos(t), cy + r * rng.uniform(0.7, 1.4) * np.sin(t))
               for t in sorted(rng.uniform(0, 2 * np.pi) for _ in range(k))]
        draw.polygon(pts, fill=255)
    return m


def small_edit(img: Image.Image, donor: Image.Image, rng: random.Random) -> Image.Image:
    """One small edit (SMALL), then JPEG 60-95, sometimes after a resize to 50-100 %."""
    w, h = img.size
    how = rng.choice(SMALL)
    out = img.copy()
    if how == "strokes":
        draw = ImageDraw.Draw(out)
        width = max(2, round(rng.uniform(0.006, 0.02) * max(w, h)))
        colour = tuple(rng.choice([rng.randint(0, 60), rng.randint(190, 255)]) for _ in range(3))
        for _ in range(rng.randint(1, 3)):
            x, y = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
            r = rng.uniform(0.04, 0.15) * max(w, h)
            if rng.random() < 0.5:
                draw.ellipse((x - r, y - r * rng.uniform(0.5, 1), x + r, y + r * rng.uniform(0.5, 1)), outline=colour, width=width)
            else:
                pts = [(x + rng.uniform(-r, r), y + rng.uniform(-r, r)) for _ in range(rng.randint(2, 5))]
                draw.line(pts, fill=colour, width=width, joint="curve")
    else:
        alpha = _blob(w, h, rng, 0.003, 0.06)
        box = alpha.getbbox()
        if box is None:
            return jpeg_copy(out, 90)
        if how == "paste":
            src = donor.resize((w, h), Image.BICUBIC)
            dx, dy = 0, 0
        elif how == "clone":
            src = img
            bw = box[2] - box[0]
            dx = rng.choice([-1, 1]) * rng.randint(bw, max(bw + 1, w // 2))
            dy = rng.choice([-1, 1]) * rng.randint(0, max(1, h // 3))
            src = src.transform(src.size, Image.AFFINE, (1, 0, dx, 0, 1, dy), resample=Image.BILINEAR)
        else:
            a = np.asarray(img)
            hole = (np.asarray(alpha) > 64).astype(np.uint8) * 255
            src = Image.fromarray(cv2.inpaint(a, hole, rng.choice([3, 7]), rng.choice([cv2.INPAINT_TELEA, cv2.INPAINT_NS])))
        out = Image.composite(src, out, alpha.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))))
    if rng.random() < 0.4:
        f = rng.uniform(0.5, 1.0)
        out = out.resize((max(16, round(w * f)), max(16, round(h * f))), Image.BICUBIC)
    return jpeg_copy(out, rng.randint(60, 95))


def degraded_copy(img: Image.Image, rng: random.Random) -> Image.Image:
    """A copy resized to 15-40 % and back up, or with noise of sigma 6-16, or sharpened hard; JPEG 30-90."""
    how = rng.choice(("small", "noise", "sharpen"))
    w, h = img.size
    if how == "small":
        f = rng.uniform(0.15, 0.4)
        out = img.resize((max(16, round(w * f)), max(16, round(h * f))), Image.BILINEAR)
        if rng.random() < 0.5:
            out = out.resize((w, h), Image.BICUBIC)
    elif how == "noise":
        a = np.asarray(img, np.float32) + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(6, 16), (h, w, 3))
        out = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    else:
        out = img.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 4), percent=rng.randint(150, 400), threshold=0))
    return jpeg_copy(out, rng.randint(30, 90))


def pairs(shared: Path, n: int, seed: int) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    """(kind, query, original) from `train` photos."""
    rng = random.Random(seed)
    for kind, img, donor in in_turn(shared, KINDS, n, rng):
        if kind == "small edit":
            yield kind, small_edit(img, donor(), rng), img
        elif kind == "benign copy":
            yield kind, augment.benign(img, rng, n_ops=rng.randint(1, 2)).image, img
        elif kind == "graded copy":
            g, ops = grade(img, rng)
            yield kind, augment.jpeg(augment.Sample(g, Image.new("L", g.size, 0), ops), rng).image, img
        elif kind == "filtered copy":
            yield kind, filter_throughout(img, rng), img
        elif kind == "degraded copy":
            yield kind, degraded_copy(img, rng), img
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
    ap.add_argument("--n", type=int, default=700, help="pairs, a seventh of each kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--noises", default=str(LOCAL_NOISE), help="noise allowances (x the pair's median residual)")
    ap.add_argument("--edges", default=str(LOCAL_EDGE), help="edge allowances (px of misalignment x the original's gradient)")
    ap.add_argument("--rests", default=str(LOCAL_REST_MAX), help="most shares of the rest of the frame that may depart too")
    ap.add_argument("--shares", default="0.002,0.004,0.006,0.01,0.02", help="least share of the covered frame")
    args = ap.parse_args()
    det = ChangeDetector.packaged()
    assert det is not None, "ChangeNet weights are not packaged"
    floats = {k: [float(v) for v in getattr(args, k).split(",")] for k in ("noises", "edges", "rests", "shares")}
    looks = [(nf, e, r) for nf in floats["noises"] for e in floats["edges"] for r in floats["rests"]]
    rows: dict[str, list[tuple[bool, dict[tuple[float, float, float], float]]]] = collections.defaultdict(list)
    made: collections.Counter[str] = collections.Counter()
    for kind, query, original in pairs(args.shared, args.n, args.seed):
        made[kind] += 1
        qv, cv = View.of(query), View.of(original)
        pair = align_pair(qv, cv)
        if not pair.alignment.global_ok:
            continue  # a weak fit's pixels do not correspond: the service does not measure it
        frame = aligned_frame(pair, qv, cv)
        called = det.judge(pair, frame).p_manipulated >= 0.5
        taken = max(query.size) >= 128  # where the service takes the measure
        rows[kind].append((called, {look: local_change(frame, *look).share if taken else 0.0 for look in looks}))

    def cells(pick) -> str:  # type: ignore[no-untyped-def]
        return " | ".join(f"{sum(pick(c, s) for c, s in rows[k])} / {len(rows[k])}" for k in KINDS)

    print("| noise | edge | rest departing at most | least share | " + " | ".join(f"{k} called manipulated" for k in KINDS) + " |")
    print("|---|---|---|---|" + "---|" * len(KINDS))
    print("| (ChangeNet alone) | | | | " + cells(lambda c, s: c) + " |")
    for look in looks:
        for sh in floats["shares"]:
            print(f"| {look[0]:g} | {look[1]:g} | {look[2]:g} | {sh:g} | " + cells(lambda c, s, look=look, sh=sh: c or s[look] >= sh) + " |")
    print("| pairs made (aligned above) | | | | " + " | ".join(str(made[k]) for k in KINDS) + " |")


if __name__ == "__main__":
    main()
