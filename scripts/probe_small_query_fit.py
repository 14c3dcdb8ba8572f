"""Probe (not product code): does a very small query fit its original once the original is brought
down to the query's own resolution?

A query under ~110 px (a thumbnail, a copy scaled to a fifth) is enlarged to the 256-px working
frame for SIFT; its keypoints are then blurred versions of the original's and few match the
original's sharp view. Here the original's working view is resized to the query's long side and
back (the query's loss of detail, given to the original), and the inliers of both fits counted.
Queries: the families run's answers named below, after their benign transform (drawn from the name).

    python scripts/probe_small_query_fit.py --families families.csv annotate-0000 resize_part-0046 ...
"""
import argparse
import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.evaluation.queries import Query, benign_variants
from verifier.simprov.align import count_inliers, degraded_features
from verifier.simprov.pairs import WORK_SIDE, View, work_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=Path, required=True)
    ap.add_argument("names", nargs="+", help="family-NNNN: the query family-queries/family-NNNN.jpg after its transform")
    args = ap.parse_args()
    base = args.families.parent
    original = {r["query"]: r["original"] for r in csv.DictReader(args.families.open())}
    for n in args.names:
        name = f"family-queries/{n}.jpg"
        data = (base / name).read_bytes()
        made = benign_variants([Query(name, data, "manip", None, None, n.split("-")[0])], 1, 0)[0]
        query = Image.open(io.BytesIO(made.data)).convert("RGB")
        cand = Image.open(base / original[name]).convert("RGB")
        qv, cv = View.of(query, min_side=WORK_SIDE), View.of(cand)
        plain = count_inliers(qv.features, cv.features, qv.image.shape, cv.image.shape)
        low = degraded_features(np.asarray(work_image(cand)), max(query.size))  # what the service fits since 9b3c830
        degraded = count_inliers(qv.features, low.features, qv.image.shape, low.shape)
        print(f"{n}: query {query.size[0]}x{query.size[1]} ({made.transform}), inliers {plain} -> {degraded} "
              "with the original at the query's resolution", flush=True)


if __name__ == "__main__":
    main()
