"""Calibrate the stage-1 match/no-match threshold on the `train` split.

Registered set: N train photos. Positives: benign-transformed copies of them (two per
photo). Negatives: N other train photos that are not registered. The threshold is the
lowest similarity (cosine, or the region model's fused score) that keeps false matches on negatives at or below the target
rate; the file records the command, seed and what was measured.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier.simprov import augment
from verifier.simprov.embedding import Embedder
from verifier.simprov.regions import RegionEmbedder, fused_scores
from verifier.training.data import train_photos


def _embed_all(embedder: Embedder | RegionEmbedder, images: list[Image.Image], desc: str, batch: int = 16) -> np.ndarray:
    """(N, D) global vectors, or (N, R, D) for the region model."""
    embed = embedder.embed_regions if isinstance(embedder, RegionEmbedder) else embedder.embed
    out = [embed(images[i : i + batch]) for i in tqdm(range(0, len(images), batch), desc=desc, unit="batch")]
    return np.concatenate(out)


def _similarity(queries: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """(Q, N): cosine for global vectors, the search's fused score for region vectors."""
    if queries.ndim == 2:
        return queries @ registered.T
    return np.stack([fused_scores(q, registered) for q in queries])


def calibrate(embedder: Embedder | RegionEmbedder, photos_dir: Path, n: int, seed: int, target_far: float, command: str,
              n_negatives: int = 300, n_positive_sources: int = 300) -> dict[str, Any]:
    """`n` registered photos (the false-match rate grows with the registry, so use most of
    `train`), positives from the first `n_positive_sources` of them, `n_negatives` others."""
    rng = random.Random(seed)
    paths = train_photos(photos_dir)
    rng.shuffle(paths)
    registered, outsiders = paths[:n], paths[n : n + n_negatives]
    originals = [Image.open(p).convert("RGB") for p in registered]
    reg = _embed_all(embedder, originals, "originals")
    positives, owners = [], []
    for i, img in enumerate(originals[:n_positive_sources]):
        for _ in range(2):
            positives.append(augment.benign(img, rng).image)
            owners.append(i)
    pos = _embed_all(embedder, positives, "positives")
    neg = _embed_all(embedder, [Image.open(p).convert("RGB") for p in outsiders], "negatives")

    pos_sim = _similarity(pos, reg)  # (2N, N)
    top1_ok = pos_sim.argmax(1) == np.array(owners)
    pos_best = pos_sim.max(1)
    neg_best = _similarity(neg, reg).max(1)
    # smallest threshold whose false-match rate on negatives is <= target
    candidates = np.sort(neg_best)
    k = int(np.floor(target_far * len(candidates)))
    threshold = float(candidates[len(candidates) - k - 1] + 1e-6) if len(candidates) else 0.5
    tpr = float(np.mean(top1_ok & (pos_best >= threshold)))
    far = float(np.mean(neg_best >= threshold))
    return {
        "model_id": embedder.model_id,
        "weights_sha256": embedder.weights_sha256,
        "threshold": round(threshold, 6),
        "measured": {
            "n_registered": len(registered),
            "n_positives": len(positives),
            "n_negatives": len(outsiders),
            "top1_accuracy_positives": round(float(top1_ok.mean()), 4),
            "true_match_rate_at_threshold": round(tpr, 4),
            "false_match_rate_at_threshold": round(far, 4),
            "target_false_match_rate": target_far,
        },
        "data": f"{photos_dir.name}/index.csv split=train",
        "seed": seed,
        "command": command,
        "created": dt.date.today().isoformat(),
    }


def write(result: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(result, indent=2) + "\n")
