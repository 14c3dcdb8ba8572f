"""A small copy of the dev benchmark that travels to a lent GPU machine (issue 15's figures).

The device machine cannot read ../shared and takes at most 64 MiB of working tree (about 33 of
it the repository), so this copies `--photos` seeded `test` photos (about 36 KB each) into
`OUT/shared/datasets/photos` with their index.csv, builds the dev queries from them with the
same code as `verifier bench-data` (identical, benign, manip, manip+benign, distinct), and turns
the registry folder's links into relative ones so that they resolve on the other machine.

    python scripts/gpu_prepare.py --shared ../shared --out .gpu --photos 450 --per-kind 40
    (.gpu is listed in .git/info/exclude; name it in the device call's `carry`)
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
from pathlib import Path

from verifier.evaluation.data import build_dev


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=450)
    ap.add_argument("--per-kind", type=int, default=40)
    ap.add_argument("--distinct", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    src = args.shared / "datasets" / "photos"
    with (src / "index.csv").open() as fh:
        test = sorted(r["path"] for r in csv.DictReader(fh) if r["split"] == "test")
    picked = sorted(random.Random(args.seed).sample(test, min(args.photos, len(test))))
    if args.out.exists():
        shutil.rmtree(args.out)
    photos = args.out / "shared" / "datasets" / "photos"
    for rel in picked:
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, photos / rel)
    with (photos / "index.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "source", "split"])
        writer.writerows([rel, rel.split("/")[0], "test"] for rel in picked)
    dev = args.out / "dev"
    counts = build_dev(args.out / "shared", dev, n_per_kind=args.per_kind, n_identical=args.per_kind // 2,
                       n_distinct=args.distinct, seed=args.seed)
    for link in (dev / "registry").iterdir():
        target = link.resolve()
        link.unlink()
        link.symlink_to(os.path.relpath(target, link.parent))
    print(counts)


if __name__ == "__main__":
    main()
