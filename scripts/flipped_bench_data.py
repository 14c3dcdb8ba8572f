"""Mirrored and tone-inverted copies of registered photos, for `verifier bench` (BENCHMARKS.md,
"Mirrored copies: the better fit" and "Negatives: the inverted descriptors").

SIFT is neither mirror- nor inversion-invariant: the aligner fits a mirrored copy through the mirrored
query's features and a negative through the inverted descriptors (`align.SiftFeatures.inverted`). These
sets ask whether such copies are matched, aligned and called benign. Each query is one of the families
data's `test` originals (registered in the families registry); `kind` benign.

* `--set mirror` (300, seed 5): 0-2 benign transforms (`augment.benign`, ending in a JPEG), then
  mirrored; family `mirror`, the transforms as the variant.
* `--set tone` (240, seed 7): in turn a negative, a solarised copy (threshold 96-200) and a mirrored
  negative, then 0-1 benign transforms; the family names the filter.

    python scripts/flipped_bench_data.py <families dir (verifier bench-data --families)> <out dir> --set mirror

writes <out>/queries.csv (+ the JPEGs); run with `--data-dir <a copy of the families registry> --holdout 0`.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from PIL import Image, ImageOps

from verifier.simprov import augment

DEFAULTS = {"mirror": (300, 5), "tone": (240, 7)}  # n, seed
TONE_OPS = ("negative", "solarize", "negative_mirror")


def mirror_copy(img: Image.Image, i: int, rng: random.Random) -> tuple[str, Image.Image, str]:
    copy = augment.benign(img, rng, n_ops=rng.randint(0, 2))
    return "mirror", ImageOps.mirror(copy.image), "+".join(copy.ops)


def tone_copy(img: Image.Image, i: int, rng: random.Random) -> tuple[str, Image.Image, str]:
    op = TONE_OPS[i % 3]
    if op == "solarize":
        t = rng.randint(96, 200)
        out, variant = ImageOps.solarize(img, t), f"solarize{t}"
    else:
        out, variant = ImageOps.invert(img), "negative"
        if op == "negative_mirror":
            out, variant = ImageOps.mirror(out), "negative+mirror"
    copy = augment.benign(out, rng, n_ops=rng.randint(0, 1))
    return op, copy.image, variant + "+" + "+".join(copy.ops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("families", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--set", choices=sorted(DEFAULTS), default="mirror")
    ap.add_argument("--n", type=int)
    ap.add_argument("--seed", type=int)
    args = ap.parse_args()
    n, seed = (args.n if args.n is not None else DEFAULTS[args.set][0]), (args.seed if args.seed is not None else DEFAULTS[args.set][1])
    make = mirror_copy if args.set == "mirror" else tone_copy
    with (args.families / "families.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # the families' photo originals (MICC-F220's and COVERAGE's are left out: they are not `test` photos)
    originals = sorted({(args.families / r["original"]).resolve() for r in rows if r["original"] and "/photos/" in r["original"]})
    rng = random.Random(seed)
    rng.shuffle(originals)
    (args.out / "q").mkdir(parents=True, exist_ok=True)
    with (args.out / "queries.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        for i, path in enumerate(originals[:n]):
            with Image.open(path) as im:
                family, copy, variant = make(im.convert("RGB"), i, rng)
            name = f"q/{family}-{i:04d}.jpg"
            copy.save(args.out / name, quality=90)
            w.writerow([name, str(path), "benign", "", family, variant])
    print(f"{min(n, len(originals))} {args.set} copies -> {args.out / 'queries.csv'}")


if __name__ == "__main__":
    main()
