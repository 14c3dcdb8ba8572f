"""Probe (not product code): would finer crops on the query side bring the original of a composite
(a cut-out subject, a transplant: the original a minority of the query) into stage 1's list?

Every family query (and one benign-transformed copy of each, the bench's own seed-0 transforms)
gets the shipped 10 region vectors plus 16 third-size crops (4x4 grid), scored by `fused_scores`
against the stored region vectors of a registered families registry. Two uses of the extra crops
are measured: in the same fused score (one list), and as a second list of their own whose top 20 /
50 would join the candidates. Exhaustive scores over every original: the service's FAISS shortlist
and its other sources (global top-k, the local-feature vote) are left out, so the ranks are the
region model's alone. BENCHMARKS "Tried, not kept: finer crops on the query side".

    python scripts/probe_query_crops.py --fambench /tmp/s50/fambench --registry /tmp/s52/regP
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import torch
from PIL import Image
from tqdm import tqdm

from verifier.evaluation.queries import benign_variants, read_queries
from verifier.simprov.embedding import to_tensor
from verifier.simprov.regions import (
    CROP_SIZE,
    RegionEmbedder,
    fused_scores,
    region_crops,
)
from verifier.storage.database import Database


def thirds(img: Image.Image) -> list[Image.Image]:
    """4x4 crops of a third of each side (stride 2/9), cut from the region model's working copy."""
    work, _ = region_crops(img)
    w, h = work.size
    return [work.crop((round(j * w * 2 / 9), round(i * h * 2 / 9), round(j * w * 2 / 9 + w / 3), round(i * h * 2 / 9 + h / 3)))
            for i in range(4) for j in range(4)]


def stored_regions(registry: Path, model_id: str) -> tuple[dict[str, int], np.ndarray]:
    """sha256 of each registered original -> row, and its region vectors (N, R, D)."""
    db = Database.open(None, registry / "pg")
    try:
        with db.engine.connect() as c:
            rows = c.execute(sa.text("select o.sha256, e.vector from embeddings e join originals o on o.id = e.original_id "
                                     "where e.model_id = :m order by e.id"), {"m": model_id}).all()
    finally:
        db.close()
    vectors = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
    return {r[0]: i for i, r in enumerate(rows)}, vectors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True, help="bench-data --families output (families.csv)")
    ap.add_argument("--registry", type=Path, required=True, help="a bench --data-dir that registered it (a copy: it is opened)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    emb = RegionEmbedder()
    index, flat = stored_regions(args.registry, emb.model_id)
    stored = flat.reshape(len(flat), emb.regions, emb.dim)
    queries = read_queries(args.fambench / "families.csv")
    queries += benign_variants(queries, 1, 0)
    feats, whiten = emb._features, emb._whiten
    ranks: dict[str, list[tuple[int, int, int]]] = collections.defaultdict(list)
    for q in tqdm(queries, desc="queries"):
        if q.original is None:
            continue
        true = index.get(hashlib.sha256(q.original.read_bytes()).hexdigest())
        if true is None:
            continue
        img = Image.open(io.BytesIO(q.data)).convert("RGB")
        with torch.inference_mode():
            base = emb.embed_regions([img])[0]  # (10, D)
            x = torch.stack([to_tensor(c, CROP_SIZE) for c in thirds(img)])
            extra = whiten(feats.net.pool(feats.net.backbone.forward_features(x))[None])[0].numpy()  # (16, D)
        one = fused_scores(base, stored)
        joint = fused_scores(np.concatenate([base, extra]), stored)
        s = np.einsum("rd,nsd->nrs", extra, stored)
        apart = 0.5 * (s.max((1, 2)) + s[:, :, 0].max(1))
        ranks[q.family or q.kind].append(tuple(1 + int((v > v[true]).sum()) for v in (one, joint, apart)))

    def ir(rs: list[int], k: int) -> str:
        return f"{np.mean([r <= k for r in rs]):.3f}"

    print("| family | n | shipped regions IR@1 / @10 / @100 | with the 16 crops in the score | better / worse "
          "| outside the top 100 | of them in the crops' own top 20 / 50 |")
    print("|---|---|---|---|---|---|---|")
    for fam in sorted(ranks):
        one, joint, apart = (list(c) for c in zip(*ranks[fam], strict=True))
        out = [i for i, r in enumerate(one) if r > 100]
        print(f"| {fam} | {len(one)} | {ir(one, 1)} / {ir(one, 10)} / {ir(one, 100)} | {ir(joint, 1)} / {ir(joint, 10)} / "
              f"{ir(joint, 100)} | {sum(j < o for o, j in zip(one, joint))} / {sum(j > o for o, j in zip(one, joint))} | "
              f"{len(out)} | {sum(apart[i] <= 20 for i in out)} / {sum(apart[i] <= 50 for i in out)} |")
    for group in ("as generated", "after a benign transform"):
        rows = [r for fam, rs in ranks.items() if fam.endswith("+benign") == (group != "as generated") for r in rs]
        one, joint, _ = (list(c) for c in zip(*rows, strict=True))
        print(f"| **all, {group}** | {len(rows)} | {ir(one, 1)} / {ir(one, 10)} / {ir(one, 100)} | "
              f"{ir(joint, 1)} / {ir(joint, 10)} / {ir(joint, 100)} | | | |")


if __name__ == "__main__":
    main()
