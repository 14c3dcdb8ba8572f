"""Probe (not product code): does a vote over the ImageNet backbone's stride-8 cells find the
original of a small pasted piece that the region model ranks low (BENCHMARKS.md, "Tried, not kept:
the backbone's own feature maps to place a piece SIFT cannot")?

The draw of `scripts/probe_deep_match.py` replayed (seed, registry of `train` photos, pieces from
`training.pieces`), so its per-piece SIFT and dense-fit counts (`--deep`, its JSON) line up. Every
registry photo's cells (`probe_deep_match.DenseFeatures`, 512 px, 40-D) go into one FAISS IVF
index; each query cell (the query plain and mirrored) votes for the original of its nearest
registered cell when that cell is nearer than `--ratio` x the nearest cell of any other original
(Lowe's test across originals, as the service's SIFT vote does); originals are ranked by votes.
`--min-texture` leaves out cells whose grey patch is flatter than that standard deviation (the
dense fit's false consensus was white on white). Printed: the rank of each piece's original by the
region model (fused score, exhaustive), by the vote, and by the better of the two.

    PYTHONPATH=. python scripts/probe_dense_vote.py --shared ../shared --deep /tmp/s60/deep2.json --out vote.json

`--fambench DIR` instead runs the held-out family queries named by `--families` (and the unregistered
`distinct` photos, whose best vote is a false candidate's) against that benchmark's whole registry
(`DIR/registry`, the families registry's originals); run once, after the train draw.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import faiss
import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from scripts.probe_deep_match import DenseFeatures
from verifier.simprov.regions import RegionEmbedder, fused_scores
from verifier.training.data import load_photo, train_photos
from verifier.training.pieces import piece_into


def cells(dense: DenseFeatures, img: Image.Image, min_texture: float) -> np.ndarray:
    """The stride-8 cell features whose grey patch varies by at least `min_texture`."""
    f, pts = dense(img, 512)["s8"]
    if min_texture <= 0:
        return f
    grey = np.asarray(img.convert("L"), np.float32)
    h, w = grey.shape
    step = max(1.0, max(w, h) / 64)  # a cell's side in the image's pixels
    keep = np.zeros(len(f), bool)
    for k, (x, y) in enumerate(pts):
        x0, y0 = int(max(0, x - step / 2)), int(max(0, y - step / 2))
        patch = grey[y0 : int(min(h, y0 + step + 1)), x0 : int(min(w, x0 + step + 1))]
        keep[k] = patch.size > 1 and float(patch.std()) >= min_texture
    return f[keep]


class CellVote:
    """Every registry image's cells in one FAISS IVF index, and the vote of a query's cells."""

    def __init__(self, dense: DenseFeatures, images: list[Image.Image], min_texture: float, nprobe: int) -> None:
        self.dense, self.min_texture = dense, min_texture
        feats, owners = [], []
        for k, im in enumerate(tqdm(images, desc="cells")):
            f = cells(dense, im, min_texture)
            feats.append(f.astype(np.float32))
            owners.append(np.full(len(f), k, np.int64))
        xb = np.ascontiguousarray(np.concatenate(feats))
        self.owner = np.concatenate(owners)
        self.size = len(images)
        self.per_original = np.bincount(self.owner, minlength=self.size)
        self.index = faiss.IndexIVFFlat(faiss.IndexFlatL2(xb.shape[1]), xb.shape[1], 1024)
        self.index.train(xb[np.random.default_rng(0).choice(len(xb), min(len(xb), 100_000), replace=False)])
        self.index.add(xb)
        self.index.nprobe = nprobe
        self.cells = len(xb)

    def votes(self, query: Image.Image, ratio: float) -> np.ndarray:
        votes = np.zeros(self.size)
        for q in (query, ImageOps.mirror(query)):
            fq = np.ascontiguousarray(cells(self.dense, q, self.min_texture), np.float32)
            if not len(fq):
                continue
            d, nn = self.index.search(fq, 16)
            for row_d, row_n in zip(d, nn, strict=True):
                ok = row_n >= 0
                if not ok.any():
                    continue
                o = self.owner[row_n[ok]]
                first = o[0]
                other = row_d[ok][o != first]
                if len(other) == 0 or row_d[ok][0] < ratio**2 * other[0]:  # squared L2
                    votes[first] += 1
        return votes


def ranks_of(score: np.ndarray, truth: int) -> int:
    return int((score > score[truth]).sum()) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--deep", type=Path, help="probe_deep_match.py's JSON for the same draw")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--registry", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ratio", type=float, default=0.9)
    ap.add_argument("--min-texture", type=float, default=0.0)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fambench", type=Path)
    ap.add_argument("--families", default="cutout,transplant,newsprint")
    args = ap.parse_args()
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    if args.fambench:
        return held_out(args)
    rng = random.Random(args.seed)
    photos = train_photos(args.shared / "datasets" / "photos")
    rng.shuffle(photos)
    reg = [load_photo(p, 512) for p in tqdm(photos[: args.registry], desc="load")]
    region = RegionEmbedder()
    vecs = np.concatenate([region.embed_regions(reg[i : i + 16]) for i in tqdm(range(0, len(reg), 16), desc="regions")])
    dense = DenseFeatures()
    vote = CellVote(dense, reg, args.min_texture, args.nprobe)
    deep = {r["i"]: r for r in json.loads(args.deep.read_text())["rows"] if r["kind"] == "same"} if args.deep else {}
    rows = []
    for i in tqdm(range(args.n), desc="queries"):
        scene = load_photo(photos[args.registry + i], 512)
        query = piece_into(reg[i], scene, rng)
        rng.sample(range(args.registry - 2), 2)  # the deep probe's two random negatives: same consumption
        fused = fused_scores(region.embed_regions([query])[0], vecs)
        votes = vote.votes(query, args.ratio)
        normed = votes / np.sqrt(np.maximum(vote.per_original, 1))
        r_region, r_vote, r_norm = ranks_of(fused, i), ranks_of(votes, i), ranks_of(normed, i)
        rec = {"i": i, "region": r_region, "vote": r_vote, "vote_normed": r_norm, "votes": int(votes[i]),
               "best_other_votes": int(np.max(np.delete(votes, i)))}
        if i in deep:
            rec["sift"], rec["dense_fit"] = deep[i]["sift"], deep[i]["s8-r0.95-h"]
        rows.append(rec)

    def table(name: str, sel: list[dict]) -> None:
        if not sel:
            return
        for key in ("region", "vote", "vote_normed"):
            r = np.array([s[key] for s in sel])
            print(f"{name} ({len(sel)}) by {key}: @1 {np.mean(r == 1):.3f} @3 {np.mean(r <= 3):.3f} "
                  f"@10 {np.mean(r <= 10):.3f} @100 {np.mean(r <= 100):.3f}", flush=True)
        both = np.array([min(s["region"], s["vote_normed"]) for s in sel])
        print(f"{name}: either in its top 10 {np.mean(both <= 10):.3f}, top 3 {np.mean(both <= 3):.3f}", flush=True)

    table("all", rows)
    table("SIFT missed", [r for r in rows if r.get("sift", 99) < 8])
    table("SIFT missed, dense fit >= 30", [r for r in rows if r.get("sift", 99) < 8 and r.get("dense_fit", 0) >= 30])
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "cells": vote.cells,
                                    "rows": rows}, indent=1))


def held_out(args: argparse.Namespace) -> None:
    names = sorted(p.name for p in (args.fambench / "registry").iterdir())
    reg = []
    for n in tqdm(names, desc="load"):
        im = Image.open(args.fambench / "registry" / n).convert("RGB")
        im.thumbnail((512, 512), Image.BICUBIC)
        reg.append(im)
    region = RegionEmbedder()
    vecs = np.concatenate([region.embed_regions(reg[i : i + 16]) for i in tqdm(range(0, len(reg), 16), desc="regions")])
    vote = CellVote(DenseFeatures(), reg, args.min_texture, args.nprobe)
    where = {n: k for k, n in enumerate(names)}
    fams = args.families.split(",")
    rows = []
    todo = [r for r in csv.DictReader((args.fambench / "families.csv").open()) if r["family"] in fams or r["kind"] == "distinct"]
    for r in tqdm(todo, desc="queries"):
        q = Image.open(args.fambench / r["query"]).convert("RGB")
        q.thumbnail((1024, 1024), Image.BICUBIC)
        fused = fused_scores(region.embed_regions([q])[0], vecs)
        votes = vote.votes(q, args.ratio)
        normed = votes / np.sqrt(np.maximum(vote.per_original, 1))
        rec = {"query": r["query"], "family": r["family"] or "distinct", "top_votes": int(votes.max())}
        if r["original"]:
            p = Path(r["original"])
            t = where[("micc" if "micc-f220" in r["original"] else p.parent.name) + "__" + p.name]
            rec.update(region=ranks_of(fused, t), vote=ranks_of(votes, t), vote_normed=ranks_of(normed, t), votes=int(votes[t]),
                       best_other_votes=int(np.max(np.delete(votes, t))))
        rows.append(rec)
    for fam in [*fams, "distinct"]:
        sel = [r for r in rows if r["family"] == fam]
        if fam == "distinct":
            print(f"distinct ({len(sel)}): most votes for an unrelated original, median {np.median([r['top_votes'] for r in sel])}, "
                  f"max {max(r['top_votes'] for r in sel)}", flush=True)
            continue
        for key in ("region", "vote", "vote_normed"):
            rr = np.array([s[key] for s in sel])
            print(f"{fam} ({len(sel)}) by {key}: @1 {np.mean(rr == 1):.3f} @3 {np.mean(rr <= 3):.3f} @10 {np.mean(rr <= 10):.3f} "
                  f"@100 {np.mean(rr <= 100):.3f}", flush=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "cells": vote.cells, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
