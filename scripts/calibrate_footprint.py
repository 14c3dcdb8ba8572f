"""Calibrate stage 3's footprint look (`pairs.footprint`, FOOTPRINT_SHARE) on `train` photos only.

ChangeNet was trained on crops keeping 70-97 % of the frame. A tight crop (a story or square
reframing, a zoom on the subject) covers a quarter or less of its original, and judged on the
whole frame with the rest empty it was called manipulated. Four kinds of pair are made from
`train` photos with a crop generator written for this (not `edits.reframe`, the held-out family
the benchmark measures): tight crops (15-65 % of the area, any aspect 1:2-2:1, zoomed 0.6-2x,
JPEG), manipulations (`augment.manipulate`) cropped as tightly around the edit, plain benign
copies (`augment.benign`) and manipulations with benign transforms after them. Each is aligned to
its photo as the service aligns it and judged as the service judges it, on the whole frame
(share 0) and with the footprint look at each share; one table of pairs called manipulated.

    python scripts/calibrate_footprint.py --shared ../shared --n 320 --seed 1
"""

from __future__ import annotations

import argparse
import collections
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.simprov import augment
from verifier.simprov.change import ChangeDetector
from verifier.simprov.pairs import View, align_pair, aligned_frame
from verifier.training.data import in_turn, jpeg_copy

KINDS = ("tight crop", "benign copy", "cropped manipulation", "manipulation")


def tight_crop(img: Image.Image, mask: Image.Image | None, rng: random.Random) -> Image.Image:
    """15-65 % of the area at an aspect of 1:2-2:1, around the edit when `mask` marks one,
    zoomed 0.6-2x, JPEG 40-95."""
    w, h = img.size
    area = rng.uniform(0.15, 0.65) * w * h
    aspect = rng.uniform(0.5, 2.0)
    cw = min(w, (area * aspect) ** 0.5)
    ch = min(h, area / cw)
    cw = min(w, area / ch)
    cw, ch = int(cw), int(ch)
    marked = np.asarray(mask) > 127 if mask is not None else None
    if marked is not None and marked.any():
        ys, xs = np.nonzero(marked)
        x = int(np.clip(xs.mean() - cw / 2 + rng.uniform(-0.25, 0.25) * cw, 0, w - cw))
        y = int(np.clip(ys.mean() - ch / 2 + rng.uniform(-0.25, 0.25) * ch, 0, h - ch))
    else:
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    z = rng.uniform(0.6, 2.0)
    out = img.crop((x, y, x + cw, y + ch)).resize((max(16, int(cw * z)), max(16, int(ch * z))), Image.BICUBIC)
    return jpeg_copy(out, rng.randint(40, 95))


def pairs(shared: Path, n: int, seed: int) -> Iterator[tuple[str, Image.Image, Image.Image]]:
    """(kind, query, original) from `train` photos; a manipulation's donor is another `train` photo."""
    rng = random.Random(seed)
    for kind, img, donor in in_turn(shared, KINDS, n, rng):
        if kind == "tight crop":
            yield kind, tight_crop(img, None, rng), img
        elif kind == "benign copy":
            yield kind, augment.benign(img, rng).image, img
        else:
            s = augment.manipulate(img, donor(), rng)
            yield kind, (tight_crop(s.image, s.mask, rng) if kind == "cropped manipulation" else augment.benign_after(s, rng).image), img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--n", type=int, default=320, help="pairs, a quarter of each kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shares", default="0.7,0.8,0.9,1.0", help="footprint shares to compare with the whole frame")
    args = ap.parse_args()
    shipped = ChangeDetector.packaged()
    assert shipped is not None, "ChangeNet weights are not packaged"
    shares = [0.0, *(float(s) for s in args.shares.split(","))]
    looks = {s: ChangeDetector(shipped.net, shipped.sha256, footprint_share=s) for s in shares}
    called: dict[float, collections.Counter[str]] = {s: collections.Counter() for s in shares}
    aligned: collections.Counter[str] = collections.Counter()
    made: collections.Counter[str] = collections.Counter()
    for kind, query, original in pairs(args.shared, args.n, args.seed):
        made[kind] += 1
        qv, cv = View.of(query), View.of(original)
        pair = align_pair(qv, cv)
        if not pair.alignment.global_ok:
            continue  # the service judges a weak fit on the whole frame at every share
        aligned[kind] += 1
        frame = aligned_frame(pair, qv, cv)
        for s, det in looks.items():
            called[s][kind] += det.judge(pair, frame).p_manipulated >= 0.5
    print("| footprint share | " + " | ".join(f"{k} called manipulated" for k in KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for s in shares:
        name = "0 (whole frame)" if s == 0 else f"{s:g}"
        print(f"| {name} | " + " | ".join(f"{called[s][k]} / {aligned[k]}" for k in KINDS) + " |")
    print("| pairs made (aligned above) | " + " | ".join(str(made[k]) for k in KINDS) + " |")


if __name__ == "__main__":
    main()
