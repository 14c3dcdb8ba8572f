"""Probe (not product code): SIFT inliers at the working frame (256 px) and at the closer look's 384 px.

For every query a `probe_candidate_order.py` run left unmatched, the first K stage-1 candidates and those the
local-feature vote supported are fitted against the query at both sizes (plain and mirrored, the better), from
the originals' stored files in the run's data directory (its database names each original's blob). Transformed
copies (`name#benignN`) are drawn again from the seed and the name as the benchmark draws them; a held-out
photo's copy (`holdout/...`) is drawn here from its name (the benchmark's draw is sequential), so read the
held-out rows as chance fits of the same kind of photo, not of the exact query.

    python scripts/probe_closer_look.py lists.json BENCH_DIR DATA_DIR out.json [--k 10] [--seed 0]

BENCH_DIR: the directory of the benchmark's queries.csv (the queries' names are relative to it).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.simprov import augment
from verifier.simprov.align import (
    closer_counts,
    closer_features,
    count_inliers,
    mirrored_sift,
    sift_features,
)
from verifier.simprov.pairs import WORK_SIDE, work_image

ARGS: argparse.Namespace
BLOBS: dict[str, str] = {}


def _blob_keys(data_dir: Path) -> dict[str, str]:
    from sqlalchemy import select

    from verifier.storage.database import Database
    from verifier.storage.models import Original

    db = Database.open(None, data_dir / "pg")
    try:
        with db.session() as s:
            return {str(i): k for i, k in s.execute(select(Original.id, Original.blob_key)).all()}
    finally:
        db.close()


def _query(name: str) -> Image.Image:
    base, _, v = name.partition("#benign")
    if base.startswith("holdout/"):
        rng = random.Random("h" + base)
        made = augment.benign(Image.open(base[len("holdout/"):]).convert("RGB"), rng, n_ops=rng.randint(1, 2))
        buf = io.BytesIO()
        made.image.convert("RGB").save(buf, "JPEG", quality=88)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    img = Image.open(os.path.join(ARGS.bench_dir, base)).convert("RGB")
    if v:
        rng = random.Random(f"{ARGS.seed}:{base}:{int(v)}")
        img = augment.benign_after(augment.Sample(img, Image.new("L", img.size, 0), []), rng).image
        buf = io.BytesIO()
        img.save(buf, "PNG")
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def _one(q: dict) -> dict:
    img = _query(q["query"])
    w = work_image(img)
    if max(w.size) < WORK_SIDE:  # the service enlarges a small query to the working size
        f = WORK_SIDE / max(w.size)
        w = w.resize((round(w.width * f), round(w.height * f)), Image.BICUBIC)
    a = np.asarray(w)
    plain, mirrored = sift_features(a), mirrored_sift(a)
    look = closer_features(img, mirrored=True)
    supported = q.get("supported", [])
    idx = list(range(min(ARGS.k, len(q["ids"])))) + [i for i in supported if i >= ARGS.k]
    out = {"query": q["query"], "true": q["true"], "cands": []}
    for i in idx:
        original = Image.open(Path(ARGS.data_dir) / "blobs" / BLOBS[q["ids"][i]]).convert("RGB")
        c = np.asarray(work_image(original))
        fc = sift_features(c)
        n256 = max(count_inliers(plain, fc, a.shape, c.shape), count_inliers(mirrored, fc, a.shape, c.shape))
        n384 = closer_counts(look, [closer_features(original)], 1)[0]
        out["cands"].append({"i": i, "true": q["ids"][i] == q["true"], "sup": i in supported, "256": n256, "384": n384})
    return out


def main() -> None:
    global ARGS, BLOBS
    p = argparse.ArgumentParser()
    p.add_argument("lists")
    p.add_argument("bench_dir")
    p.add_argument("data_dir", type=Path)
    p.add_argument("out")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    ARGS = p.parse_args()
    BLOBS = _blob_keys(ARGS.data_dir)
    lists = json.loads(Path(ARGS.lists).read_text())
    todo = [q for q in lists if q["matched"] is None and all(i in BLOBS for i in q["ids"][: ARGS.k])]
    with Pool(2) as pool:
        out = list(pool.imap(_one, todo, chunksize=4))
    Path(ARGS.out).write_text(json.dumps(out))
    print(f"{len(out)} unmatched queries -> {ARGS.out}")


if __name__ == "__main__":
    main()
