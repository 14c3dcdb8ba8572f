"""Probe (not product code): does `simprov.marks.recurring_overlays` (`verifier publishers
find-marks`) find a publisher's mark among its registered photos, and does the suggested file
serve as the mark? BENCHMARKS "Finding a publisher's marks".

A publisher's photos: `--photos` test-split photos, a share of them stamped with the watermark
bench's marks (`watermark_bench_data.stamp`: `centre`, the name across the middle; `corner`, a
credit line sized to the height; `wide`, one sized to the width). Against the suggestion: 100 other photos stamped the same way (is the mark found on
them, beside the mark's own file?) and 100 unstamped ones (what it claims there).

    python scripts/probe_find_marks.py --shared ../shared --photos 300 --shares 1,0.3,0.1,0
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.simprov import marks
from verifier.simprov.pairs import WORK_SIDE, View

sys.path.insert(0, str(Path(__file__).parent))
from watermark_bench_data import stamp


def true_mark(style: str) -> Image.Image:
    """The mark as its publisher would upload it: `stamp` over black and over white, the alpha
    recovered from the difference (a white overlay of opacity a adds a * (255 - background))."""
    size = (1024, 768)
    black = np.asarray(stamp(Image.new("RGB", size, (0, 0, 0)), style), np.float32)
    white = np.asarray(stamp(Image.new("RGB", size, (255, 255, 255)), style), np.float32)
    alpha = np.clip(255 - (white - black).mean(-1), 0, 255)
    colour = np.where(alpha[..., None] > 0, black * 255 / np.maximum(alpha[..., None], 1), 0)
    rgba = np.dstack([np.clip(colour, 0, 255), alpha]).astype(np.uint8)
    ys, xs = np.nonzero(alpha > 8)
    return Image.fromarray(rgba, "RGBA").crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=300)
    ap.add_argument("--shares", default="1,0.3,0.1,0")
    ap.add_argument("--styles", default="centre,corner,wide")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = args.shared / "datasets" / "photos"
    with (root / "index.csv").open() as fh:
        paths = [r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    random.Random(args.seed).shuffle(paths)
    n = args.photos
    photos = [Image.open(root / p).convert("RGB") for p in paths[: n + 200]]
    for style in args.styles.split(","):
        model = marks.mark_model(true_mark(style))
        queries = [View.of(stamp(p, style), min_side=WORK_SIDE) for p in photos[n : n + 100]]
        plain = [View.of(p, min_side=WORK_SIDE) for p in photos[n + 100 :]]
        own = [marks.on_mark(q.features, model, q.image.shape).sum() for q in queries]
        for share in (float(s) for s in args.shares.split(",")):
            k = round(share * n)
            views = [View.of(stamp(p, style) if i < k else p, min_side=WORK_SIDE) for i, p in enumerate(photos[:n])]
            t = time.perf_counter()
            found = marks.recurring_overlays([(v.image, v.features) for v in views])
            seconds = time.perf_counter() - t
            row: dict[str, object] = {"style": style, "photos": n, "stamped": k, "seconds": round(seconds, 2),
                                      "suggestions": len(found)}
            for j, r in enumerate(found[:3]):
                entry: dict[str, object] = {"box": [round(v, 3) for v in r.box], "frame": list(r.frame), "photos": len(r.photos),
                                            "stamped_photos": sum(i < k for i in r.photos), "keypoints": r.keypoints}
                try:
                    m = marks.mark_model(r.image)
                    got = [marks.on_mark(q.features, m, q.image.shape).sum() for q in queries]
                    entry |= {"places": m.places,
                              "stamped_queries_found": int(sum(g > 0 for g in got)),
                              "own_file_found": int(sum(o > 0 for o in own)),
                              "unstamped_claimed": round(float(np.mean(
                                  [marks.on_mark(v.features, m, v.image.shape).mean() for v in plain])), 4)}
                except ValueError as exc:
                    entry["model"] = str(exc)
                row[f"s{j + 1}"] = entry
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
