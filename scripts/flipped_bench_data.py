"""Mirrored copies of registered photos, for `verifier bench` (BENCHMARKS.md, "Mirrored copies: the better fit").

Mirroring is among the commonest things done to a shared photo, and SIFT is not mirror-invariant: the
aligner fits a mirrored copy through the mirrored query's features. This set asks whether the copies are
matched, aligned and called benign. Each query is one of the families data's `test` originals (registered
in the families registry), through 0-2 benign transforms (`augment.benign`, ending in a JPEG) and then
mirrored; `kind` benign, family `mirror`, the transforms as the variant.

    python scripts/mirror_bench_data.py <families dir (verifier bench-data --families)> <out dir> [--n 300] [--seed 5]

writes <out>/queries.csv (+ the JPEGs); run with `--data-dir <a copy of the families registry> --holdout 0`.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from PIL import Image, ImageOps

from verifier.simprov import augment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("families", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    with (args.families / "families.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # the families' photo originals (MICC-F220's and COVERAGE's are left out: they are not `test` photos)
    originals = sorted({(args.families / r["original"]).resolve() for r in rows if r["original"] and "/photos/" in r["original"]})
    rng = random.Random(args.seed)
    rng.shuffle(originals)
    (args.out / "q").mkdir(parents=True, exist_ok=True)
    with (args.out / "queries.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        for i, path in enumerate(originals[: args.n]):
            with Image.open(path) as im:
                copy = augment.benign(im.convert("RGB"), rng, n_ops=rng.randint(0, 2))
            name = f"q/mirror-{i:04d}.jpg"
            ImageOps.mirror(copy.image).save(args.out / name, quality=90)
            w.writerow([name, str(path), "benign", "", "mirror", "+".join(copy.ops)])
    print(f"{min(args.n, len(originals))} mirrored copies -> {args.out / 'queries.csv'}")


if __name__ == "__main__":
    main()
