"""Choose `simprov.channels`' thresholds on `train` photos only.

For each of `--n` train photos, three copies:

* `plain`: the photo as it is (<= 1,024 px, as the service works);
* `benign`: `augment.benign` (the sharing transforms: crops, rescales, colour, noise, blur, JPEG);
* `split`: its red and blue channels each moved by its own vector, 0.5-4 % of the width long in
  any direction (a generator written here, apart from the held-out `edits.glitch`, which moves
  them sideways by 2-3 % in opposite directions and adds bands and scanlines), then rescaled to
  50-100 % half the time and saved as JPEG 40-95.

Two more per photo, thumbnails as reposts shrink a photo (32-160 px on the long side, JPEG 20-70) of the photo and
of its split copy, give the false calls and the splits found by size (`channels.MIN_MEASURE_SIDE`).
For every (edge_sigma, min_response, min_shift) it prints how many plain and benign copies would be
called split (each such call moves channels that were in place) and how many split copies are
found; for the split copies it also prints SIFT's RANSAC inliers against the photo before and
after `realigned` (the thresholds' purpose), and for the plain and benign copies wrongly called
split, the inliers before and after.

    PYTHONPATH=. python scripts/calibrate_channel_split.py --shared ../shared --n 300 --seed 5
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier.simprov import align, augment, channels
from verifier.training.data import load_photo, shuffled_train_photos

RESPONSES = (0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
SHIFTS = (1.0, 1.5, 2.0, 3.0)
SIGMAS = (1.0, 2.0, 3.0)


def split_copy(img: Image.Image, rng: random.Random) -> Image.Image:
    arr = np.asarray(img).copy()
    h, w = arr.shape[:2]
    for c in (0, 2):
        length, angle = rng.uniform(0.005, 0.04) * w, rng.uniform(0, 2 * math.pi)
        dx, dy = round(length * math.cos(angle)), round(length * math.sin(angle))
        arr[..., c] = np.roll(np.roll(arr[..., c], dx, axis=1), dy, axis=0)
    out = Image.fromarray(arr)
    if rng.random() < 0.5:
        f = rng.uniform(0.5, 1.0)
        out = out.resize((max(16, round(w * f)), max(16, round(h * f))), Image.BICUBIC)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(40, 95))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def small(img: Image.Image, rng: random.Random) -> Image.Image:
    """A thumbnail as reposts shrink a photo: 32-160 px on its long side, JPEG 20-70."""
    side = rng.randint(32, 160)
    out = img.copy()
    out.thumbnail((side, side), Image.BICUBIC)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(20, 70))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def inliers(query: Image.Image, original: Image.Image) -> int:
    q, o = np.asarray(query), np.asarray(original)
    fo = align.sift_features(o)
    return max(align.count_inliers(align.sift_features(q), fo, q.shape, o.shape),
               align.count_inliers(align.mirrored_sift(q), fo, q.shape, o.shape))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    photos = shuffled_train_photos(args.shared, rng)
    measured: dict[tuple[str, float], list[tuple[float, tuple]]] = {}
    copies: dict[str, list[tuple[Image.Image, Image.Image]]] = {}
    for _ in tqdm(range(args.n), desc="photos", unit="img"):
        img = load_photo(next(photos))
        if max(img.size) > 1024:
            img.thumbnail((1024, 1024), Image.LANCZOS)
        split = split_copy(img, rng)
        for kind, copy in (("plain", img), ("benign", augment.benign(img, rng).image), ("split", split),
                           ("small", small(img, rng)), ("small split", small(split, rng))):
            for sigma in SIGMAS:
                # thumbnails measured whatever their size: the table below is what chose the floor
                measured.setdefault((kind, sigma), []).append(channels.measure(copy, sigma, min_side=16))
            copies.setdefault(kind, []).append((copy, img))

    def called(m: tuple[float, tuple], r: float, s: float) -> bool:
        return any(resp >= r and math.hypot(dx, dy) >= s for dx, dy, resp in m[1])

    print(f"{'edge_sigma':>10} {'min_response':>12} {'min_shift':>9} | plain called split | benign called split | split found")
    for sigma in SIGMAS:
        for r in RESPONSES:
            for s in SHIFTS:
                row = [sum(called(m, r, s) for m in measured[(k, sigma)]) for k in ("plain", "benign", "split")]
                print(f"{sigma:>10} {r:>12} {s:>9} | {row[0]:>18} | {row[1]:>19} | {row[2]:>11} of {args.n}")

    print(f"\nthumbnails (32-160 px, JPEG 20-70) at sigma {channels.EDGE_SIGMA}, {channels.MIN_RESPONSE}, {channels.MIN_SHIFT} px,"
          " by long side: plain thumbnails called split / split thumbnails found")
    bins = (32, 64, 80, 96, 112, 128, 161)
    for lo, hi in itertools.pairwise(bins):
        def sized(kind: str, lo: int = lo, hi: int = hi) -> list[tuple[float, tuple]]:
            return [m for m, (c, _) in zip(measured[(kind, channels.EDGE_SIGMA)], copies[kind], strict=True)
                    if lo <= max(c.size) < hi]
        plain, split_ = sized("small"), sized("small split")
        print(f"  {lo}-{hi - 1} px: {sum(called(m, channels.MIN_RESPONSE, channels.MIN_SHIFT) for m in plain)} of {len(plain)}"
              f" / {sum(called(m, channels.MIN_RESPONSE, channels.MIN_SHIFT) for m in split_)} of {len(split_)}")

    r, s, sigma = channels.MIN_RESPONSE, channels.MIN_SHIFT, channels.EDGE_SIGMA
    print(f"\nat the shipped settings (sigma {sigma}, {r}, {s} px): SIFT inliers against the photo, before -> after realigning")
    for kind in ("plain", "benign", "split"):
        before, after = [], []
        for copy, img in tqdm(copies[kind], desc=kind, unit="img"):
            split = channels.channel_split(copy)
            if split is None:
                continue
            before.append(inliers(copy, img))
            after.append(inliers(channels.realigned(copy, split), img))
        if before:
            b, a = np.array(before), np.array(after)
            print(f"  {kind}: {len(b)} called split; median {np.median(b):.0f} -> {np.median(a):.0f}; "
                  f"under 8 inliers {int((b < 8).sum())} -> {int((a < 8).sum())}; fewer after {int((a < b).sum())}")
        else:
            print(f"  {kind}: none called split")


if __name__ == "__main__":
    main()
