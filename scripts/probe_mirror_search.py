"""Probe (not product code): stage 1 with the mirrored query too. Stage 1's vectors are not
mirror-invariant (no flip in the embedding's training views; the region model is ImageNet's), so a
mirrored piece of an original may rank far lower than the piece itself. For each families query
this prints the true original's stage-1 rank from the query, from its mirror image, and from both
(each candidate's better score), and for unregistered photos the best stage-1 score each way
(whether the mirror would raise a false stage-1 match), on a registry `verifier bench
--register-only` kept.

    python scripts/probe_mirror_search.py --fambench /tmp/s63/fambench --data-dir <copy of the registry> \\
        --families cutout,transplant --distinct 100
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageOps

from verifier.service import Service
from verifier.settings import Settings, UnsignedPolicy


def rank(candidates: dict, true) -> int | None:
    order = sorted(candidates, key=lambda oid: -candidates[oid])
    return order.index(true) + 1 if true in candidates else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True, help="bench-data --families output (families.csv)")
    ap.add_argument("--data-dir", type=Path, required=True, help="its registry, registered (kept by bench --data-dir)")
    ap.add_argument("--families", default="cutout,transplant")
    ap.add_argument("--distinct", type=int, default=100)
    args = ap.parse_args()
    families = set(args.families.split(","))
    rows = list(csv.DictReader((args.fambench / "families.csv").open()))
    picked = [r for r in rows if r.get("family") in families]
    distinct = [r for r in rows if r["kind"] == "distinct"][: args.distinct]
    service = Service.open(Settings(data_dir=args.data_dir, database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                                    verify_requires_key=False))
    search = service.matcher.search
    k = search.top_k

    def both(img: Image.Image) -> tuple[dict, dict, float]:
        plain = {c.original_id: c.score for c in search.search(img).candidates}
        t = time.perf_counter()
        mirrored = {c.original_id: c.score for c in search.search(ImageOps.mirror(img)).candidates}
        ms = (time.perf_counter() - t) * 1000
        return plain, mirrored, ms

    try:
        per = defaultdict(lambda: defaultdict(int))
        times = []
        for r in picked:
            img = Image.open(args.fambench / r["query"]).convert("RGB")
            original = service.originals.find_by_sha256(hashlib.sha256((args.fambench / r["original"]).read_bytes()).hexdigest())
            true = original.id if original else None
            plain, mirrored, ms = both(img)
            times.append(ms)
            merged = {oid: max(plain.get(oid, -1.0), mirrored.get(oid, -1.0)) for oid in {*plain, *mirrored}}
            merged = dict(sorted(merged.items(), key=lambda kv: -kv[1])[:k])
            ranks = (rank(plain, true), rank(mirrored, true), rank(merged, true))
            fam = r["family"]
            per[fam]["n"] += 1
            for name, rk in zip(("plain", "mirror", "both"), ranks, strict=True):
                per[fam][f"{name}@1"] += rk == 1
                per[fam][f"{name}@100"] += rk is not None
            print(f"{r['query']} {r.get('variant') or ''}: ranks plain {ranks[0]} mirror {ranks[1]} both {ranks[2]}")
        for fam, c in sorted(per.items()):
            n = c["n"]
            print(f"{fam} (n={n}): " + ", ".join(f"{name} IR@1 {c[name + '@1'] / n:.4f} IR@100 {c[name + '@100'] / n:.4f}"
                                                for name in ("plain", "mirror", "both")))
        threshold = search.decision_threshold
        over = {"plain": 0, "both": 0}
        for r in distinct:
            img = Image.open(args.fambench / r["query"]).convert("RGB")
            plain, mirrored, _ = both(img)
            top_plain = max(plain.values(), default=-1.0)
            top_both = max([top_plain, *mirrored.values()])
            over["plain"] += top_plain >= threshold
            over["both"] += top_both >= threshold
        print(f"unregistered photos over the stage-1 threshold {threshold:.4f}: {over} of {len(distinct)}")
        times.sort()
        print(f"mirrored search ms p50 {times[len(times) // 2]:.0f}")
    finally:
        service.close()


if __name__ == "__main__":
    main()
