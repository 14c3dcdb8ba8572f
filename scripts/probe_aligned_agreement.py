"""Probe (not product code): does pixel agreement inside the aligned frame separate a
same-subject false match (two photos of two monarch butterflies, BENCHMARKS "GPU (H200)") from
true pairs of the edit families? Per pair: RANSAC inliers, the 90th percentile over 8x8 cells of
the correlation of gradient magnitudes between the aligned query and the original (cells the
query covers), and the share of cells above 0.5.

    python scripts/probe_aligned_agreement.py --photos .gpu/shared/datasets/photos \
        --families cutout,transplant,multi_source,head_swap --n 20
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from verifier.simprov import edits
from verifier.simprov.pairs import View, align_pair

MONARCHS = ("imagenet_sample/n02279972_monarch.jpg", "nips17_adv_dev_openimages/0d85e0103989c850.jpg")

def grad(x: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))


def measures(q_img: Image.Image, c_img: Image.Image) -> tuple[int, float, float, int]:
    """(inliers, q90 of the cells' gradient correlation, share of cells above 0.5, cells)."""
    p = align_pair(View.of(q_img), View.of(c_img))
    a, b, v = grad(p.query), grad(p.candidate), p.valid.astype(bool)
    k = a.shape[0] // 8
    cells = []
    for i in range(8):
        for j in range(8):
            box = (slice(i * k, (i + 1) * k), slice(j * k, (j + 1) * k))
            m = v[box]
            if m.mean() < 0.5:
                continue
            x, y = a[box][m], b[box][m]
            if x.std() > 1e-3 and y.std() > 1e-3:
                cells.append(float(np.corrcoef(x, y)[0, 1]))
    c = np.array(cells) if cells else np.zeros(1)
    return p.alignment.inliers, float(np.quantile(c, 0.9)), float((c > 0.5).mean()), len(cells)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, required=True, help="a photos folder with index.csv holding both monarchs")
    ap.add_argument("--families", default="cutout,transplant,multi_source,head_swap")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = args.photos
    mon, other = (Image.open(root / p).convert("RGB") for p in MONARCHS)
    print("monarchs (inliers, q90, share > 0.5, cells):", measures(mon, other), measures(other, mon))
    rows = [r["path"] for r in csv.DictReader((root / "index.csv").open())]
    rng = random.Random(args.seed)
    for fam in args.families.split(","):
        out = []
        for _ in range(args.n):
            img = Image.open(root / rows[rng.randrange(len(rows))]).convert("RGB")
            donors = [Image.open(root / rows[rng.randrange(len(rows))]).convert("RGB") for _ in range(3)]
            out.append(measures(edits.make_edit(fam, img, donors, rng).image.convert("RGB"), img))
        print(fam, "(inliers, q90):", sorted((int(a), round(b, 3)) for a, b, _, _ in out))


if __name__ == "__main__":
    main()
