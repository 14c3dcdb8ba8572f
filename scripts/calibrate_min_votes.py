"""Make the calibration set behind `VERIFIER_LOCAL_MIN_VOTES` from `train` photos only.

The local-feature vote (`matching.local`) lets an original with at least `local_min_votes` votes
join stage 1's candidates when stage 1 has no match, and its support admits a lone weak fit
(`Matcher._screen`). Fewer votes find more originals of small pieces and risk more unrelated
originals reaching stage 2. This writes, under `--out`:

* `registry/`: links to `--registry` `train` photos, the registered originals;
* `queries/` and `queries.csv` (the `verifier bench` format): `--pieces` pieces of registered
  originals placed into unregistered photos by a generator written here, apart from the held-out
  `transplant` family (a lasso-like polygon of 6-30 % of the original, turned up to 15 degrees
  and mirrored one time in five, covering 4-20 % of another photo's frame, then resized to
  60-100 % half the time and JPEG 60-95), and `--distinct` unregistered photos (JPEG 60-95 copies,
  resized half the time) that must match nothing.

Then each setting is one bench run on a fresh copy of one registered data directory:

    python scripts/calibrate_min_votes.py --shared ../shared --out /tmp/votes-cal --seed 1
    verifier bench --queries /tmp/votes-cal/queries.csv --registry-extra /tmp/votes-cal/registry \\
      --data-dir /tmp/votes-reg --register-only --baselines '' --seed 0 --out reg.json
    cp -a /tmp/votes-reg /tmp/votes-k4
    VERIFIER_LOCAL_MIN_VOTES=4 verifier bench --queries /tmp/votes-cal/queries.csv \\
      --registry-extra /tmp/votes-cal/registry --data-dir /tmp/votes-k4 --baselines '' --seed 0 --out k4.json
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from verifier.training.data import jpeg_copy, load_photo, shuffled_train_photos


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
    out.paste(piece, (rng.randint(0, scene.width - size[0]), rng.randint(0, scene.height - size[1])), mask)
    return _shared(out, rng)


def _shared(img: Image.Image, rng: random.Random) -> Image.Image:
    """What sharing does: resized to 60-100 % half the time, then JPEG 60-95."""
    if rng.random() < 0.5:
        f = rng.uniform(0.6, 1.0)
        img = img.resize((max(16, round(img.width * f)), max(16, round(img.height * f))), Image.BICUBIC)
    return jpeg_copy(img, rng.randint(60, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--registry", type=int, default=1500, help="registered train photos")
    ap.add_argument("--pieces", type=int, default=150)
    ap.add_argument("--distinct", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    photos = shuffled_train_photos(args.shared, rng)
    registered = [next(photos) for _ in range(args.registry)]
    (args.out / "registry").mkdir(parents=True, exist_ok=True)
    (args.out / "queries").mkdir(exist_ok=True)
    for i, p in enumerate(registered):
        link = args.out / "registry" / f"{i:05d}{p.suffix.lower()}"
        if not link.exists():
            link.symlink_to(p.resolve())
    rows = []
    for i in range(args.pieces):
        k = rng.randrange(len(registered))
        name = f"queries/piece-{i:04d}.jpg"
        piece_into(load_photo(registered[k]), load_photo(next(photos)), rng).save(args.out / name, quality=95)
        rows.append({"query": name, "original": f"registry/{k:05d}{registered[k].suffix.lower()}", "kind": "manip", "family": "piece"})
    for i in range(args.distinct):
        name = f"queries/distinct-{i:04d}.jpg"
        _shared(load_photo(next(photos)), rng).save(args.out / name, quality=95)
        rows.append({"query": name, "original": "", "kind": "distinct", "family": ""})
    with (args.out / "queries.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["query", "original", "kind", "family"])
        w.writeheader()
        w.writerows(rows)
    print(f"{len(registered)} registered, {args.pieces} pieces, {args.distinct} distinct under {args.out}")


if __name__ == "__main__":
    main()
