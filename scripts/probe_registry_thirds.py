"""Probe (not product code): finer crops on *both* sides of stage 1's region model.

"Tried, not kept: finer crops on the query side" added 16 third-size crops (4x4 grid) to the
query only, against originals described by their whole and nine half-size crops. A cut-out
subject or a transplanted piece covers 8-35 % of the original's frame, so a half-size crop of
the original still holds mostly the original's own background, while the query's crop holds the
donor's. This probe gives the originals the same 16 third-size crops and ranks every registered
original exhaustively (the service's FAISS shortlist, global top-k and local-feature vote are
left out: the region model's ranks alone), for the families queries as generated and after the
bench's benign transform, beside the shipped score:

- `shipped`: `fused_scores` over the stored 10 region vectors on both sides;
- `registry`: the originals' 26 vectors, the query's 10;
- `both`: 26 on both sides;
- `apart`: the thirds-against-thirds best pair as a second list (how many originals outside the
  shipped top 100 it holds in its top 20 / 50).

Unregistered (`distinct`) queries report the best score any original reaches under each, beside
the decision threshold: more crop pairs give every unrelated original more chances of one close
pair.

    python scripts/probe_registry_thirds.py --fambench /tmp/s63/fambench --registry <copy of its registry>
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from probe_query_crops import (  # the same crops and stored vectors, from the script beside this one
    stored_regions,
    thirds,
)
from tqdm import tqdm

from verifier.evaluation.queries import benign_variants, read_queries
from verifier.images import load_image
from verifier.simprov.embedding import to_tensor
from verifier.simprov.regions import (
    CROP_SIZE,
    RegionEmbedder,
)

BIG = 1 << 40
MAX_SIDE = 1024


def decode(data: bytes) -> Image.Image:
    return load_image(data, max_bytes=BIG, max_pixels=BIG, max_side=MAX_SIDE)[1].convert("RGB")


class Thirds:
    def __init__(self, emb: RegionEmbedder) -> None:
        self.feats, self.whiten = emb._features, emb._whiten

    def __call__(self, images: list[Image.Image]) -> np.ndarray:
        """images -> (N, 16, D)"""
        x = torch.stack([to_tensor(c, CROP_SIZE) for im in images for c in thirds(im)])
        with torch.inference_mode():
            raw = self.feats.net.pool(self.feats.net.backbone.forward_features(x))  # (16N, 1280)
            out = self.whiten(raw.reshape(len(images), 16, -1))
        return out.numpy()


def fused(q: np.ndarray, flat: np.ndarray, r: int) -> np.ndarray:
    """q (Rq, D) against flat (N * r, D) -> (N,), `fused_scores` by one matmul."""
    s = (flat @ q.T).reshape(-1, r, len(q))  # (N, r_cand, Rq)
    best = s.max((1, 2))
    whole_vs_part = np.maximum(s[:, 0, :].max(1), s[:, :, 0].max(1))
    return 0.5 * (best + whole_vs_part)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True, help="bench-data --families output (families.csv, registry/)")
    ap.add_argument("--registry", type=Path, required=True, help="a bench --data-dir that registered it (a copy: it is opened)")
    ap.add_argument("--families", default="", help="comma list (default: every family)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    emb = RegionEmbedder()
    third = Thirds(emb)
    index, flat = stored_regions(args.registry, emb.model_id)
    d = emb.dim
    stored = flat.reshape(len(flat), emb.regions, d)
    extra = np.zeros((len(stored), 16, d), np.float32)
    seen = np.zeros(len(stored), bool)
    check = []
    files = sorted(p for p in (args.fambench / "registry").iterdir() if p.is_file())
    shared_originals = {q.original for q in read_queries(args.fambench / "families.csv") if q.original is not None}
    files += sorted(shared_originals)
    batch: list[tuple[int, Image.Image]] = []

    def flush() -> None:
        if batch:
            rows = [i for i, _ in batch]
            extra[rows] = third([im for _, im in batch])
            if len(check) < 64:
                mine = emb.embed_regions([batch[0][1]])[0]
                check.append(float((mine * stored[batch[0][0]]).sum(1).min()))
            batch.clear()

    for p in tqdm(files, desc="originals"):
        data = p.read_bytes()
        row = index.get(hashlib.sha256(data).hexdigest())
        if row is None or seen[row]:
            continue
        seen[row] = True
        batch.append((row, decode(data)))
        if len(batch) == 16:
            flush()
    flush()
    print(f"originals: {len(stored)} stored, {int(seen.sum())} given thirds; recomputed vs stored region cosine, "
          f"min over {len(check)} checked: {min(check):.4f}")
    keep = seen
    both_flat = np.concatenate([stored, extra], 1)  # (N, 26, D)
    flat10 = stored.reshape(-1, d)
    flat26 = both_flat.reshape(-1, d)
    flat16 = extra.reshape(-1, d)

    families = {f for f in args.families.split(",") if f}
    queries = [q for q in read_queries(args.fambench / "families.csv") if not families or (q.family in families) or q.kind == "distinct"]
    queries += benign_variants(queries, 1, 0)
    ranks: dict[str, list[tuple[int, ...]]] = collections.defaultdict(list)
    unrelated: dict[str, list[float]] = collections.defaultdict(list)
    for q in tqdm(queries, desc="queries"):
        img = decode(q.data)
        base = emb.embed_regions([img])[0]  # (10, D)
        q16 = third([img])[0]
        q26 = np.concatenate([base, q16])
        scores = {
            "shipped": fused(base, flat10, 10),
            "registry": fused(base, flat26, 26),
            "both": fused(q26, flat26, 26),
        }
        s = (flat16 @ q16.T).reshape(-1, 16, 16)
        scores["apart"] = s.max((1, 2))
        for v in scores.values():
            v[~keep] = -2.0
        group = q.family or q.kind
        if q.original is None:
            for name, v in scores.items():
                unrelated[name].append(float(v.max()))
            continue
        true = index.get(hashlib.sha256(q.original.read_bytes()).hexdigest())
        if true is None or not keep[true]:
            continue
        ranks[group].append(tuple(1 + int((v > v[true]).sum()) for v in scores.values()) + (float(scores["shipped"][true]), float(scores["both"][true])))
    args.out.write_text(json.dumps({"ranks": ranks, "unrelated": unrelated}))

    def ir(rs: list[int], k: int) -> str:
        return f"{np.mean([r <= k for r in rs]):.3f}"

    print("| family | n | shipped IR@1 / @10 / @100 | originals' thirds | both sides' thirds | both: better / worse "
          "| outside the shipped top 100 | of them in the thirds' own top 20 / 50 |")
    print("|---|---|---|---|---|---|---|---|")
    for fam in sorted(ranks):
        one, reg, both, apart = (list(c) for c in list(zip(*ranks[fam], strict=True))[:4])
        out = [i for i, r in enumerate(one) if r > 100]
        cells = " | ".join(f"{ir(x, 1)} / {ir(x, 10)} / {ir(x, 100)}" for x in (one, reg, both))
        print(f"| {fam} | {len(one)} | {cells} | {sum(b < o for o, b in zip(one, both))} / {sum(b > o for o, b in zip(one, both))} | "
              f"{len(out)} | {sum(apart[i] <= 20 for i in out)} / {sum(apart[i] <= 50 for i in out)} |")
    for group in ("as generated", "after a benign transform"):
        rows = [r for fam, rs in ranks.items() if fam.endswith("+benign") == (group != "as generated") for r in rs]
        one, reg, both = (list(c) for c in list(zip(*rows, strict=True))[:3])
        cells = " | ".join(f"{ir(x, 1)} / {ir(x, 10)} / {ir(x, 100)}" for x in (one, reg, both))
        print(f"| **all, {group}** | {len(rows)} | {cells} | | | |")
    for name, v in unrelated.items():
        a = np.array(v)
        print(f"unrelated best score, {name}: n {len(a)}, median {np.median(a):.3f}, p99 {np.quantile(a, 0.99):.3f}, max {a.max():.3f}")


if __name__ == "__main__":
    main()
