"""Calibrate the blur-background test of `pairs.outside_original` (SELF_FILL_*) on `train` photos only.

Reposting apps put a whole photo on a story or square canvas and fill the rest with the photo
itself, zoomed and blurred. `outside_original` counted that fill as content added around the
original, so the report said "other content around or beside it" of a plain repost. The pads
here come from a generator written for this script (not `edits.pad`, the held-out family the
benchmark measures): frames 2:3 to 21:9, the fill zoomed about the canvas's centre or a random
point, blurred by a box, a stack blur or a down-and-up scaling, brightened or darkened, the inset
anywhere, JPEG; some with a handle written over the fill (that text must stay added). The
negatives are the same insets over a *donor* photo filled and blurred the same way (a meme's
canvas), `edits.collage` (a trained family) and `augment.benign` copies. Each pair is aligned as
the service aligns it; one table of the added share without and with the test, and the fit of
the best rendering (mean difference, and that over the region's own spread).

    python scripts/calibrate_self_fill.py --shared ../shared --n 300 --seed 1
"""

from __future__ import annotations

import argparse
import collections
import random
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from verifier.simprov import augment, edits, pairs
from verifier.simprov.pairs import View, align_pair, outside_original
from verifier.training.data import in_turn, jpeg_copy

KINDS = ("blur pad", "blur pad + handle", "donor fill", "collage", "benign copy")
FRAMES = (2 / 3, 3 / 4, 9 / 16, 1.0, 16 / 9, 4 / 5, 21 / 9, 5 / 4)


def _blurred_cover(fill_src: Image.Image, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """`fill_src` zoomed to cover `size` about a random point near the middle, blurred one of three ways."""
    cw, ch = size
    w, h = fill_src.size
    z = max(cw / w, ch / h) * rng.uniform(1.0, 1.3)
    big = fill_src.resize((max(cw, round(w * z)), max(ch, round(h * z))), Image.BILINEAR)
    left = round((big.width - cw) * rng.uniform(0.3, 0.7))
    top = round((big.height - ch) * rng.uniform(0.3, 0.7))
    arr = np.asarray(big.crop((left, top, left + cw, top + ch)))
    side = max(cw, ch)
    how = rng.choice(["box", "stack", "scale"])
    if how == "box":
        k = max(3, round(side * rng.uniform(0.03, 0.1)))
        arr = cv2.blur(cv2.blur(arr, (k, k)), (k, k))
    elif how == "stack":
        k = max(3, round(side * rng.uniform(0.04, 0.12))) | 1
        arr = cv2.stackBlur(arr, (k, k))
    else:
        f = rng.uniform(0.02, 0.06)
        small = cv2.resize(arr, (max(2, round(cw * f)), max(2, round(ch * f))), interpolation=cv2.INTER_AREA)
        arr = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_CUBIC)
    out = Image.fromarray(arr)
    return ImageEnhance.Brightness(out).enhance(rng.uniform(0.45, 1.1))


def padded(img: Image.Image, fill_src: Image.Image, rng: random.Random, handle: bool) -> Image.Image:
    w, h = img.size
    frame = rng.choice([f for f in FRAMES if abs(np.log(f * h / w)) >= np.log(1.1)])
    cw, ch = (w, round(w / frame)) if w / h > frame else (round(h * frame), h)
    canvas = _blurred_cover(fill_src, (cw, ch), rng)
    s = rng.uniform(0.6, 1.0)
    pw, ph = max(16, round(w * s)), max(16, round(h * s))
    x, y = rng.randint(0, cw - pw), rng.randint(0, ch - ph)
    canvas.paste(img.resize((pw, ph), Image.BICUBIC), (x, y))
    if handle:
        draw = ImageDraw.Draw(canvas)
        size = max(10, round(max(cw, ch) * 0.045))
        font = ImageFont.load_default(size)
        below = ch - (y + ph) > y
        ty = (y + ph + (ch - y - ph - size) // 2) if below else max(0, (y - size) // 2)
        draw.text((round(cw * rng.uniform(0.05, 0.4)), ty), rng.choice(["@newsdesk", "@daily.pics", "via @wire"]),
                  fill=(255, 255, 255), font=font)
    return jpeg_copy(canvas, rng.randint(50, 95))


def make_pairs(shared: Path, n: int, seed: int) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    rng = random.Random(seed)
    for kind, img, donor in in_turn(shared, KINDS, n, rng):
        if kind in ("blur pad", "blur pad + handle"):
            yield kind, padded(img, img, rng, handle=kind.endswith("handle")), img
        elif kind == "donor fill":
            yield kind, padded(img, donor(), rng, handle=False), img
        elif kind == "collage":
            donors = [donor() for _ in range(3)]
            yield kind, edits.make_edit("collage", img, donors, rng).image, img
        else:
            yield kind, augment.benign(img, rng).image, img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=300, help="pairs, a fifth of each kind")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows: dict[str, list[tuple[float, float, float, float]]] = collections.defaultdict(list)
    made: collections.Counter[str] = collections.Counter()
    on = pairs.SELF_FILL_MIN_SHARE
    for kind, query, original in make_pairs(args.shared, args.n, args.seed):
        made[kind] += 1
        qv, cv = View.of(query), View.of(original)
        pair = align_pair(qv, cv)
        if not pair.alignment.global_ok:
            continue
        pairs.SELF_FILL_MIN_SHARE = 2.0  # off: the measure as it was
        before = outside_original(pair.alignment, cv, qv).added
        pairs.SELF_FILL_MIN_SHARE = on
        after = outside_original(pair.alignment, cv, qv).added
        residual, spread = float("inf"), 0.0
        if before.any():
            residual, spread, _ = pairs.self_fill_fit(pair.alignment.homography, cv.image, qv.image, before)
        rows[kind].append((float(before.mean()), float(after.mean()), residual, residual / max(spread, 1e-6)))
    print("| kind | aligned / made | added >= 10 % without / with | added share p50 without / with | "
          "fit: mean difference p10 / p50 / p90 | over spread p10 / p50 / p90 |")
    print("|---|---|---|---|---|---|")
    for kind in KINDS:
        r = np.array(rows[kind]) if rows[kind] else np.zeros((0, 4))
        fit = r[np.isfinite(r[:, 2])] if len(r) else r

        def pct(col: int, fit: np.ndarray = fit) -> str:
            return " / ".join(f"{np.percentile(fit[:, col], p):.2f}" for p in (10, 50, 90)) if len(fit) else "-"

        print(f"| {kind} | {len(r)} / {made[kind]} | {int((r[:, 0] >= 0.1).sum())} / {int((r[:, 1] >= 0.1).sum())} | "
              f"{np.median(r[:, 0]) if len(r) else 0:.3f} / {np.median(r[:, 1]) if len(r) else 0:.3f} | {pct(2)} | {pct(3)} |")
    print("\nregions explained (fit within both bars; a region needs >= SELF_FILL_MIN_SHARE added first):")
    print("| mean difference <= / over spread <= | " + " | ".join(KINDS[:4]) + " |")
    print("|---|" + "---|" * 4)
    for res in (6.0, 8.0, 10.0, 12.0, 16.0):
        for ratio in (0.3, 0.4, 0.5, 0.6):
            cells = [sum(1 for x in rows[k] if x[0] >= on and x[2] <= res and x[3] <= ratio) for k in KINDS[:4]]
            shown = [f"{c} / {sum(1 for x in rows[k] if x[0] >= on)}" for c, k in zip(cells, KINDS[:4], strict=True)]
            print(f"| {res:g} / {ratio:g} | " + " | ".join(shown) + " |")
    worst = [(k, x[2], x[3]) for k in ("donor fill", "collage") for x in rows[k] if np.isfinite(x[2])]
    if worst:
        print("negatives closest to a fill (over-spread ratio, mean difference): " +
              ", ".join(f"{k} {r:.2f} {d:.1f}" for k, d, r in sorted(worst, key=lambda t: t[2])[:5]))
        best_neg = min(worst, key=lambda t: t[1])
        print(f"closest negative fit: {best_neg[0]} mean difference {best_neg[1]:.2f}, over spread {best_neg[2]:.2f}; "
              f"smallest over-spread ratio {min(w[2] for w in worst):.2f}")


if __name__ == "__main__":
    main()
