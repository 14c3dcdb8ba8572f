"""Probe (not product code): does one index over every enrolled mark (`simprov.marks.MarkIndex`)
find the same keypoints as each mark searched on its own (`on_mark`), and what does a view cost
as the marks enrolled grow? BENCHMARKS "Many publishers' marks".

Marks: publisher names set in the machine's TrueType fonts, white and semi-opaque with a dark
outline, as stock and agency overlays are (the same look as the bench's marks). Queries: test-split
photos at the working size, half of them with one of the enrolled marks stamped at a random place
and height, half unmarked; each query's plain and mirrored features are searched.

    python scripts/probe_mark_index.py --shared ../shared --photos 200 --counts 1,4,16,64,256
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from verifier.simprov import marks
from verifier.simprov.align import mirrored_sift
from verifier.simprov.pairs import WORK_SIDE, View

NAMES = ["NEWSWIRE", "AGENCY", "PHOTOS", "PRESS", "WIRE", "STOCK", "IMAGES", "DAILY", "POST", "TIMES", "HERALD",
         "GAZETTE", "COURIER", "TRIBUNE", "CHRONICLE", "OBSERVER", "EXPRESS", "LEDGER", "SENTINEL", "GLOBE",
         "MIRROR", "REPUBLIC", "NATION", "VOICE", "EAGLE", "STAR", "SUN", "JOURNAL", "REVIEW", "DISPATCH",
         "BULLETIN", "MONITOR"]
FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))


def fonts() -> list[Path]:
    for d in FONT_DIRS:
        found = sorted(d.rglob("*.ttf"))
        if found:
            return found
    raise SystemExit("no TrueType fonts found")


def mark_image(text: str, font: Path, size: int = 80) -> Image.Image:
    f = ImageFont.truetype(str(font), size)
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (8, 8))).textbbox((0, 0), text, font=f, stroke_width=2)
    img = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((4 - left, 4 - top), text, font=f, fill=(255, 255, 255, 120), stroke_width=2,
                             stroke_fill=(0, 0, 0, 90))
    return img


def stamp(photo: Image.Image, mark: Image.Image, rng: random.Random) -> Image.Image:
    h = max(8, round(photo.height * rng.uniform(0.05, 0.2)))
    w = min(photo.width - 2, round(mark.width * h / mark.height))
    small = mark.resize((w, h), Image.LANCZOS)
    out = photo.convert("RGBA")
    out.alpha_composite(small, (rng.randrange(0, max(1, photo.width - w)), rng.randrange(0, max(1, photo.height - h))))
    return out.convert("RGB")


def _descriptor_bytes(index: marks.MarkIndex) -> int:
    """What the index's descriptors take: the IVF index as serialised (codes, ids, centroids,
    direct map), or the models' arrays for the exact search."""
    if index._ivf is None:
        return sum(m.descriptors.nbytes for m in index.marks)
    import faiss

    return len(faiss.serialize_index(index._ivf))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--counts", default="1,4,16,64,256")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    counts = [int(c) for c in args.counts.split(",")]
    pairs = [(n, f) for f in fonts() for n in NAMES]
    rng.shuffle(pairs)
    images = [mark_image(n, f) for n, f in pairs[: max(counts)]]
    t = time.perf_counter()
    models = [marks.mark_model(m) for m in images]
    print(f"{len(models)} mark models in {time.perf_counter() - t:.1f} s, descriptors p50 "
          f"{int(np.median([len(m) for m in models]))}", flush=True)

    root = args.shared / "datasets" / "photos"
    with (root / "index.csv").open() as fh:
        paths = [r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    rng.shuffle(paths)
    queries = []  # (features, shape, stamped mark or None) for the plain and mirrored features
    for i, p in enumerate(paths[: args.photos]):
        img = Image.open(root / p).convert("RGB")
        img.thumbnail((WORK_SIDE, WORK_SIDE))
        which = rng.randrange(min(counts)) if i % 2 == 0 else None  # a mark every count enrols
        if which is not None:
            img = stamp(img, images[which], rng)
        view = View.of(img, min_side=WORK_SIDE)
        queries.append((view.features, view.image.shape, which, which is None))
        queries.append((mirrored_sift(view.image), view.image.shape, None, which is None))

    rows = []
    for k in counts:
        t = time.perf_counter()
        index = marks.MarkIndex(models[:k])
        build = time.perf_counter() - t
        exact_s = index_s = 0.0
        differ = kp_differ = found = stamped_found = stamped = 0
        unmarked_kp = unmarked_claimed = unmarked_views_claimed = 0
        for features, shape, which, unmarked in queries:
            t = time.perf_counter()
            exact = {i: on for i, m in enumerate(models[:k]) if (on := marks.on_mark(features, m, shape)).any()}
            exact_s += time.perf_counter() - t
            t = time.perf_counter()
            got = index.on(features, shape)
            index_s += time.perf_counter() - t
            a = np.zeros(len(features), bool)
            b = np.zeros(len(features), bool)
            for on in exact.values():
                a |= on
            for on in got.values():
                b |= on
            same = exact.keys() == got.keys() and all((exact[i] == got[i]).all() for i in exact)
            differ += not same
            kp_differ += int((a != b).sum())
            found += bool(got)
            if which is not None:
                stamped += 1
                stamped_found += which in got
            if unmarked:  # a photo nobody stamped (plain or mirrored): what the marks claim there is its own content
                unmarked_kp += len(features)
                unmarked_claimed += int(b.sum())
                unmarked_views_claimed += bool(b.any())
        row = {"marks": k, "descriptors": index.size, "ivf": index._ivf is not None,
               "descriptor_mb": round(_descriptor_bytes(index) / 2**20, 1),
               "build_ms": round(build * 1000), "views": len(queries), "views_differing": differ,
               "keypoints_differing": kp_differ, "views_with_a_mark": found,
               "stamped_found": f"{stamped_found}/{stamped}",
               "unmarked_views_with_keypoints_claimed": unmarked_views_claimed,
               "unmarked_keypoints_claimed": round(unmarked_claimed / max(1, unmarked_kp), 4),
               "exact_ms_per_view": round(exact_s / len(queries) * 1000, 1),
               "index_ms_per_view": round(index_s / len(queries) * 1000, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
