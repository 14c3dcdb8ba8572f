"""Calibrate the alignment's crop drawn inside the query (`align.shown_box`, SHOWN_STEP) on `train` photos only.

A post crops a tall photo to its frame and a screenshot of it shows the post's text where the
cut-off rows of the original would lie under the homography; judged on the whole frame, stage 3
compared those rows with the text. Four kinds of pair are made from `train` photos with a post
generator written for this (not `edits.screenshot`, the held-out family the benchmark measures):
posts (the photo cut 3-20 % on two opposite sides, or one, shown on a flat screen of any colour
with blocks of text and icons beside the cuts, its levels scaled 0.85-1.15 half the time, JPEG
60-95), manipulations shown in such a post, plain manipulations (`augment.manipulate`) and plain
benign copies (`augment.benign`). Each is aligned to its photo as the service aligns it and judged
as the service judges it, with the cut off (SHOWN_STEP above 1) and at each step: one table of
pairs with a cut found, pairs called manipulated, and for posts the cut's depth error.

    PYTHONPATH=. python scripts/calibrate_shown.py --shared ../shared --n 400 --seed 3
"""

from __future__ import annotations

import argparse
import collections
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from verifier.simprov import align, augment
from verifier.simprov.change import ChangeDetector
from verifier.simprov.pairs import View, align_pair
from verifier.training.data import in_turn, jpeg_copy

KINDS = ("post", "manipulation in a post", "manipulation", "benign copy")
SCREENS = ((255, 255, 255), (0, 0, 0), (24, 26, 32), (242, 242, 246), (250, 244, 230))


def post(img: Image.Image, rng: random.Random) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The photo cut and shown in a post; the cut as shares of each side of the photo (top, bottom, left, right)."""
    across = rng.random() < 0.7  # top and bottom cut (a tall photo in a portrait frame), else left and right
    src = img.convert("RGB") if across else img.convert("RGB").rotate(90, expand=True)  # the cut sides on top and bottom
    w, h = src.size
    a, b = rng.uniform(0.03, 0.2), rng.uniform(0.03, 0.2)
    if rng.random() < 0.2:
        b = 0.0  # one side only
    elif rng.random() < 0.5:
        b = a  # centred, as platforms crop
    shown = src.crop((0, round(a * h), w, h - round(b * h)))
    if rng.random() < 0.5:
        gain = rng.uniform(0.85, 1.15)
        shown = Image.fromarray(np.clip(np.asarray(shown, np.float32) * gain, 0, 255).astype(np.uint8))
    pw = rng.randint(300, 700)
    shown = shown.resize((pw, max(8, round(shown.height * pw / shown.width))), Image.BICUBIC)
    bg = rng.choice(SCREENS)
    fg = (235, 235, 235) if sum(bg) < 300 else (25, 25, 30)
    margin = rng.choice([0, 12, 24])
    pad = rng.randint(60, 200)
    screen = Image.new("RGB", (pw + 2 * margin, shown.height + 2 * pad), bg)
    draw = ImageDraw.Draw(screen)
    for k in range(rng.randint(1, 4)):  # lines of text above, an action bar below
        y = pad - 16 - 24 * k
        draw.rectangle((margin + 8, y, margin + 8 + rng.randint(60, pw - 20), y + 10), fill=fg)
    for k in range(rng.randint(2, 5)):
        x = margin + 10 + k * (pw // 5)
        draw.ellipse((x, shown.height + pad + 12, x + 16, shown.height + pad + 28), outline=fg, width=2)
    screen.paste(shown, (margin, pad))
    if not across:
        screen = screen.rotate(-90, expand=True)  # the photo upright again, the post's text beside it
    # rotate(90) turned the photo's right side to the top
    cut = (a, b, 0.0, 0.0) if across else (0.0, 0.0, b, a)
    return jpeg_copy(screen, rng.randint(60, 95)), cut


def pairs(shared: Path, n: int, seed: int) -> Iterator[tuple[str, Image.Image, Image.Image, tuple[float, ...] | None]]:
    """(kind, query, original, cut) from `train` photos; a manipulation's donor is another `train` photo."""
    rng = random.Random(seed)
    for kind, img, donor in in_turn(shared, KINDS, n, rng):
        if kind == "benign copy":
            yield kind, augment.benign(img, rng).image, img, None
        elif kind == "manipulation":
            yield kind, augment.manipulate(img, donor(), rng).image, img, None
        else:
            src = augment.manipulate(img, donor(), rng).image if kind == "manipulation in a post" else img
            q, cut = post(src, rng)
            yield kind, q, img, cut


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=400, help="pairs, a quarter of each kind")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--steps", default="0.5,0.6,0.7,0.8,0.9", help="SHOWN_STEP values to compare with no cut")
    args = ap.parse_args()
    detector = ChangeDetector.packaged()
    assert detector is not None, "ChangeNet weights are not packaged"
    steps = [2.0, *(float(s) for s in args.steps.split(","))]  # 2.0: a step no share reaches, so no cut
    default = align.SHOWN_STEP
    found: dict[float, collections.Counter[str]] = {s: collections.Counter() for s in steps}
    called: dict[float, collections.Counter[str]] = {s: collections.Counter() for s in steps}
    errors: dict[float, list[float]] = {s: [] for s in steps}
    aligned: collections.Counter[str] = collections.Counter()
    made: collections.Counter[str] = collections.Counter()
    try:
        for kind, query, original, cut in tqdm(pairs(args.shared, args.n, args.seed), total=args.n, desc="pairs"):
            made[kind] += 1
            qv, cv = View.of(query), View.of(original)
            for s in steps:
                align.SHOWN_STEP = s
                pair = align_pair(qv, cv)
                if not pair.alignment.global_ok:
                    break  # the same homography at every step: a weak fit is judged on the whole frame
                if s == steps[0]:
                    aligned[kind] += 1
                shown = pair.alignment.shown
                found[s][kind] += shown is not None
                called[s][kind] += detector.analyse(pair, qv, cv, query.size).manipulated
                if cut is not None and shown is not None:
                    h, w = cv.image.shape[:2]
                    x0, y0, x1, y1 = shown
                    errors[s].append(max(abs(y0 / h - cut[0]), abs(1 - y1 / h - cut[1]), abs(x0 / w - cut[2]), abs(1 - x1 / w - cut[3])))
    finally:
        align.SHOWN_STEP = default
    print("| SHOWN_STEP | " + " | ".join(f"{k}: cut found / called manipulated" for k in KINDS) + " | post cut's depth error, median / p90 (share of the side) |")
    print("|---|" + "---|" * (len(KINDS) + 1))
    for s in steps:
        name = "no cut" if s > 1 else f"{s:g}"
        err = np.array(errors[s]) if errors[s] else np.zeros(1)
        print(f"| {name} | " + " | ".join(f"{found[s][k]} / {called[s][k]} of {aligned[k]}" for k in KINDS)
              + f" | {np.median(err):.3f} / {np.quantile(err, 0.9):.3f} |")
    print("| pairs made (aligned above) | " + " | ".join(str(made[k]) for k in KINDS) + " | |")


if __name__ == "__main__":
    main()
