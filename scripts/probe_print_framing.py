"""Probe (not product code): what finding the photo on a printed page could give stage 1, on our
own prints of `train` photos (`verifier.training.prints`, written apart from the held-out
`newsprint` family). Each photo is printed once with one set of parameters and captured twice
from the same seed: as a page (the photo with a headline and text lines around it) and as a
clipping (cut to the photo: what a perfect finder of the photo on the page would hand stage 1).
Prints the true original's stage-1 rank for both, on a registry `verifier bench --register-only`
kept (the families registry holds every shared photo).

    python scripts/probe_print_framing.py --data-dir <copy of the families registry> --n 80 --seed 7
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import random
from pathlib import Path

from PIL import Image

from verifier.service import Service
from verifier.settings import Settings, UnsignedPolicy
from verifier.training.prints import draw_params, print_copy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--data-dir", type=Path, required=True, help="a registry holding the train photos")
    ap.add_argument("--n", type=int, default=80)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    root = args.shared / "datasets" / "photos"
    rows = [r for r in csv.DictReader((root / "index.csv").open()) if r["split"] == "train"]
    rng = random.Random(args.seed)
    picks = rng.sample(rows, args.n)
    service = Service.open(Settings(data_dir=args.data_dir, database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                                    verify_requires_key=False))
    search = service.matcher.search
    stats = {"page": [0, 0], "clipping": [0, 0]}
    n = 0
    try:
        for r in picks:
            data = (root / r["path"]).read_bytes()
            original = service.originals.find_by_sha256(hashlib.sha256(data).hexdigest())
            if original is None:
                continue
            n += 1
            photo = Image.open(root / r["path"]).convert("RGB")
            params = draw_params(rng)
            seed = rng.randrange(1 << 30)
            ranks = []
            for name, clipping in (("page", False), ("clipping", True)):
                query, _ = print_copy(photo, random.Random(seed), dataclasses.replace(params, clipping=clipping))
                ids = [c.original_id for c in search.search(query).candidates]
                rank = ids.index(original.id) + 1 if original.id in ids else None
                stats[name][0] += rank == 1
                stats[name][1] += rank is not None
                ranks.append(rank)
            print(f"{r['path']} {params.capture} period {params.period:.1f}: page {ranks[0]}, clipping {ranks[1]}", flush=True)
        for name, (first, top) in stats.items():
            print(f"{name}: stage 1 IR@1 {first / n:.3f} IR@100 {top / n:.3f} (n={n})")
    finally:
        service.close()


if __name__ == "__main__":
    main()
