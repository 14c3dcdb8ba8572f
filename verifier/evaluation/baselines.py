"""Baselines ranked over the same registry, for the same queries, in the same run as the
product: perceptual hashes (pHash, PDQ) and the untrained ImageNet backbone + GeM."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier.evaluation.queries import decode, expected_rank, ir_at_k


class HashBaseline:
    """Rank by Hamming distance of a perceptual hash (smaller = better)."""

    def __init__(self, name: str, fn: Callable[[Image.Image], np.ndarray]) -> None:
        self.name, self.fn = name, fn

    def codes(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([self.fn(im) for im in tqdm(images, desc=self.name, unit="img", leave=False)])

    @staticmethod
    def rank(registry: np.ndarray, query: np.ndarray, true_index: int) -> float:
        dist = (registry != query[None, :]).sum(1)
        return expected_rank(-dist.astype(np.float64), true_index)


def phash_bits(img: Image.Image) -> np.ndarray:
    import imagehash

    return np.asarray(imagehash.phash(img).hash, dtype=bool).reshape(-1)


def pdq_bits(img: Image.Image) -> np.ndarray:
    import pdqhash

    bits, _quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return np.asarray(bits, dtype=bool).reshape(-1)


Grouped = dict[str, dict[str, dict[str, float | None]]]  # baseline -> group -> IR@k


def run_baselines(
    names: list[str], registry_ids: list[str], id_to_bytes: dict[str, bytes], query_images: list[Image.Image | None],
    true_ids: list[str | None], kinds: list[str], embedder_factory: Callable[[], Any],
    families: list[str | None] | None = None,
) -> tuple[Grouped, Grouped]:
    """IR@k of each baseline per query kind and (where given) per edit family."""
    if not names:
        return {}, {}
    registry_images = [decode(id_to_bytes[i]) for i in tqdm(registry_ids, desc="decode registry", unit="img", leave=False)]
    index_of = {oid: i for i, oid in enumerate(registry_ids)}
    read = [i for i, im in enumerate(query_images) if im is not None]
    by_kind: Grouped = {}
    by_family: Grouped = {}
    for name in names:
        ranks: list[float | None] = [None] * len(query_images)  # a query no decoder read stays a miss
        if name in ("phash", "pdq"):
            baseline = HashBaseline(name, phash_bits if name == "phash" else pdq_bits)
            reg, qs = baseline.codes(registry_images), baseline.codes([query_images[i] for i in read])
            for i, q in zip(read, qs, strict=True):
                ranks[i] = baseline.rank(reg, q, index_of[true_ids[i]]) if true_ids[i] is not None else None
        elif name == "backbone":
            emb = embedder_factory()
            images = [query_images[i] for i in read]
            reg = np.concatenate([emb.embed(registry_images[i : i + 32]) for i in tqdm(range(0, len(registry_images), 32), desc="backbone registry", leave=False)])
            qs = np.concatenate([emb.embed(images[i : i + 32]) for i in tqdm(range(0, len(images), 32), desc="backbone queries", leave=False)]) \
                if images else np.zeros((0, reg.shape[1]), np.float32)
            for i, row in zip(read, qs @ reg.T, strict=True):
                ranks[i] = expected_rank(row, index_of[true_ids[i]]) if true_ids[i] is not None else None
        else:
            raise ValueError(f"unknown baseline {name!r} (phash, pdq, backbone)")
        by_kind[name] = _group(ranks, kinds, kinds)
        if families is not None:
            by_family[name] = _group(ranks, families, kinds)
    return by_kind, by_family


def _group(ranks: list[float | None], labels: list[str | None], kinds: list[str]) -> dict[str, dict[str, float | None]]:
    """IR@k per label over the queries that have an original (not `distinct`)."""
    grouped: dict[str, list[float | None]] = defaultdict(list)
    for rank, label, kind in zip(ranks, labels, kinds):
        if kind != "distinct" and label is not None:
            grouped[label].append(rank)
    return {label: ir_at_k(r) for label, r in grouped.items()}
