"""Families queries inside animated GIFs, beside the same rows as stills: does searching an animation's later
frames find what the still finds, and what does it cost (BENCHMARKS.md, "Animated copies")?

Each GIF is a slideshow of three pictures, four frames each (a progress bar grows along the bottom, so no two
frames are the same bytes), on a canvas the query's shape at most 480 px: the family query is the second or the
third picture, never the first; the other two are unregistered photos (the families data's `distinct` rows).
Unregistered slideshows (three `distinct` photos) measure what the extra frames cost in false matches. Masks are
left out (the frames are letterboxed): retrieval and verdicts only.

    python scripts/animation_bench_data.py <families dir (verifier bench-data --families)> <out dir> [--per-family 20]

writes <out>/{still,gif,alone}.csv (+ the GIFs) for `verifier bench --queries`; `alone`: each query as a GIF
of its own picture only (the same canvas, colours and progress bar), which tells what the GIF costs from what
finding the picture costs.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

FAMILIES = ("meme", "caption", "screenshot", "pad", "paste_large", "stylise")
SIDE = 480
PER_PICTURE = 4


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`img` letterboxed on black in `size`."""
    pic = img.convert("RGB")
    pic.thumbnail(size, Image.LANCZOS)
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(pic, ((size[0] - pic.width) // 2, (size[1] - pic.height) // 2))
    return canvas


def slideshow(pictures: list[Image.Image], shape: tuple[int, int]) -> bytes:
    scale = SIDE / max(shape)
    size = (max(16, round(shape[0] * scale)), max(16, round(shape[1] * scale)))
    frames = []
    total = len(pictures) * PER_PICTURE
    for p, pic in enumerate(pictures):
        base = _fit(pic, size)
        for f in range(PER_PICTURE):
            frame = base.copy()
            done = (p * PER_PICTURE + f + 1) / total
            ImageDraw.Draw(frame).rectangle((0, size[1] - 4, round(size[0] * done), size[1]), fill=(255, 255, 255))
            frames.append(frame)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=250, loop=0)
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("families", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-family", type=int, default=20)
    ap.add_argument("--distinct", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = list(csv.DictReader((args.families / "families.csv").read_text().splitlines()))
    distinct = [r for r in rows if r["kind"] == "distinct"]
    take = [r for fam in FAMILIES for r in [r for r in rows if r["family"] == fam][: args.per_family]]
    take += distinct[: args.distinct]
    (args.out / "gif").mkdir(parents=True, exist_ok=True)
    (args.out / "alone").mkdir(parents=True, exist_ok=True)
    fields = list(rows[0].keys())
    with (args.out / "still.csv").open("w", newline="") as fs, (args.out / "gif.csv").open("w", newline="") as fg, \
            (args.out / "alone.csv").open("w", newline="") as fa:
        still, gif, alone = (csv.DictWriter(f, fieldnames=fields) for f in (fs, fg, fa))
        for w in (still, gif, alone):
            w.writeheader()
        for r in take:
            src = args.families / r["query"]
            row = {**r, "query": str(src.resolve()), "mask": ""}
            if r["original"]:
                row["original"] = str((args.families / r["original"]).resolve())
            still.writerow(row)
            query = Image.open(src).convert("RGB")
            others = [Image.open(args.families / d["query"]).convert("RGB")
                      for d in rng.sample([d for d in distinct if d is not r], 2)]
            pictures = [others[0], *([query, others[1]] if rng.random() < 0.5 else [others[1], query])]
            if r["kind"] == "distinct":
                pictures = [others[0], others[1], query]
            name = Path(r["query"]).stem + ".gif"
            (args.out / "gif" / name).write_bytes(slideshow(pictures, query.size))
            gif.writerow({**row, "query": f"gif/{name}"})
            (args.out / "alone" / name).write_bytes(slideshow([query], query.size))
            alone.writerow({**row, "query": f"alone/{name}"})
    print(f"{len(take)} rows -> {args.out}")


if __name__ == "__main__":
    main()
