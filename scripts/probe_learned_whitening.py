"""Probe (not product code): would a whitening learned from matching pairs (Radenovic et al.,
TPAMI 2019, "learned whitening") bring the original of a piece placed into another scene (a cut-out,
a transplant) higher in the region model's ranking than the shipped PCA whitening?

The region model is the untrained ImageNet backbone + GeM + a linear projection; only the
projection changes here. Its pairs come from `train` photos only: a piece of each placed into another
train photo (`training.pieces.placed_piece`, the generator written apart from the held-out families),
the query's crop holding most of the piece paired with the original's whole and with the original's
crop holding most of the piece's source; and a benign copy of each, whole with whole and crop with crop.
C_S (the pairs' difference covariance, shrunk towards the identity by `--shrink`) whitens; a PCA of the
whitened train descriptors rotates and keeps `dim` axes.

Both projections are scored exhaustively by `fused_scores` over every registered original's raw
descriptors (recomputed from the registry's blobs as ingest decodes them; checked against the stored
vectors), for the family and MICC-F220 queries as generated and after the bench's seed-0 transform.
Raw descriptors are cached in `--cache`.

    python scripts/probe_learned_whitening.py --fambench /tmp/s56/fambench --registry <copy> \
        --photos ../shared/datasets/photos --pairs 1500 --cache /tmp/s57/lw
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from verifier.evaluation.queries import benign_variants, read_queries
from verifier.images import load_image
from verifier.settings import Settings
from verifier.simprov import augment
from verifier.simprov.nn.fuse import fuse_conv_bn
from verifier.simprov.nn.whiten import Whitening
from verifier.simprov.regions import (
    REGIONS,
    RegionEmbedder,
    RegionFeatures,
    fused_scores,
)
from verifier.training.data import train_photos
from verifier.training.pieces import placed_piece, shared_copy

SETTINGS = Settings()
# region k's box in a frame's fractions (`regions.region_crops`): 0 the whole, then the 3x3 half-size crops
BOXES = [(0.0, 0.0, 1.0, 1.0)] + [(j / 4, i / 4, j / 4 + 0.5, i / 4 + 0.5) for i in range(3) for j in range(3)]


def decode(data: bytes) -> Image.Image:
    return load_image(data, max_bytes=SETTINGS.max_upload_bytes, max_pixels=SETTINGS.max_image_pixels,
                      max_side=SETTINGS.work_max_side)[1]


def raw_of(feats: RegionFeatures, images: list[Image.Image]) -> np.ndarray:
    with torch.inference_mode():
        return feats.raw(images).numpy().astype(np.float16)  # (N, 10, 1280)


def batched(feats: RegionFeatures, items: list, load, desc: str, batch: int = 16) -> np.ndarray:
    out = []
    for i in tqdm(range(0, len(items), batch), desc=desc):
        out.append(raw_of(feats, [load(x) for x in items[i:i + batch]]))
    return np.concatenate(out)


def registry_raw(registry: Path, feats: RegionFeatures, cache: Path) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    import sqlalchemy as sa

    from verifier.storage.database import Database
    db = Database.open(None, registry / "pg")
    try:
        with db.engine.connect() as c:
            rows = c.execute(sa.text("select o.sha256, e.vector from embeddings e join originals o on o.id = e.original_id "
                                     "where e.model_id = :m order by e.id"), {"m": RegionEmbedder().model_id}).all()
    finally:
        db.close()
    shas = [r[0] for r in rows]
    stored = np.stack([np.frombuffer(r[1], np.float32) for r in rows]).reshape(len(rows), REGIONS, -1)
    f = cache / "registry.npy"
    if not f.exists():
        blob = lambda s: decode((registry / "blobs" / s[:2] / s[2:4] / s).read_bytes())
        np.save(f, batched(feats, shas, blob, "registry"))
    return {s: i for i, s in enumerate(shas)}, np.load(f), stored


def share_in(mask: np.ndarray, box: tuple[float, float, float, float]) -> float:
    h, w = mask.shape
    x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
    return float(mask[y0:y1, x0:x1].sum() / max(1.0, mask.sum()))


def train_pairs(photos: Path, n: int, seed: int, feats: RegionFeatures, cache: Path,
                index: dict[str, int], reg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw descriptors (M, 1280) of every train region used, and positive pairs (P, 2) of rows."""
    f = cache / f"pairs-{n}-{seed}.npz"
    if not f.exists():
        rng = random.Random(seed)
        paths = train_photos(photos)
        rng.shuffle(paths)
        chosen, scenes = paths[:n], paths[n:2 * n]
        originals, pieces, copies, where = [], [], [], []
        for p, s in zip(tqdm(chosen, desc="pieces"), scenes, strict=True):
            o = decode(p.read_bytes())
            comp, mask, box = placed_piece(o, decode(s.read_bytes()), rng)
            m = np.asarray(mask, np.float32) / 255
            ob = (box[0] / o.width, box[1] / o.height, box[2] / o.width, box[3] / o.height)
            ko = max(range(1, REGIONS), key=lambda k: _overlap(ob, BOXES[k]))
            kq = max(range(1, REGIONS), key=lambda k: share_in(m, BOXES[k]))
            originals.append(index.get(hashlib.sha256(p.read_bytes()).hexdigest(), -1))
            pieces.append(shared_copy(comp, rng))
            copies.append(augment.benign(o, rng).image)
            where.append((kq, ko))
        missing = [i for i, r in enumerate(originals) if r < 0]
        if missing:
            raise SystemExit(f"{len(missing)} train photos are not in the registry")
        q = batched(feats, pieces, lambda x: x, "piece queries")
        b = batched(feats, copies, lambda x: x, "benign copies")
        np.savez(f, originals=np.array(originals), q=q, b=b, where=np.array(where))
    d = np.load(f)
    o = reg[d["originals"]]  # (n, 10, 1280)
    n = len(o)
    x = np.concatenate([o.reshape(-1, o.shape[-1]), d["q"].reshape(-1, o.shape[-1]), d["b"].reshape(-1, o.shape[-1])])
    row = lambda part, i, k: part * n * REGIONS + i * REGIONS + k
    pairs = []
    for i, (kq, ko) in enumerate(d["where"]):
        pairs += [(row(1, i, kq), row(0, i, 0)), (row(1, i, kq), row(0, i, ko))]
        pairs += [(row(2, i, k), row(0, i, k)) for k in range(REGIONS)]
    return x, np.array(pairs)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Share of box a inside box b."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]))


def learned(x: np.ndarray, pairs: np.ndarray, dim: int, shrink: float) -> Whitening:
    """Learned whitening: centre on the train descriptors, whiten by the matching pairs' difference
    covariance (shrunk), rotate onto the top `dim` principal axes of the whitened descriptors."""
    xs = F.normalize(torch.from_numpy(x.astype(np.float32)).double(), dim=-1)
    mean = xs.mean(0)
    d = xs[pairs[:, 0]] - xs[pairs[:, 1]]
    cs = d.T @ d / len(d)
    cs = (1 - shrink) * cs + shrink * torch.trace(cs) / cs.shape[0] * torch.eye(cs.shape[0], dtype=cs.dtype)
    e, v = torch.linalg.eigh(cs)
    p = v @ torch.diag(e.clamp_min(1e-12) ** -0.5) @ v.T  # C_S^-1/2
    y = (xs - mean) @ p
    _, _, vt = torch.linalg.svd(y, full_matrices=False)
    w = Whitening(x.shape[1], dim)
    w.mean.copy_(mean.float())
    w.proj.copy_((p @ vt[:dim].T).float())
    return w


def apply(w: Whitening, raw: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return w(torch.from_numpy(raw.astype(np.float32))).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True)
    ap.add_argument("--registry", type=Path, required=True, help="a bench --data-dir that registered it (a copy)")
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shrink", default="0.1,0.3,0.6")
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    args.cache.mkdir(parents=True, exist_ok=True)
    shipped = RegionEmbedder()
    feats = fuse_conv_bn(RegionFeatures()).eval()
    index, reg, stored = registry_raw(args.registry, feats, args.cache)
    check = apply(shipped._whiten, reg[:200])
    print(f"recomputed vs stored, cosine per region: min {float((check * stored[:200]).sum(-1).min()):.5f}")

    qf = args.cache / "queries.npz"
    if not qf.exists():
        queries = read_queries(args.fambench / "families.csv")
        queries += benign_variants(queries, 1, 0)
        queries = [q for q in queries if q.original is not None]
        true = [index.get(hashlib.sha256(q.original.read_bytes()).hexdigest(), -1) for q in queries]
        raw = batched(feats, queries, lambda q: decode(q.data), "queries")
        np.savez(qf, raw=raw, true=np.array(true), family=np.array([q.family or q.kind for q in queries]))
    qd = np.load(qf)
    keep = qd["true"] >= 0
    qraw, true, family = qd["raw"][keep], qd["true"][keep], qd["family"][keep]

    x, pairs = train_pairs(args.photos, args.pairs, args.seed, feats, args.cache, index, reg)
    models = {"shipped PCA": shipped._whiten}
    for s in (float(v) for v in args.shrink.split(",")):
        models[f"Lw {s}"] = learned(x, pairs, shipped.dim, s)
    ranks: dict[str, dict[str, list[int]]] = {m: collections.defaultdict(list) for m in models}
    for name, w in models.items():
        cand, qs = apply(w, reg), apply(w, qraw)
        for q, t, fam in zip(tqdm(qs, desc=name), true, family, strict=True):
            v = fused_scores(q, cand)
            ranks[name][str(fam)].append(1 + int((v > v[t]).sum()))

    def ir(rs: list[int], k: int) -> str:
        return f"{np.mean([r <= k for r in rs]):.3f}"

    names = list(models)
    print("| family | n | " + " | ".join(f"{m} IR@1 / @10 / @100" for m in names) + " |")
    print("|---|---|" + "---|" * len(names))
    fams = sorted(ranks[names[0]])
    for fam in fams:
        print(f"| {fam} | {len(ranks[names[0]][fam])} | " + " | ".join(
            f"{ir(ranks[m][fam], 1)} / {ir(ranks[m][fam], 10)} / {ir(ranks[m][fam], 100)}" for m in names) + " |")
    for group in ("as generated", "after a benign transform"):
        sel = [f for f in fams if f.endswith("+benign") == (group != "as generated")]
        print(f"| **all, {group}** | {sum(len(ranks[names[0]][f]) for f in sel)} | " + " | ".join(
            " / ".join(ir([r for f in sel for r in ranks[m][f]], k) for k in (1, 10, 100)) for m in names) + " |")


if __name__ == "__main__":
    main()
