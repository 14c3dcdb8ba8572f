"""Probe (not product code): for chosen family queries, how much of the query is the original
(the mask's unmarked share) and what SIFT finds there: keypoints inside the original's part and
RANSAC inliers against the original's view, with the query at 256, 512 and 1024 px on its long side
(never enlarged), plain and mirrored. BENCHMARKS "What the cut-out misses are".

    python scripts/probe_cutout_misses.py --fambench /tmp/s50/fambench --family cutout \\
        --ids 0010,0012,0018,0020,0023,0035,0040,0042,0048,0059
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.simprov.align import count_inliers, mirrored_sift, sift_features
from verifier.simprov.pairs import View, work_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True, help="bench-data --families output (families.csv)")
    ap.add_argument("--family", default="cutout")
    ap.add_argument("--ids", required=True, help="comma list of query numbers, e.g. 0010,0012")
    args = ap.parse_args()
    rows = {r["query"]: r for r in csv.DictReader((args.fambench / "families.csv").open())}
    print("| query | variant | original's share of the query | 256 px: keypoints in it / inliers (mirrored) | 512 px | 1024 px |")
    print("|---|---|---|---|---|---|")
    for qid in args.ids.split(","):
        r = rows[f"family-queries/{args.family}-{qid}.jpg"]
        q = Image.open(args.fambench / r["query"]).convert("RGB")
        cand = View.of(Image.open(args.fambench / r["original"]).convert("RGB"))
        mask = np.asarray(Image.open(args.fambench / r["mask"]).convert("L"))
        cells = []
        for side in (256, 512, 1024):
            arr = np.asarray(work_image(q, side))
            m = np.asarray(Image.fromarray(mask).resize((arr.shape[1], arr.shape[0]), Image.NEAREST))
            parts = []
            for feats in (sift_features(arr), mirrored_sift(arr)):
                xy = np.clip(feats.points.astype(int), 0, [arr.shape[1] - 1, arr.shape[0] - 1]) if len(feats) else np.zeros((0, 2), int)
                inside = int((m[xy[:, 1], xy[:, 0]] < 128).sum())
                parts.append((inside, count_inliers(feats, cand.features, arr.shape, cand.image.shape)))
            cells.append(f"{parts[0][0]} / {parts[0][1]} ({parts[1][0]} / {parts[1][1]})")
        print(f"| {args.family}-{qid} | {r['variant']} | {(mask < 128).mean():.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
