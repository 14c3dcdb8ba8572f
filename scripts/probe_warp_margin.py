"""Probe (not product code): do stage 3's local-warp cells (`align.moved_cells`) call benign copies warped at the
edge of what the query covers, where DIS's flow has no content on one side? Each variant reads the flow only
at least `margin` px (at the working frame) inside the covered area and the frame (`align.MOVED_MARGIN`; 0 was
the service before it).

Pairs of `train` photos: benign copies (`augment.benign`, which crops, pads, rotates, overlays text), framed
copies (the photo cropped to 55-100 % and set in a flat frame, as a screenshot or a reposted card does) and
twirl warps (`tests.helpers.twirl`, a JPEG after), each aligned to its original as stage 3 aligns a pair
(`pairs.align_pair` of the two views). Counted: pairs whose largest cell moves WARP_THRESHOLD or more.

    PYTHONPATH=. python scripts/probe_warp_margin.py --shared ../shared --n 400 --seed 0
"""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tests.helpers import twirl
from verifier.simprov import align, augment
from verifier.simprov.change import WARP_THRESHOLD
from verifier.simprov.pairs import WORK_SIDE, View, align_pair
from verifier.training.data import load_photo, train_photos


def framed(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    s = rng.uniform(0.55, 1.0) ** 0.5
    cw, ch = round(w * s), round(h * s)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    part = img.crop((x, y, x + cw, y + ch))
    fw, fh = round(cw * rng.uniform(1.05, 1.4)), round(ch * rng.uniform(1.2, 2.0))
    tone = rng.choice(((255, 255, 255), (18, 18, 20), (240, 242, 245)))
    card = Image.new("RGB", (fw, fh), tone)
    card.paste(part, ((fw - cw) // 2, round((fh - ch) * rng.uniform(0.2, 0.6))))
    return card


def jpeg(img: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def largest_moves(query: Image.Image, original: Image.Image, margins: list[int]) -> list[float] | None:
    """The largest cell move as a share of the working frame's long side, per margin; None: no flow."""
    cand = View.of(original)
    pair = align_pair(View.of(query, min_side=WORK_SIDE), cand)
    inputs = pair.alignment.flow_inputs
    if inputs is None:
        return None
    c, warped, covered, residual, scale = inputs
    out = []
    for m in margins:
        monkey = align.MOVED_MARGIN
        align.MOVED_MARGIN = m  # the service's own `moved_cells`, at each margin
        try:
            out.append(float(align.moved_cells(c, warped, covered, residual, scale).max()) / float(max(cand.image.shape[:2])))
        finally:
            align.MOVED_MARGIN = monkey
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margins", default="0,3,6,10")
    args = ap.parse_args()
    margins = [int(m) for m in args.margins.split(",")]
    rng = random.Random(args.seed)
    photos = train_photos(args.shared / "datasets" / "photos")
    rng.shuffle(photos)
    hits = {k: np.zeros(len(margins), int) for k in ("benign", "framed", "twirl")}
    seen = dict.fromkeys(hits, 0)
    for path in tqdm(photos[: args.n], desc="pairs"):
        original = load_photo(path)
        queries = {
            "benign": augment.benign(original, rng).image,
            "framed": jpeg(framed(original, rng), rng.randint(70, 95)),
            "twirl": jpeg(twirl(original, (rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)), rng.uniform(0.1, 0.25),
                                rng.uniform(0.5, 1.5)), rng.randint(80, 95)),
        }
        for kind, q in queries.items():
            moves = largest_moves(q, original, margins)
            if moves is None:
                continue
            seen[kind] += 1
            hits[kind] += np.array([m >= WARP_THRESHOLD for m in moves])
    for kind, counts in hits.items():
        print(kind, seen[kind], {f"margin {m}": int(h) for m, h in zip(margins, counts, strict=True)}, flush=True)


if __name__ == "__main__":
    main()
