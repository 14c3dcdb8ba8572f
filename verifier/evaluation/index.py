"""`verifier bench-index`: IVF1024,PQ16 (128-bit codes) against exact search on N vectors.

The database holds real embeddings of photos (their transformed copies are the queries)
plus a fill of N - n vectors drawn from a Gaussian fitted to real embeddings of other
photos (mean and full covariance, then L2-normalised), so that the fill occupies the same
region of the embedding space as real photos do. We report the recall of the true original
in the top 1/10/100, single-query latency, bytes per vector and build time.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from PIL import Image
from tqdm import tqdm

from index import build_ivfpq
from verifier.simprov import augment


def _embed(embedder: Any, images: list[Image.Image], desc: str) -> np.ndarray:
    out = [embedder.embed(images[i : i + 32]) for i in tqdm(range(0, len(images), 32), desc=desc, unit="batch")]
    return np.concatenate(out).astype(np.float32)


def _ranks(index: faiss.Index, queries: np.ndarray, k: int = 100) -> tuple[np.ndarray, float]:
    """Rank (1-based, 0 = not in top k) of query i's true id i; mean ms per single query."""
    started = time.perf_counter()
    ids = np.stack([index.search(q[None, :], k)[1][0] for q in queries])
    ms = (time.perf_counter() - started) * 1000 / len(queries)
    hit = ids == np.arange(len(queries))[:, None]
    return np.where(hit.any(1), hit.argmax(1) + 1, 0), ms


def _recall(ranks: np.ndarray) -> dict[str, float]:
    return {f"R@{k}": round(float(((ranks > 0) & (ranks <= k)).mean()), 4) for k in (1, 10, 100)}


def run_bench_index(embedder: Any, photos_dir: Path, *, n: int, n_queries: int, nprobes: list[int], seed: int, command: str) -> dict[str, Any]:
    rng = random.Random(seed)
    with (photos_dir / "index.csv").open() as fh:
        paths = [photos_dir / r["path"] for r in csv.DictReader(fh)]
    rng.shuffle(paths)
    query_photos, fit_photos = paths[:n_queries], paths[n_queries:]
    originals = [Image.open(p).convert("RGB") for p in query_photos]
    real = _embed(embedder, originals, "originals")
    queries = _embed(embedder, [augment.benign(im, rng).image for im in originals], "queries")
    fit = _embed(embedder, [Image.open(p).convert("RGB") for p in fit_photos], "fit")

    mean, cov = fit.mean(0), np.cov(fit, rowvar=False)
    fill = np.random.default_rng(seed).multivariate_normal(mean, cov, size=n - len(real), method="cholesky").astype(np.float32)
    fill /= np.linalg.norm(fill, axis=1, keepdims=True)
    database = np.concatenate([real, fill])  # ids 0..n_queries-1 are the true originals
    del fill

    faiss.omp_set_num_threads(max(1, faiss.omp_get_max_threads()))
    exact = faiss.IndexFlatIP(database.shape[1])
    t0 = time.perf_counter()
    exact.add(database)
    exact_build = time.perf_counter() - t0
    exact_ranks, exact_ms = _ranks(exact, queries)

    t0 = time.perf_counter()
    ivf = build_ivfpq(database)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf.add(database)
    add_s = time.perf_counter() - t0
    per_nprobe = {}
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        ranks, ms = _ranks(ivf, queries)
        recall = _recall(ranks)
        per_nprobe[str(nprobe)] = {
            **recall,
            "ms_per_query": round(ms, 3),
            "top100_recall_vs_exact": round(recall["R@100"] / max(1e-9, _recall(exact_ranks)["R@100"]), 4),
        }
    return {
        "command": command,
        "model": embedder.model_id,
        "n": len(database),
        "n_queries": len(queries),
        "dim": int(database.shape[1]),
        "threads": faiss.omp_get_max_threads(),
        "exact": {**_recall(exact_ranks), "ms_per_query": round(exact_ms, 3), "bytes_per_vector": database.shape[1] * 4,
                  "build_s": round(exact_build, 2)},
        "ivf1024_pq16": {
            "bytes_per_vector_codes": 16,
            "bytes_per_vector_with_ids": 24,
            "train_s": round(train_s, 1),
            "add_s": round(add_s, 1),
            "by_nprobe": per_nprobe,
        },
        "fill": "Gaussian fitted to real embeddings of other photos (mean + full covariance), L2-normalised",
    }
