"""Fit the stage-1 region model's whitening (`verifier train regions`) on the train split.

No labels and no gradient: the raw region descriptors of `n` train photos (each photo's 10
regions, and one benign-transformed copy of each so that the axes also cover what copies do
to a photo) give the PCA. Deterministic for a seed and the packaged ImageNet weights.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from verifier.images import load_rgb
from verifier.simprov import augment, catalog
from verifier.simprov.nn.whiten import Whitening
from verifier.simprov.regions import REGIONS, RegionFeatures
from verifier.training.data import train_photos


def fit_regions(photos_dir: Path, out: Path, *, n: int, dim: int, seed: int, batch: int = 16) -> dict[str, Any]:
    started = time.perf_counter()
    if n < 1 or dim < 1:
        raise ValueError(f"--n and --dim must be positive (got {n}, {dim})")
    rng = random.Random(seed)
    paths = train_photos(photos_dir)
    rng.shuffle(paths)
    paths = paths[:n]
    if 2 * len(paths) * REGIONS <= dim:  # PCA needs more descriptors than output dimensions
        raise ValueError(f"{len(paths)} train photos give too few descriptors for {dim} dimensions")
    features = RegionFeatures().eval()
    raw = []
    for i in tqdm(range(0, len(paths), batch), desc="region descriptors", unit="batch"):
        images = [load_rgb(p) for p in paths[i : i + batch]]
        images += [augment.benign(im, rng).image for im in images]
        with torch.inference_mode():
            raw.append(features.raw(images).reshape(-1, features.net.backbone.num_features))
    x = torch.cat(raw)  # (2 n REGIONS, 1280)
    whiten = Whitening(x.shape[1], dim).fit(x)
    catalog.save_weights(whiten, out, "whiten", {"regions": str(REGIONS), "dim": str(dim)})
    return {
        "model": out.stem,
        "data": f"{photos_dir.name}/index.csv split=train, {len(paths)} photos + one benign copy each",
        "n_photos": len(paths),
        "n_descriptors": int(x.shape[0]),
        "dim": dim,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "created": dt.date.today().isoformat(),
    }
