"""Probe (not product code): can the ImageNet backbone's own feature maps place a piece of an
original that SIFT cannot (issue 17: cut-outs of low-texture subjects, shrunk transplants)?

Dense matching in the manner of DFM (Efe et al., CVPR-W 2021): the untrained EfficientNet-Lite0
(the packaged ImageNet weights the region model uses) run up to a stride-8 or stride-16 stage on
the query and on a candidate, each cell's feature L2-normalised, mutual nearest neighbours that
pass a ratio test, then a RANSAC homography (threshold 1.5 cells); the query is also tried
mirrored. Counted beside the service's SIFT inliers (256-px views, RootSIFT, mirrored retry).

Pairs, on `train` photos only: a piece of an original placed into another photo
(`training.pieces`, the generator written apart from the held-out `transplant` and `cutout`), against
(a) its original, (b) the original's nearest neighbour by the region model among the other
registry photos (a hard negative: the candidate stage 1 would rank near it), (c) two random
registry photos. `--fambench` adds the held-out family queries named by `--ids` against their
originals (run once, after the bar was read off the train pairs).

    PYTHONPATH=. python scripts/probe_deep_match.py --shared ../shared --n 200 --registry 1200 --seed 0 \\
        --out /tmp/deep.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm import tqdm

from verifier.simprov.align import count_inliers, mirrored_sift
from verifier.simprov.embedding import _MEAN, _STD, BackboneGeMNet
from verifier.simprov.pairs import View
from verifier.simprov.regions import RegionEmbedder, fused_scores
from verifier.training.data import load_photo, train_photos
from verifier.training.pieces import piece_into

STAGES = {"s8": (5, 8), "s16": (11, 16)}  # name -> (blocks run, stride): Lite0's 40-ch and 112-ch stages


class DenseFeatures:
    """Cell features of an image at a given long side (aspect kept, sides a multiple of 16)."""

    def __init__(self) -> None:
        self.net = BackboneGeMNet().backbone.eval()

    @torch.no_grad()
    def __call__(self, img: Image.Image, side: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        w, h = img.size
        s = side / max(w, h)
        W, H = max(32, round(w * s / 16) * 16), max(32, round(h * s / 16) * 16)
        arr = (np.asarray(img.convert("RGB").resize((W, H), Image.BICUBIC), np.float32) / 255 - _MEAN) / _STD
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]
        n = self.net
        x = n.act(n._bn0(n._conv_stem(x)))
        out = {}
        for i, block in enumerate(n._blocks[: max(b for b, _ in STAGES.values())]):
            x = block(x)
            for name, (b, stride) in STAGES.items():
                if i + 1 == b:
                    f = F.normalize(x[0], dim=0)  # (C, h, w)
                    c, fh, fw = f.shape
                    ys, xs = np.mgrid[0:fh, 0:fw]
                    # cell centres in the image's own pixels (so that both sides share a unit)
                    pts = np.stack([(xs.ravel() + 0.5) * w / fw, (ys.ravel() + 0.5) * h / fh], 1).astype(np.float32)
                    out[name] = (f.reshape(c, -1).T.numpy().copy(), pts)
        return out


def inliers(q: tuple[np.ndarray, np.ndarray], c: tuple[np.ndarray, np.ndarray], ratio: float, thr: float) -> dict[str, int]:
    """Inliers of a RANSAC homography (`h`) and of a RANSAC similarity (`sim`: turn, uniform scale
    0.1-10, shift; two points a sample, so chance consensus is rarer) on mutual nearest neighbours
    that pass the ratio test."""
    fq, pq = q
    fc, pc = c
    sim = torch.from_numpy(fc) @ torch.from_numpy(fq).T  # (Nc, Nq) cosine
    top2, idx = sim.topk(2, dim=1)
    nn = idx[:, 0].numpy()
    back = sim.argmax(0).numpy()
    mutual = back[nn] == np.arange(len(fc))
    d = np.sqrt(np.maximum(2 - 2 * top2.numpy(), 0))
    good = mutual & (d[:, 0] < ratio * d[:, 1])
    out = {"h": 0, "sim": 0}
    if good.sum() < 8:
        return out
    src, dst = pc[good], pq[nn[good]]
    hm, mask = cv2.findHomography(src, dst, cv2.RANSAC, thr)
    if hm is not None and np.isfinite(hm).all() and abs(np.linalg.det(hm[:2, :2])) > 1e-6:
        out["h"] = int(mask.sum())
    a, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=thr, maxIters=4000)
    if a is not None and 0.1 <= float(np.sqrt(abs(np.linalg.det(a[:, :2])))) <= 10:
        out["sim"] = int(mask.sum())
    return out


def mirrored(feats: tuple[np.ndarray, np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    f, p = feats
    p = p.copy()
    p[:, 0] = width - p[:, 0]
    return f, p


def sift_inliers(query: Image.Image, cand: View) -> int:
    qv = View.of(query, min_side=256)
    a = count_inliers(qv.features, cand.features, qv.image.shape, cand.image.shape)
    b = count_inliers(mirrored_sift(qv.image), cand.features, qv.image.shape, cand.image.shape)
    return max(a, b)


def deep_counts(dense: DenseFeatures, query: Image.Image, cand: Image.Image, side: int,
                settings: list[tuple[str, float]], cache: dict) -> dict[str, int]:
    """`cache` holds the query's features (plain and mirrored) across its candidates."""
    fc = dense(cand, side)
    if not cache:
        cache["q"], cache["m"] = dense(query, side), dense(ImageOps.mirror(query), side)
    fq, fqm = cache["q"], cache["m"]
    out = {}
    for stage, (_, stride) in STAGES.items():
        thr = 1.5 * stride * max(query.size) / side  # in the query's pixels (RANSAC maps the candidate onto it)
        for name, ratio in settings:
            plain = inliers(fq[stage], fc[stage], ratio, thr)
            mirror = inliers(mirrored(fqm[stage], query.width), fc[stage], ratio, thr)
            for fit in plain:
                out[f"{stage}-{name}-{fit}"] = max(plain[fit], mirror[fit])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--registry", type=int, default=1200)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fambench", type=Path)
    ap.add_argument("--families", default="cutout,transplant")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    settings = [("r0.8", 0.8), ("r0.9", 0.9), ("r0.95", 0.95)]
    rng = random.Random(args.seed)
    photos = train_photos(args.shared / "datasets" / "photos")
    rng.shuffle(photos)
    reg_paths = photos[: args.registry]
    reg = [load_photo(p, 512) for p in tqdm(reg_paths, desc="load")]
    model = RegionEmbedder()
    vecs = np.concatenate([model.embed_regions(reg[i : i + 16]) for i in tqdm(range(0, len(reg), 16), desc="regions")])
    dense = DenseFeatures()
    rows = []
    for i in tqdm(range(args.n), desc="pairs"):
        original = reg[i]
        scene = load_photo(photos[args.registry + i], 512)  # a donor outside the registry
        query = piece_into(original, scene, rng)
        qv = model.embed_regions([query])[0]
        scores = fused_scores(qv, vecs)
        scores[i] = -9
        hard = int(np.argmax(scores))
        randoms = rng.sample([k for k in range(len(reg)) if k not in (i, hard)], 2)
        cache: dict = {}
        for kind, k in [("same", i), ("hard", hard), ("random", randoms[0]), ("random", randoms[1])]:
            cand = reg[k]
            rec = {"i": i, "kind": kind, "sift": sift_inliers(query, View.of(cand))}
            rec.update(deep_counts(dense, query, cand, args.side, settings, cache))
            rows.append(rec)
    held = []
    if args.fambench:
        for r in csv.DictReader((args.fambench / "families.csv").open()):
            if r["family"] not in args.families.split(","):
                continue
            q = Image.open(args.fambench / r["query"]).convert("RGB")
            o = Image.open(args.fambench / r["original"]).convert("RGB")
            o.thumbnail((512, 512), Image.BICUBIC)
            q.thumbnail((1024, 1024), Image.BICUBIC)
            rec = {"query": r["query"], "family": r["family"], "sift": sift_inliers(q, View.of(o))}
            rec.update(deep_counts(dense, q, o, args.side, settings, {}))
            held.append(rec)
    keys = [k for k in rows[0] if k not in ("i", "kind")]
    summary = {}
    for key in keys:
        neg = np.array([r[key] for r in rows if r["kind"] != "same"])
        pos = np.array([r[key] for r in rows if r["kind"] == "same"])
        sift_miss = np.array([r[key] for r in rows if r["kind"] == "same" and r["sift"] < 8])
        bar = int(max(8, np.max(neg) + 1))
        summary[key] = {"neg_max": int(neg.max()), "neg_p99": float(np.percentile(neg, 99)),
                        "hard_max": int(max(r[key] for r in rows if r["kind"] == "hard")),
                        "pos_median": float(np.median(pos)), "pos_at_bar": float((pos >= bar).mean()),
                        "bar": bar, "sift_missed": len(sift_miss),
                        "sift_missed_at_bar": float((sift_miss >= bar).mean()) if len(sift_miss) else None}
        if held:
            h = np.array([r[key] for r in held])
            summary[key]["held_at_bar"] = float((h >= bar).mean())
            hs = np.array([r[key] for r in held if r["sift"] < 8])
            summary[key]["held_sift_missed"] = len(hs)
            summary[key]["held_sift_missed_at_bar"] = float((hs >= bar).mean()) if len(hs) else None
        print(key, summary[key], flush=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                                    "rows": rows, "held": held}, indent=1))


if __name__ == "__main__":
    main()
