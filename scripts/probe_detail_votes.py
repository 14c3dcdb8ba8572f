"""Probe (not product code): what the detail features' vote costs in a newsroom-sized registry, where every
original is large (BENCHMARKS.md, "The detail index at 10,000 large originals").

1. `--n` real photos brought to a 1,024-px kept frame (bicubic: the shared photos are all under 768 px) and each
   frame's detail features as ingest computes them (`CandidateViews.detail_of`: 1,000 strongest SIFT keypoints),
   cached in `--cache`.
2. The detail index built from them as the service builds it (`LocalFeatureIndex`, IVF from `DETAIL_IVF_FROM`),
   and beside it the views' index of a registry (`--views-index`: its saved `local-sift.npz`).
3. For `--queries` query images (a bench CSV, shuffled with seed 0): the vote of each index as a request votes
   (the query's working-view SIFT and its mirror), then both one after the other and both on two threads.

    python scripts/probe_detail_votes.py --photos dev10k/distractors dev10k/registry --n 10000 \
        --cache detail10k.npz --views-index <10k registry>/index/local-sift.npz --queries devbench/queries.csv
"""
from __future__ import annotations

import argparse
import csv
import random
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from index.local_index import LocalFeatureIndex
from verifier.matching.local import DETAIL_IVF_FROM
from verifier.matching.views import CandidateViews
from verifier.simprov.pairs import View

SIDE = 1024


def _detail(path: Path) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    s = SIDE / max(img.size)
    img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.BICUBIC)
    found = CandidateViews(Path("."), detail_features=1000).detail_of(img)
    assert found is not None
    return np.clip(found.features.descriptors, 0, 255).astype(np.uint8)


def _features(photos: list[Path], n: int, cache: Path) -> list[np.ndarray]:
    if cache.exists():
        with np.load(cache) as z:
            counts, flat = z["counts"], z["descriptors"]
        return np.split(flat, np.cumsum(counts)[:-1])
    paths = sorted(p for d in photos for p in d.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    with Pool(2) as pool:
        found = list(tqdm(pool.imap(_detail, paths, chunksize=16), total=len(paths), desc="detail features"))
    np.savez(cache, counts=np.array([len(d) for d in found]), descriptors=np.concatenate(found))
    return found


def _ms(x: list[float]) -> str:
    return f"p50 {np.percentile(x, 50):.1f} p95 {np.percentile(x, 95):.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, nargs="+", required=True)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--views-index", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--n-queries", type=int, default=300)
    args = ap.parse_args()

    found = _features(args.photos, args.n, args.cache)
    print(f"{len(found)} large originals, {sum(map(len, found))} detail descriptors")
    t = time.monotonic()
    detail = LocalFeatureIndex(ivf_threshold=DETAIL_IVF_FROM)
    detail.build(list(enumerate(found)))
    print(f"detail index built in {time.monotonic() - t:.0f} s: {detail.kind}, {detail.nlist} lists")
    views = LocalFeatureIndex()
    with np.load(args.views_index) as z:
        views.restore({k: z[k] for k in ("index", "delta", "dead", "in_file") if k in z.files})
    print(f"views' index: {len(views)} descriptors, {views.kind}, {views.nlist} lists")

    rows = list(csv.DictReader(args.queries.open()))
    random.Random(0).shuffle(rows)
    times: dict[str, list[float]] = {k: [] for k in ("views", "detail", "one after the other", "on two threads")}
    with ThreadPoolExecutor(1) as pool:
        for row in tqdm(rows[: args.n_queries], desc="votes"):
            v = View.of(Image.open(args.queries.parent / row["query"]).convert("RGB"))
            q = np.concatenate([v.features.descriptors, v.mirrored_features().descriptors])
            t0 = time.perf_counter()
            views.vote(q, 0.7)
            t1 = time.perf_counter()
            detail.vote(q, 0.7)
            t2 = time.perf_counter()
            later = pool.submit(detail.vote, q, 0.7)
            views.vote(q, 0.7)
            later.result()
            t3 = time.perf_counter()
            for k, ms in zip(times, (t1 - t0, t2 - t1, t2 - t0, t3 - t2), strict=True):
                times[k].append(ms * 1000)
    for k, x in times.items():
        print(f"{k}: {_ms(x)}")


if __name__ == "__main__":
    main()
