"""Crops of large camera originals, for `verifier bench` (BENCHMARKS.md, "Crops of a large original").

A newsroom registers camera originals of 12-50 MP; the shared photo sets hold none over 1,000 px, so
nothing measured there shows what becomes of a detail cropped from a wire photo and posted at
social-media size. This set takes a folder of full-resolution camera photos (any public set; the
run in BENCHMARKS.md used the camera sample images of drewnoakes/metadata-extractor-images: 109
distinct photos of 1,600-5,000 px from phones and cameras) and writes, for each photo (seeded):

* `whole`: the whole photo reduced to 1,080 px on its long side (benign);
* `crop50`, `crop30`, `crop20`: a crop of that share of the width and height at a random place,
  reduced to 1,080 px when larger (benign);
* `paste30`: the `crop30` with a piece of another photo of the set pasted in (a quarter of the
  crop's width and height, at a random place; manip, with its mask). The piece comes from an
  unregistered photo, so the only registered content of a query is its own original's.
* `whole_paste12`, `whole_paste06` (registered photos only): the `whole` copy with a piece of an unregistered
  photo pasted in, 1/8 or 1/16 of its width and height (1.6 % or 0.4 % of the frame: small edits in a
  large photo; manip, with its mask).

All are JPEG quality 85 with no metadata. The originals are registered from the photos' own files:
`original` points at them. Every `--unregistered-every`-th photo (4) is left out of the registry and its
copies are `distinct` queries: what false matches against large originals look like.

    python scripts/crop_bench_data.py <photos dir> <out dir> [--seed 0] [--unregistered-every 4]

writes <out>/queries.csv (+ the JPEGs and masks); run `verifier bench --queries <out>/queries.csv
--data-dir <a copy of a registry> --baselines '' --seed 0`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
from pathlib import Path

from PIL import Image, ImageOps

POSTED = 1080  # px on the long side: what a social network shows
FRACTIONS = {"crop50": 0.5, "crop30": 0.3, "crop20": 0.2}
SMALL_PIECES = {"whole_paste12": 1 / 8, "whole_paste06": 1 / 16}  # a piece this share of the width and height
MIN_SIDE = 1600  # an original smaller than this is not what the set is about


def load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def posted(img: Image.Image) -> Image.Image:
    out = img.copy()
    if max(out.size) > POSTED:
        out.thumbnail((POSTED, POSTED), Image.LANCZOS)
    return out


def crop(img: Image.Image, frac: float, rng: random.Random) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * frac), round(h * frac)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def pasted(img: Image.Image, piece: Image.Image, rng: random.Random) -> tuple[Image.Image, Image.Image]:
    """A copy of `img` with `piece` pasted at a random place, and the piece's mask."""
    out = img.copy()
    at = (rng.randint(0, out.width - piece.width), rng.randint(0, out.height - piece.height))
    out.paste(piece, at)
    mask = Image.new("L", out.size, 0)
    mask.paste(255, (*at, at[0] + piece.width, at[1] + piece.height))
    return out, mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unregistered-every", type=int, default=4, help="every N-th photo is not registered (0: none)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(exist_ok=True)
    seen: set[str] = set()
    photos: list[tuple[Path, Image.Image]] = []
    for path in sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg")):
        try:
            img = load(path)
        except (OSError, ValueError):
            continue
        thumb = img.resize((16, 16)).convert("L").tobytes()
        key = hashlib.sha256(thumb).hexdigest()
        if max(img.size) < MIN_SIDE or key in seen:  # too small, or the same picture again
            continue
        seen.add(key)
        photos.append((path, img))
    every = args.unregistered_every
    unregistered = [i for i in range(len(photos)) if every and i % every == every - 1]
    rows = []
    for i, (path, img) in enumerate(photos):
        rng = random.Random(f"{args.seed}:{path.name}")
        registered = i not in unregistered
        original = os.path.relpath(path.resolve(), args.out.resolve()) if registered else ""
        made = {"whole": posted(img)}
        for name, frac in FRACTIONS.items():
            made[name] = posted(crop(img, frac, rng))
        for name, q in made.items():
            q.save(args.out / f"{i:03d}-{name}.jpg", "JPEG", quality=85)
            rows.append({"query": f"{i:03d}-{name}.jpg", "original": original, "kind": "benign" if registered else "distinct",
                         "mask": "", "family": name if registered else f"unregistered-{name}", "variant": ""})
        base = made["crop30"]
        others = [j for j in unregistered if j != i] or [j for j in range(len(photos)) if j != i]
        donor = photos[rng.choice(others)][1]  # a photo that is not registered: the piece is nobody's original
        pw, ph = max(8, base.width // 4), max(8, base.height // 4)
        base, mask = pasted(base, crop(donor, 0.25, rng).resize((pw, ph), Image.LANCZOS), rng)
        base.save(args.out / f"{i:03d}-paste30.jpg", "JPEG", quality=85)
        mask.save(args.out / "masks" / f"{i:03d}-paste30.png")
        rows.append({"query": f"{i:03d}-paste30.jpg", "original": original, "kind": "manip" if registered else "distinct",
                     "mask": f"masks/{i:03d}-paste30.png" if registered else "",
                     "family": "paste30" if registered else "unregistered-paste30", "variant": ""})
        if not registered:
            continue
        for name, frac in SMALL_PIECES.items():  # drawn after the rest: the rows above do not change
            donor = photos[rng.choice(others)][1]
            pw, ph = max(8, round(made["whole"].width * frac)), max(8, round(made["whole"].height * frac))
            whole, mask = pasted(made["whole"], posted(crop(donor, 0.25, rng)).resize((pw, ph), Image.LANCZOS), rng)
            whole.save(args.out / f"{i:03d}-{name}.jpg", "JPEG", quality=85)
            mask.save(args.out / "masks" / f"{i:03d}-{name}.png")
            rows.append({"query": f"{i:03d}-{name}.jpg", "original": original, "kind": "manip",
                         "mask": f"masks/{i:03d}-{name}.png", "family": name, "variant": ""})
    with (args.out / "queries.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["query", "original", "kind", "mask", "family", "variant"])
        writer.writeheader()
        writer.writerows(rows)
    n_reg = sum(1 for r in rows if r["family"] == "whole")
    print(f"{len(photos)} photos ({n_reg} registered), {len(rows)} queries in {args.out / 'queries.csv'}")


if __name__ == "__main__":
    main()
