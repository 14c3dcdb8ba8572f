"""`verifier bench-index`: an IVF-PQ index (the service's IVF1024,PQ16 by default, or any FAISS factory
string, e.g. IVF4096_HNSW32,PQ16 for 10M) against exact search on N vectors.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from PIL import Image
from tqdm import tqdm

from index import build_ivfpq, lists_on_disk
from verifier.fsutil import evict_from_page_cache
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


def _rescored_ranks(index: faiss.Index, database: np.ndarray, queries: np.ndarray, shortlist: int,
                    k: int = 100) -> tuple[np.ndarray, float]:
    """`_ranks` after re-scoring the index's top `shortlist` exactly with the float vectors (what
    the service can do with the vectors PostgreSQL keeps): PQ's ordering error goes, only what the
    coarse stage never reached stays lost. Latency includes the gather and the dot products."""
    started = time.perf_counter()
    ranks = np.zeros(len(queries), np.int64)
    for i, q in enumerate(queries):
        ids = index.search(q[None, :], shortlist)[1][0]
        ids = ids[ids >= 0]
        order = ids[np.argsort(-(database[ids] @ q), kind="stable")][:k]
        hit = np.flatnonzero(order == i)
        ranks[i] = hit[0] + 1 if len(hit) else 0
    return ranks, (time.perf_counter() - started) * 1000 / len(queries)


def _exact_ranks(database: np.ndarray, queries: np.ndarray, k: int = 100, chunk: int = 1_000_000) -> np.ndarray:
    """Exact rank of each query's true id (1-based; 0 beyond k) by counting, chunk by chunk, the
    vectors that score higher: no second copy of the database (10M x 256 floats is 10 GB)."""
    true = np.einsum("ij,ij->i", queries, database[: len(queries)])
    above = np.zeros(len(queries), np.int64)
    own = np.arange(len(queries))
    for start in tqdm(range(0, len(database), chunk), desc="exact ranks", unit="chunk"):
        higher = queries @ database[start : start + chunk].T > true[:, None]
        mine = (own >= start) & (own < start + higher.shape[1])
        higher[own[mine], own[mine] - start] = False  # a vector never outranks itself (float rounding aside)
        above += higher.sum(1)
    rank = above + 1
    return np.where(rank <= k, rank, 0)


def _recall(ranks: np.ndarray) -> dict[str, float]:
    return {f"R@{k}": round(float(((ranks > 0) & (ranks <= k)).mean()), 4) for k in (1, 10, 100)}


def _fill(fit: np.ndarray, out: np.ndarray, seed: int, chunk: int = 500_000) -> np.ndarray:
    """Fill `out` (N, D) in place with unit vectors from a Gaussian fitted to `fit` (mean, full
    covariance), drawn in float32 chunks through the covariance's Cholesky factor: a float64 draw
    of 10M x 256 would be 20 GB, and a second 10 GB array beside the database does not fit 24 GiB."""
    mean = fit.mean(0).astype(np.float32)
    chol = np.linalg.cholesky(np.cov(fit, rowvar=False) + 1e-6 * np.eye(fit.shape[1])).astype(np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, len(out), chunk):
        m = min(chunk, len(out) - start)
        block = rng.standard_normal((m, fit.shape[1]), dtype=np.float32) @ chol.T + mean
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _quantizer_ef(index: faiss.Index, ef: int) -> None:
    """efSearch of an HNSW coarse quantizer: how exhaustively vectors (when added) and queries
    are assigned to their nearest lists; FAISS's default is 16."""
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    if ef and hasattr(quantizer, "hnsw"):
        quantizer.hnsw.efSearch = ef


TWO_LEVEL_FROM = 16384  # nlist from which `kmeans="auto"` trains the coarse quantizer in two levels


def _two_level_train(index: faiss.Index, sample: np.ndarray, seed: int) -> None:
    """Train an IVF index's coarse quantizer by two-level k-means (sqrt(nlist) clusters, then
    each split in proportion to its size: FAISS's `two_level_clustering`), then the codes on the
    residuals. Why: flat k-means with 65,536 centroids on the 2.6M vectors it wants costs
    ~n x nlist x d per iteration, days on 2 cores; two levels cost ~n x 2 sqrt(nlist) x d."""
    from faiss.contrib.clustering import two_level_clustering

    ivf = faiss.extract_index_ivf(index)
    centroids, _ = two_level_clustering(sample, int(np.sqrt(ivf.nlist)), ivf.nlist, seed=seed)
    if ivf.metric_type == faiss.METRIC_INNER_PRODUCT:  # unit vectors: as FAISS's spherical IVF training does
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    ivf.quantizer.add(np.ascontiguousarray(centroids, np.float32))
    index.train(sample)  # the quantizer now holds nlist centroids: only the codes are trained


def _build(factory: str, database: np.ndarray, max_train: int, seed: int, quantizer_ef: int = 0,
           kmeans: str = "auto", train_per_list: int = 0) -> tuple[faiss.Index, float, float, str, int]:
    """The index `factory` names (FAISS index_factory syntax, inner product), trained on a
    seeded sample of at most `max_train` vectors, and at most `train_per_list` x nlist when that
    is set (so one `max_train` serves indexes of different nlist); (index, train s, add s,
    k-means used, training vectors)."""
    if factory == "IVF1024,PQ16":
        started = time.perf_counter()
        index = build_ivfpq(database)  # exactly what the service builds
        kmeans, n_train = "flat", min(200_000, len(database))
    else:
        index = faiss.index_factory(database.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
        if train_per_list:
            max_train = min(max_train, train_per_list * faiss.extract_index_ivf(index).nlist)
        sample = database
        if len(sample) > max_train:
            sample = database[np.sort(np.random.default_rng(seed).choice(len(database), max_train, replace=False))]
        sample = np.ascontiguousarray(sample)
        n_train = len(sample)
        if kmeans == "auto":
            kmeans = "two-level" if faiss.extract_index_ivf(index).nlist >= TWO_LEVEL_FROM else "flat"
        started = time.perf_counter()
        if kmeans == "two-level":
            _two_level_train(index, sample, seed)
        else:
            index.train(sample)
        del sample
    train_s = time.perf_counter() - started
    _quantizer_ef(index, quantizer_ef)
    started = time.perf_counter()
    for start in tqdm(range(0, len(database), 1_000_000), desc=f"add to {factory}", unit="M"):
        index.add(database[start : start + 1_000_000])
    return index, train_s, time.perf_counter() - started, kmeans, n_train


def _cold_ranks(index: faiss.Index, queries: np.ndarray, path: Path, k: int = 100) -> tuple[np.ndarray, float] | None:
    """`_ranks` with the on-disk lists read from disk: before every query (outside the timer) a
    fresh copy of the index maps the file anew and its pages are evicted from the page cache.
    Eviction cannot drop pages a live mapping holds, so `index` lets go of its own mapping for
    the duration (its lists are handed back from a copy at the end)."""
    ivf = faiss.extract_index_ivf(index)
    blob = faiss.serialize_index(index)  # the lists by reference to `path`
    empty = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.replace_invlists(empty, True)  # deletes the on-disk lists object: the file is unmapped
    empty.this.disown()
    ids, spent, evicted = [], 0.0, True
    try:
        for q in queries:
            fresh = faiss.deserialize_index(blob)
            if not evict_from_page_cache(path):
                evicted = False
                break
            started = time.perf_counter()
            ids.append(fresh.search(q[None, :], k)[1][0])
            spent += time.perf_counter() - started
            del fresh
    finally:
        back = faiss.deserialize_index(blob)
        lists = faiss.extract_index_ivf(back).invlists
        faiss.extract_index_ivf(back).own_invlists = False
        ivf.replace_invlists(lists, True)
        del back
    if not evicted:
        return None
    hit = np.stack(ids) == np.arange(len(queries))[:, None]
    return np.where(hit.any(1), hit.argmax(1) + 1, 0), spent * 1000 / len(queries)


def _code_bytes(factory: str) -> int:
    pq = [part for part in factory.split(",") if part.startswith("PQ")]
    return int(pq[-1][2:].split("x")[0]) if pq else 0


def _measure(index: faiss.Index, database: np.ndarray, queries: np.ndarray, exact_ranks: np.ndarray, nprobes: list[int],
             rescore: int, cold: Path | None = None) -> dict[str, Any]:
    ivf = faiss.extract_index_ivf(index)
    exact_r100 = max(1e-9, _recall(exact_ranks)["R@100"])
    per_nprobe: dict[str, Any] = {}
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        ranks, ms = _ranks(index, queries)
        recall = _recall(ranks)
        row = per_nprobe[str(nprobe)] = {**recall, "ms_per_query": round(ms, 3),
                                         "top100_recall_vs_exact": round(recall["R@100"] / exact_r100, 4)}
        if rescore:
            ranks, ms = _rescored_ranks(index, database, queries, rescore)
            recall = _recall(ranks)
            row["rescored"] = {"shortlist": rescore, **recall, "ms_per_query": round(ms, 3),
                               "top100_recall_vs_exact": round(recall["R@100"] / exact_r100, 4)}
        if cold is not None and (measured := _cold_ranks(index, queries, cold)) is not None:
            ranks, ms = measured
            row["cold_ms_per_query"] = round(ms, 3)
            row["cold_same_ranks"] = bool(np.array_equal(ranks, _ranks(index, queries)[0]))
    return per_nprobe


def run_bench_index(embedder: Any, photos_dir: Path, *, n: int, n_queries: int, nprobes: list[int], seed: int, command: str,
                    factories: tuple[str, ...] = ("IVF1024,PQ16",), max_train: int = 200_000, exact_latency_queries: int = 0,
                    quantizer_ef: int = 0, rescore: int = 0, kmeans: str = "auto", train_per_list: int = 0,
                    ondisk: Path | None = None, checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every index in `factories` on the same database and queries, one after the other (one
    index in memory at a time). With `ondisk`, each is measured again with its inverted lists
    in a file there: warm (page cache) and cold (evicted before every query). `checkpoint`
    gets the results so far after each index (a 10M run is hours: a stopped one keeps what it
    finished)."""
    rng = random.Random(seed)
    with (photos_dir / "index.csv").open() as fh:
        paths = [photos_dir / r["path"] for r in csv.DictReader(fh)]
    rng.shuffle(paths)
    query_photos, fit_photos = paths[:n_queries], paths[n_queries:]
    originals = [Image.open(p).convert("RGB") for p in query_photos]
    real = _embed(embedder, originals, "originals")
    queries = _embed(embedder, [augment.benign(im, rng).image for im in originals], "queries")
    fit = _embed(embedder, [Image.open(p).convert("RGB") for p in fit_photos], "fit")

    database = np.empty((n, real.shape[1]), np.float32)  # ids 0..n_queries-1 are the true originals
    database[: len(real)] = real
    _fill(fit, database[len(real) :], seed)  # in place: one 10 GB array at 10M, not two

    faiss.omp_set_num_threads(max(1, faiss.omp_get_max_threads()))
    exact_ranks = _exact_ranks(database, queries)
    # exact search latency: every query below 1M vectors, a sample above (1 s a query at 10M on 2 cores)
    n_lat = exact_latency_queries or (len(queries) if n <= 1_000_000 else 20)
    started = time.perf_counter()
    for q in queries[:n_lat]:
        faiss.knn(q[None, :], database, 100, faiss.METRIC_INNER_PRODUCT)
    exact_ms = (time.perf_counter() - started) * 1000 / n_lat

    indexes = []
    for factory in factories:
        index, train_s, add_s, used, n_train = _build(factory, database, max_train, seed, quantizer_ef, kmeans,
                                                      train_per_list)
        ivf = faiss.extract_index_ivf(index)
        codes = _code_bytes(factory)
        row: dict[str, Any] = {
            "factory": factory,
            "nlist": int(ivf.nlist),
            "kmeans": used,
            "quantizer_ef_search": quantizer_ef or None,
            "train_vectors": n_train,
            "bytes_per_vector_codes": codes,
            "bytes_per_vector_with_ids": codes + 8,
            "train_s": round(train_s, 1),
            "add_s": round(add_s, 1),
            "list_sizes": _list_sizes(ivf),
            "by_nprobe": _measure(index, database, queries, exact_ranks, nprobes, rescore),
        }
        if ondisk is not None:
            path = lists_on_disk(index, ondisk / f"{len(indexes)}" / "lists.ivfdata")
            row["ondisk"] = {"file_bytes": path.stat().st_size,
                             "by_nprobe": _measure(index, database, queries, exact_ranks, nprobes, 0, cold=path)}
            path.unlink()
        indexes.append(row)
        del index, ivf
        if checkpoint is not None and len(indexes) < len(factories):
            checkpoint(_results(command, embedder, database, queries, exact_ranks, exact_ms, n_lat, indexes))
    return _results(command, embedder, database, queries, exact_ranks, exact_ms, n_lat, indexes)


def _results(command: str, embedder: Any, database: np.ndarray, queries: np.ndarray, exact_ranks: np.ndarray,
             exact_ms: float, n_lat: int, indexes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "command": command,
        "model": embedder.model_id,
        "n": len(database),
        "n_queries": len(queries),
        "dim": int(database.shape[1]),
        "threads": faiss.omp_get_max_threads(),
        "exact": {**_recall(exact_ranks), "ms_per_query": round(exact_ms, 3), "latency_queries": n_lat,
                  "bytes_per_vector": database.shape[1] * 4},
        "indexes": list(indexes),
        "fill": "Gaussian fitted to real embeddings of other photos (mean + full covariance), L2-normalised",
    }


def _list_sizes(ivf: faiss.IndexIVF) -> dict[str, int]:
    """How evenly the coarse quantizer spread the vectors: a probe costs its lists' lengths."""
    sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)])
    return {"min": int(sizes.min()), "p50": int(np.median(sizes)), "max": int(sizes.max()), "empty": int((sizes == 0).sum())}
