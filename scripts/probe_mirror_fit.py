"""Probe the aligner's mirrored try (`align.estimate_alignment`) on `train` photos only.

For each photo, a plain benign copy and a mirrored one (`augment.benign`, 0-3 transforms, then
mirrored), each made into a view as the service makes a query's (enlarged to 256 px when
smaller) and fitted to the photo's view with the query's plain SIFT and with its mirrored SIFT.
The table counts, by the plain fit's inliers, the copies whose mirrored fit has more: for a
mirrored copy that is the right fit, and any plain fit beside it is spurious (repeated or
symmetric structure); for a plain copy a mirrored fit with more inliers would be a wrong one.
The aligner tried the mirrored query only under MIRROR_RETRY (16) plain inliers; the table says
whether any bar on the plain fit would do.

    PYTHONPATH=. python scripts/probe_mirror_fit.py --shared ../shared --n 500 --seed 1
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import ImageOps
from tqdm import tqdm

from verifier.simprov import augment
from verifier.simprov.align import count_inliers
from verifier.simprov.pairs import WORK_SIDE, View
from verifier.training.data import load_photo, shuffled_train_photos

BINS = (0, 8, 16, 24, 32, 48, 64, 96, 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    photos = shuffled_train_photos(args.shared, rng)
    fits: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
    for _ in tqdm(range(args.n), desc="photos", unit="photo"):
        img = load_photo(next(photos))
        original = View.of(img)
        for mirrored in (False, True):
            copy = augment.benign(img, rng, n_ops=rng.randint(0, 3)).image
            q = View.of(ImageOps.mirror(copy) if mirrored else copy, min_side=WORK_SIDE)
            plain = count_inliers(q.features, original.features, q.image.shape, original.image.shape)
            flipped = count_inliers(q.mirrored_features(), original.features, q.image.shape, original.image.shape)
            fits[mirrored].append((plain, flipped))
    print("| plain fit's inliers | plain copies | their mirrored fit better | mirrored copies | their mirrored fit better |")
    print("|---|---|---|---|---|")
    for lo, hi in zip(BINS, (*BINS[1:], None), strict=True):
        row = [f"{lo}-{hi - 1}" if hi else f"{lo}+"]
        for mirrored in (False, True):
            inside = [(p, f) for p, f in fits[mirrored] if p >= lo and (hi is None or p < hi)]
            row += [str(len(inside)), str(sum(f > p for p, f in inside))]
        print("| " + " | ".join(row) + " |")
    worst = max((p for p, f in fits[True] if f > p), default=0)
    best_wrong = max((f for p, f in fits[False] if p >= f), default=0)
    print(f"most plain inliers of a mirrored copy whose mirrored fit is better: {worst}; "
          f"most mirrored inliers of a plain copy whose plain fit is better: {best_wrong}")


if __name__ == "__main__":
    main()
