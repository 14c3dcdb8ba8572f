"""Probe (not product code): do second photographs of a scene (sibling shots, the false-match class
of "False matches on a larger draw") fit an epipolar geometry much better than a homography, where
copies, edited or not, fit one? For each pair: RootSIFT matches with the ratio test, RANSAC
homography inliers (3 px, as stage 2) and fundamental-matrix inliers (1 px), plain and mirrored.
Pairs: every two MICC-F220 originals that align (>= 8 inliers: another shot of one scene), each
MICC-F220 forgery with its original, and every edit family (then `finish`) on test-split photos.
BENCHMARKS "Tried, not kept: parallax".

    python scripts/probe_parallax.py --shared ../shared --photos 30 --out parallax.json
"""
import argparse
import csv
import json
import random
import sys
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from verifier.simprov import edits as E
from verifier.simprov.align import RATIO, mirrored_sift
from verifier.simprov.pairs import WORK_SIDE, View


def fit(fq, fc):
    if len(fq) < 8 or len(fc) < 8:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(fc.matching, fq.matching, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < RATIO * n.distance]
    if len(good) < 8:
        return None
    src = np.float32(fc.points[[m.queryIdx for m in good]])
    dst = np.float32(fq.points[[m.trainIdx for m in good]])
    _, mh = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if mh is None:
        return None
    mh = mh.ravel().astype(bool)
    f, mf = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, 1.0, 0.999)
    mf = mf.ravel().astype(bool) if mf is not None and f is not None and f.shape == (3, 3) else np.zeros(len(good), bool)
    return {"putative": len(good), "h": int(mh.sum()), "f": int(mf.sum()), "f_not_h": int((mf & ~mh).sum())}


def best(vq, vc):
    a = fit(vq.features, vc.features)
    b = fit(mirrored_sift(vq.image), vc.features)
    cands = [x for x in (a, b) if x]
    return max(cands, key=lambda x: x["h"]) if cands else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    shared = args.shared / "datasets"
    rows = []
    micc = shared / "micc-f220" / "images"
    originals = sorted(p for p in micc.glob("*_scale.jpg"))
    views = {p.name: View.of(Image.open(p).convert("RGB"), min_side=WORK_SIDE) for p in originals}
    for a, b in combinations(sorted(views), 2):
        r = best(views[a], views[b])
        if r and r["h"] >= 8:
            rows.append({"kind": "sibling", "q": a, "c": b, **r})
    with (shared / "micc-f220" / "pairs.csv").open() as fh:
        for row in csv.DictReader(fh):
            q = View.of(Image.open(shared / "micc-f220" / row["edited"]).convert("RGB"), min_side=WORK_SIDE)
            r = best(q, views[Path(row["original"]).name])
            if r:
                rows.append({"kind": "micc_forgery", "q": row["edited"], **r})
    with (shared / "photos" / "index.csv").open() as fh:
        test = [r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    rng = random.Random(0)
    rng.shuffle(test)
    donors = [Image.open(shared / "photos" / p).convert("RGB") for p in test[40:52]]
    for p in test[: args.photos]:
        img = Image.open(shared / "photos" / p).convert("RGB")
        vc = View.of(img, min_side=WORK_SIDE)
        for name, fam in E.FAMILIES.items():
            try:
                s = E.finish(fam.fn(img, donors[: max(1, fam.donors)], random.Random(len(rows))), random.Random(len(rows) + 1))
            except Exception as exc:  # noqa: BLE001 (a probe: a family that cannot edit this photo is skipped)
                print("skip", name, exc, file=sys.stderr)
                continue
            q = View.of(s.image, min_side=WORK_SIDE)
            r = best(q, vc)
            if r:
                rows.append({"kind": name, "q": p, **r})
    args.out.write_text(json.dumps(rows))
    for kind in sorted({r["kind"] for r in rows}):
        sel = [r for r in rows if r["kind"] == kind and r["h"] >= 8]
        share = np.array([r["f_not_h"] / r["h"] for r in sel]) if sel else np.zeros(1)
        print(f"{kind:16s} pairs {len(sel):3d}  homography inliers p50 {np.median([r['h'] for r in sel]) if sel else 0:5.0f}  "
              f"epipolar-only / homography inliers p50 {np.median(share):.2f} p90 {np.percentile(share, 90):.2f} "
              f"max {share.max():.2f}")


if __name__ == "__main__":
    main()
