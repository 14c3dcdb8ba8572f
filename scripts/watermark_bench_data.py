"""False matches through a publisher's watermark: bench data where registered originals and
unrelated queries carry the same mark (BENCHMARKS.md, "A shared watermark").

A newsroom's registry can hold many photos of one publisher with its mark on them (an agency's
credit in a corner, a stock site's name across the middle), and a fact-checker can bring an
unrelated photo of the same publisher with the same mark. A pairwise fit cannot know that the
mark is on hundreds of registered photos; this measures what that costs.

Out of `--distinct` (a QUERIES.csv whose rows are unregistered photos, e.g. bench-data's
families data filtered to `distinct`), half are marked and registered, with `--train` marked
`train` photos; the other half, marked the same way, are the queries (kind `distinct`: nothing
registered is their original). `--copies N` adds copies of N marked registered photos, mark and
all (kind `benign`: their original must still be found once the mark is enrolled,
`verifier bench --mark`). Then, on a copy of a registry that already holds the rest:

    python scripts/watermark_bench_data.py --distinct /tmp/fambench/distinct.csv --shared ../shared \\
        --style centre --out /tmp/wm/centre
    verifier bench --queries /tmp/wm/centre/queries.csv --registry-extra /tmp/fambench/registry \\
        --registry-extra /tmp/wm/centre/registry --data-dir <copy> --baselines '' --seed 0 \\
        --benign-variants 1 --no-measures --out centre.json
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MARK = "NEWSWIRE"
CREDIT = "© NEWSWIRE / Photo: J. Doe"


def stamp(img: Image.Image, style: str) -> Image.Image:
    """The publisher's mark: `corner`, a credit line in the lower right (white, 2/3 opaque, 1/18
    of the height); `centre`, the name across the middle (white, 43 % opaque, 1/7 of the height);
    `wide`, the credit line in the lower left sized to the width (1/28 of it), as a mark laid out
    for the photo's width sits on portrait and landscape photos alike."""
    img = img.convert("RGB")
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if style == "corner":
        font = ImageFont.load_default(size=max(10, h // 18))
        tw = draw.textlength(CREDIT, font=font)
        draw.text((w - tw - w * 0.03, h - h // 18 * 1.6), CREDIT, font=font, fill=(255, 255, 255, 170),
                  stroke_width=1, stroke_fill=(0, 0, 0, 120))
    elif style == "centre":
        font = ImageFont.load_default(size=max(14, h // 7))
        tw = draw.textlength(MARK, font=font)
        draw.text(((w - tw) / 2, h / 2 - h // 14), MARK, font=font, fill=(255, 255, 255, 110),
                  stroke_width=2, stroke_fill=(0, 0, 0, 90))
    elif style == "wide":
        font = ImageFont.load_default(size=max(10, w // 28))
        draw.text((w * 0.03, h - w // 28 * 1.8), CREDIT, font=font, fill=(255, 255, 255, 170),
                  stroke_width=1, stroke_fill=(0, 0, 0, 120))
    else:
        raise ValueError(f"unknown style {style!r}")
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def build(distinct_csv: Path, shared: Path, out: Path, style: str, n_train: int, seed: int, copies: int = 0) -> dict[str, int]:
    base = distinct_csv.parent
    try:
        with distinct_csv.open(newline="") as fh:
            photos = [base / r["query"] for r in csv.DictReader(fh) if r["kind"] == "distinct"]
        with (shared / "datasets" / "photos" / "index.csv").open(newline="") as fh:
            train = [r["path"] for r in csv.DictReader(fh) if r["split"] == "train"]
    except (KeyError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"not a QUERIES.csv and a photos index.csv as bench-data writes them ({exc!r})") from None
    if len(photos) < 2:
        raise ValueError(f"{distinct_csv}: fewer than 2 `distinct` rows to split")
    rng = random.Random(seed)
    rng.shuffle(photos)
    rng.shuffle(train)
    registered, queries = photos[: len(photos) // 2], photos[len(photos) // 2:]
    (out / "registry").mkdir(parents=True, exist_ok=True)
    (out / "queries").mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(registered):
        stamp(Image.open(p), style).save(out / "registry" / f"a{i:03d}.jpg", quality=92)
    for i, rel in enumerate(train[:n_train]):
        stamp(Image.open(shared / "datasets" / "photos" / rel), style).save(out / "registry" / f"t{i:03d}.jpg", quality=92)
    with (out / "queries.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "original", "kind", "mask", "family", "variant"])
        for i, p in enumerate(queries):
            stamp(Image.open(p), style).save(out / "queries" / f"b{i:03d}.jpg", quality=90)
            w.writerow([f"queries/b{i:03d}.jpg", "", "distinct", "", f"watermark-{style}", ""])
        for i in range(min(copies, len(registered))):  # a copy as shared: 3/4 the size, recompressed
            img = Image.open(out / "registry" / f"a{i:03d}.jpg")
            img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.BICUBIC).save(out / "queries" / f"c{i:03d}.jpg", quality=80)
            w.writerow([f"queries/c{i:03d}.jpg", f"registry/a{i:03d}.jpg", "benign", "", f"watermark-{style}-copy", ""])
    return {"registered": len(registered) + min(n_train, len(train)), "queries": len(queries) + min(copies, len(registered))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--distinct", type=Path, required=True, help="QUERIES.csv whose `distinct` rows are unregistered photos")
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--style", choices=["corner", "centre"], default="centre")
    ap.add_argument("--train", type=int, default=300, help="marked train photos registered beside them")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--copies", type=int, default=0, help="also query copies of N marked registered photos (kind benign)")
    args = ap.parse_args(argv)
    try:
        print(build(args.distinct, args.shared, args.out, args.style, args.train, args.seed, args.copies))
    except (ValueError, OSError) as exc:
        print(f"watermark_bench_data: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
