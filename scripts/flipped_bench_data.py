"""Mirrored, tone-inverted and stretched copies of registered photos, for `verifier bench` (BENCHMARKS.md,
"Mirrored copies: the better fit", "Negatives: the inverted descriptors" and "Stretched copies").

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

DEFAULTS = {"mirror": (300, 5), "tone": (240, 7), "stretch": (240, 9), "stretched-edits": (160, 11)}  # n, seed
TONE_OPS = ("negative", "solarize", "negative_mirror")
STRETCH_FACTORS = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
EDIT_STRETCHES = (1.0, 2.0, 2.5, 3.0)
EDIT_FAMILIES = ("paste_small", "copy_move_small", "retouch", "head_swap", "clone", "annotate", "caption", "recolour")


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


def stretched(img: Image.Image, f: float, across: bool, resample: int = Image.BICUBIC) -> Image.Image:
    """`img` stretched by `f` across or down, then reduced back to its own long side."""
    w, h = img.size
    out = img.resize((round(w * f), h) if across else (w, round(h * f)), resample)
    side = max(w, h)
    if max(out.size) > side:
        k = side / max(out.size)
        out = out.resize((max(1, round(out.width * k)), max(1, round(out.height * k))),
                         Image.NEAREST if resample == Image.NEAREST else Image.LANCZOS)
    return out


def stretch_copy(img: Image.Image, i: int, rng: random.Random) -> tuple[str, Image.Image, str]:
    f = STRETCH_FACTORS[i % len(STRETCH_FACTORS)]
    across = (i // len(STRETCH_FACTORS)) % 2 == 0
    return f"stretch{f:g}", stretched(img, f, across), "across" if across else "down"


def stretched_edits(families: Path, out: Path, n: int, seed: int) -> None:
    with (families / "families.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["family"] in EDIT_FAMILIES and r["kind"] == "manip" and r["mask"]]
    random.Random(seed).shuffle(rows)
    (out / "q").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    with (out / "queries.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        for i, r in enumerate(rows[:n]):
            f = EDIT_STRETCHES[i % len(EDIT_STRETCHES)]
            across = (i // len(EDIT_STRETCHES)) % 2 == 0
            with Image.open(families / r["query"]) as im, Image.open(families / r["mask"]) as m:
                query, mask = stretched(im.convert("RGB"), f, across), stretched(m.convert("L"), f, across, Image.NEAREST)
            name = f"edit-stretch{f:g}-{i:04d}"
            query.save(out / "q" / f"{name}.jpg", quality=90)
            mask.save(out / "masks" / f"{name}.png")
            w.writerow([f"q/{name}.jpg", str((families / r["original"]).resolve()), "manip", f"masks/{name}.png",
                        f"edit-stretch{f:g}", f"{r['family']}+{'across' if across else 'down'}"])
    print(f"{min(n, len(rows))} stretched edits -> {out / 'queries.csv'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("families", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--set", choices=sorted(DEFAULTS), default="mirror")
    ap.add_argument("--n", type=int)
    ap.add_argument("--seed", type=int)
    args = ap.parse_args()
    n, seed = (args.n if args.n is not None else DEFAULTS[args.set][0]), (args.seed if args.seed is not None else DEFAULTS[args.set][1])
    if args.set == "stretched-edits":
        stretched_edits(args.families, args.out, n, seed)
        return
    make = {"mirror": mirror_copy, "tone": tone_copy, "stretch": stretch_copy}[args.set]
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
