"""Probe (not product code): the local-feature vote with the query's SIFT at the shipped 256-px
working size against a larger one, for one edit family's queries and for unregistered photos, on a
registry that `verifier bench --register-only` kept (BENCHMARKS "Tried, not kept: the vote at 512 px").

    python scripts/probe_vote_side.py --fambench /tmp/s50/fambench --data-dir /tmp/s50/reg \\
        --family cutout --n 60 --distinct 100 --side 512
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import time
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.service import Service
from verifier.settings import Settings, UnsignedPolicy
from verifier.simprov.align import sift_features
from verifier.simprov.pairs import View, work_image


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True, help="bench-data --families output (families.csv)")
    ap.add_argument("--data-dir", type=Path, required=True, help="its registry, registered (kept by bench --data-dir)")
    ap.add_argument("--family", default="cutout")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--distinct", type=int, default=100)
    ap.add_argument("--side", type=int, default=512)
    args = ap.parse_args()
    rows = list(csv.DictReader((args.fambench / "families.csv").open()))
    picked = [r for r in rows if r.get("family") == args.family][: args.n]
    distinct = [r for r in rows if r["kind"] == "distinct"][: args.distinct]
    service = Service.open(Settings(data_dir=args.data_dir, database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                                    verify_requires_key=False))
    local = service.matcher.local
    assert local is not None, "the vote is off in this configuration"
    service.matcher.sync_votes(wait=True)

    def larger(img: Image.Image) -> View:
        arr = np.asarray(work_image(img, args.side), np.uint8)
        return View(arr, sift_features(arr), img.size)

    try:
        voted = {"shipped": [], "larger": []}
        for r in picked:
            img = Image.open(args.fambench / r["query"]).convert("RGB")
            original = service.originals.find_by_sha256(hashlib.sha256((args.fambench / r["original"]).read_bytes()).hexdigest())
            true = original.id if original else None
            shipped = local.tally(service.matcher.query_view(img))
            t = time.perf_counter()
            big = local.tally(larger(img))
            ms = (time.perf_counter() - t) * 1000
            voted["shipped"].append(bool(shipped) and shipped[0] == true)
            voted["larger"].append(bool(big) and big[0] == true)
            print(f"{r['query']}: true original first by votes: shipped {voted['shipped'][-1]}, {args.side} px "
                  f"{voted['larger'][-1]} ({ms:.0f} ms)")
        for name, got in voted.items():
            print(f"{name}: the true original first by votes for {sum(got)} of {len(got)}")
        any_vote = {"shipped": 0, "larger": 0}
        for r in distinct:
            img = Image.open(args.fambench / r["query"]).convert("RGB")
            any_vote["shipped"] += bool(local.tally(service.matcher.query_view(img)))
            any_vote["larger"] += bool(local.tally(larger(img)))
        print(f"unregistered photos with an original voted: {any_vote} of {len(distinct)}")
    finally:
        service.close()


if __name__ == "__main__":
    main()
