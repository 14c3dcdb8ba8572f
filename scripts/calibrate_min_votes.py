"""Make the calibration set behind `VERIFIER_LOCAL_MIN_VOTES` from `train` photos only.

The local-feature vote (`matching.local`) lets an original with at least `local_min_votes` votes
join stage 1's candidates when stage 1 has no match, and its support admits a lone weak fit
(`Matcher._screen`). Fewer votes find more originals of small pieces and risk more unrelated
originals reaching stage 2. This writes, under `--out`:

* `registry/`: links to `--registry` `train` photos, the registered originals;
* `queries/` and `queries.csv` (the `verifier bench` format): `--pieces` pieces of registered
  originals placed into unregistered photos by a generator written here, apart from the held-out
  `transplant` family (a lasso-like polygon of 6-30 % of the original, turned up to 15 degrees
  and mirrored one time in five, covering 4-20 % of another photo's frame, then resized to
  60-100 % half the time and JPEG 60-95), and `--distinct` unregistered photos (JPEG 60-95 copies,
  resized half the time) that must match nothing.

Then each setting is one bench run on a fresh copy of one registered data directory:

    python scripts/calibrate_min_votes.py --shared ../shared --out /tmp/votes-cal --seed 1
    verifier bench --queries /tmp/votes-cal/queries.csv --registry-extra /tmp/votes-cal/registry \\
      --data-dir /tmp/votes-reg --register-only --baselines '' --seed 0 --out reg.json
    cp -a /tmp/votes-reg /tmp/votes-k4
    VERIFIER_LOCAL_MIN_VOTES=4 verifier bench --queries /tmp/votes-cal/queries.csv \\
      --registry-extra /tmp/votes-cal/registry --data-dir /tmp/votes-k4 --baselines '' --seed 0 --out k4.json
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from verifier.training.data import load_photo, shuffled_train_photos
from verifier.training.pieces import piece_into, shared_copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--registry", type=int, default=1500, help="registered train photos")
    ap.add_argument("--pieces", type=int, default=150)
    ap.add_argument("--distinct", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    photos = shuffled_train_photos(args.shared, rng)
    registered = [next(photos) for _ in range(args.registry)]
    (args.out / "registry").mkdir(parents=True, exist_ok=True)
    (args.out / "queries").mkdir(exist_ok=True)
    for i, p in enumerate(registered):
        link = args.out / "registry" / f"{i:05d}{p.suffix.lower()}"
        if not link.exists():
            link.symlink_to(p.resolve())
    rows = []
    for i in range(args.pieces):
        k = rng.randrange(len(registered))
        name = f"queries/piece-{i:04d}.jpg"
        piece_into(load_photo(registered[k]), load_photo(next(photos)), rng).save(args.out / name, quality=95)
        rows.append({"query": name, "original": f"registry/{k:05d}{registered[k].suffix.lower()}", "kind": "manip", "family": "piece"})
    for i in range(args.distinct):
        name = f"queries/distinct-{i:04d}.jpg"
        shared_copy(load_photo(next(photos)), rng).save(args.out / name, quality=95)
        rows.append({"query": name, "original": "", "kind": "distinct", "family": ""})
    with (args.out / "queries.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["query", "original", "kind", "family"])
        w.writeheader()
        w.writerows(rows)
    print(f"{len(registered)} registered, {args.pieces} pieces, {args.distinct} distinct under {args.out}")


if __name__ == "__main__":
    main()
