"""Baselines ranked over the same registry, for the same queries, in the same run as the
product: perceptual hashes (pHash, PDQ) and the untrained ImageNet backbone + GeM."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier.evaluation.queries import decode, expected_rank, ir_at_k


class Decoded(Sequence[Image.Image | None]):
    """Images decoded when read, and not kept: the baselines walk every query and original once per
    baseline, and held decoded, an evaluation set of phone-size photos would take gigabytes. None for
    bytes that no decoder reads (a query the service refused may be one)."""

    def __init__(self, blobs: Sequence[bytes]) -> None:
        self.blobs = blobs

    def __len__(self) -> int:
        return len(self.blobs)

    @overload
    def __getitem__(self, i: int) -> Image.Image | None: ...
    @overload
    def __getitem__(self, i: slice) -> list[Image.Image | None]: ...
    def __getitem__(self, i: int | slice) -> Image.Image | None | list[Image.Image | None]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        data = self.blobs[i]  # IndexError past the end: how iteration stops
        try:
            return decode(data)
        except Exception:  # noqa: BLE001 - a file no decoder reads is a miss for the baselines too
            return None


class HashBaseline:
    """Rank by Hamming distance of a perceptual hash (smaller = better)."""

    def __init__(self, name: str, fn: Callable[[Image.Image], np.ndarray]) -> None:
        self.name, self.fn = name, fn

    def codes(self, images: Sequence[Image.Image | None]) -> list[np.ndarray | None]:
        return [None if im is None else self.fn(im) for im in tqdm(images, desc=self.name, unit="img", leave=False)]

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
    names: list[str], registry_ids: list[str], id_to_bytes: dict[str, bytes], queries: Sequence[bytes],
    true_ids: list[str | None], kinds: list[str], embedder_factory: Callable[[], Any],
    families: list[str | None] | None = None,
) -> tuple[Grouped, Grouped]:
    """IR@k of each baseline per query kind and (where given) per edit family; `queries`: each query's
    bytes, decoded as the service decodes them (a query no decoder reads is a miss)."""
    if not names:
        return {}, {}
    registry_images = Decoded([id_to_bytes[i] for i in registry_ids])  # each one the service decoded to register it
    query_images = Decoded(queries)
    index_of = {oid: i for i, oid in enumerate(registry_ids)}
    by_kind: Grouped = {}
    by_family: Grouped = {}
    for name in names:
        ranks: list[float | None] = [None] * len(query_images)  # a query no decoder read stays a miss
        if name in ("phash", "pdq"):
            baseline = HashBaseline(name, phash_bits if name == "phash" else pdq_bits)
            reg = np.stack(_every(baseline.codes(registry_images)))
            for i, q in enumerate(baseline.codes(query_images)):
                if q is not None and true_ids[i] is not None:
                    ranks[i] = baseline.rank(reg, q, index_of[true_ids[i]])  # type: ignore[index]
        elif name == "backbone":
            emb = embedder_factory()
            reg = np.concatenate([emb.embed(_every(registry_images[i : i + 32]))
                                  for i in tqdm(range(0, len(registry_images), 32), desc="backbone registry", leave=False)])
            for k in tqdm(range(0, len(query_images), 32), desc="backbone queries", leave=False):
                chunk = [(k + j, im) for j, im in enumerate(query_images[k : k + 32]) if im is not None]
                if not chunk:
                    continue
                for (i, _), row in zip(chunk, emb.embed([im for _, im in chunk]) @ reg.T, strict=True):
                    ranks[i] = expected_rank(row, index_of[true_ids[i]]) if true_ids[i] is not None else None  # type: ignore[index]
        else:
            raise ValueError(f"unknown baseline {name!r} (phash, pdq, backbone)")
        by_kind[name] = _group(ranks, kinds, kinds)
        if families is not None:
            by_family[name] = _group(ranks, families, kinds)
    return by_kind, by_family


def _every(items: list[Any]) -> list[Any]:
    if any(x is None for x in items):
        raise ValueError("a registered original that Pillow cannot decode: the baselines cannot rank it")
    return items


def _group(ranks: list[float | None], labels: list[str | None], kinds: list[str]) -> dict[str, dict[str, float | None]]:
    """IR@k per label over the queries that have an original (not `distinct`)."""
    grouped: dict[str, list[float | None]] = defaultdict(list)
    for rank, label, kind in zip(ranks, labels, kinds):
        if kind != "distinct" and label is not None:
            grouped[label].append(rank)
    return {label: ir_at_k(r) for label, r in grouped.items()}
