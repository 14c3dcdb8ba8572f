"""`verifier bench-index`: an IVF-PQ index (the service's IVF1024,PQ16 by default, or any FAISS factory
string, e.g. IVF4096_HNSW32,PQ16 for 10M) against exact search on N vectors.

The database holds real embeddings of photos (their transformed copies are the queries)
plus a fill of N - n vectors drawn from a Gaussian fitted to real embeddings of other
photos (mean and full covariance, then L2-normalised), so that the fill occupies the same
region of the embedding space as real photos do. We report the recall of the true original
in the top 1/10/100, single-query latency, bytes per vector and build time.

With `stream` the database is never held: 100M x 256 floats is 102 GB. The fill is drawn in
fixed blocks from one seeded generator, so it can be drawn again, block by block, identically,
on every pass: one for the exact ranks and the training sample, one per index to add it.
"""

from __future__ import annotations

import csv
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from PIL import Image
from tqdm import tqdm

from index import build_ivfpq, from_factory, lists_on_disk
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
    counter = _RankCounter(queries, database[: len(queries)])
    for start in tqdm(range(0, len(database), chunk), desc="exact ranks", unit="chunk"):
        counter.add(start, database[start : start + chunk])
    return counter.ranks(k)


class _RankCounter:
    """Exact ranks accumulated over the database's blocks in id order: for each query, how many
    vectors score above its true original (query i's original is id i)."""

    def __init__(self, queries: np.ndarray, originals: np.ndarray) -> None:
        self.queries = queries
        self.true = np.einsum("ij,ij->i", queries, originals)
        self.above = np.zeros(len(queries), np.int64)

    def add(self, start: int, block: np.ndarray) -> None:
        own = np.arange(len(self.queries))
        higher = self.queries @ block.T > self.true[:, None]
        mine = (own >= start) & (own < start + higher.shape[1])
        higher[own[mine], own[mine] - start] = False  # a vector never outranks itself (float rounding aside)
        self.above += higher.sum(1)

    def ranks(self, k: int) -> np.ndarray:
        rank = self.above + 1
        return np.where(rank <= k, rank, 0)


def _recall(ranks: np.ndarray) -> dict[str, float]:
    return {f"R@{k}": round(float(((ranks > 0) & (ranks <= k)).mean()), 4) for k in (1, 10, 100)}


FILL_BLOCK = 500_000  # the fill is drawn in blocks of this many vectors; a stream redraws the same blocks


def _fill_blocks(fit: np.ndarray, n: int, seed: int, chunk: int | None = None) -> Iterator[np.ndarray]:
    """n unit vectors from a Gaussian fitted to `fit` (mean, full covariance), drawn in float32
    blocks through the covariance's Cholesky factor: a float64 draw of 10M x 256 would be 20 GB.
    The same arguments give the same blocks, which is what lets a stream draw them again."""
    mean = fit.mean(0).astype(np.float32)
    chol = np.linalg.cholesky(np.cov(fit, rowvar=False) + 1e-6 * np.eye(fit.shape[1])).astype(np.float32)
    rng, chunk = np.random.default_rng(seed), chunk or FILL_BLOCK
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        block = rng.standard_normal((m, fit.shape[1]), dtype=np.float32) @ chol.T + mean
        yield block / np.linalg.norm(block, axis=1, keepdims=True)


def _fill(fit: np.ndarray, out: np.ndarray, seed: int, chunk: int | None = None) -> np.ndarray:
    """Fill `out` (N, D) in place with `_fill_blocks`: a second 10 GB array beside the database
    does not fit 24 GiB."""
    start = 0
    for block in _fill_blocks(fit, len(out), seed, chunk):
        out[start : start + len(block)] = block
        start += len(block)
    return out


@dataclass
class _Database:
    """The benchmark's vectors: ids 0..len(real)-1 are the real originals, then `n - len(real)` of
    fill. `held` is the whole array when it is in memory; otherwise `blocks` draws it again on
    every pass (the same bytes in the same order)."""

    real: np.ndarray
    fit: np.ndarray
    n: int
    seed: int
    held: np.ndarray | None = None

    @classmethod
    def in_memory(cls, array: np.ndarray) -> _Database:
        return cls(real=array[:0], fit=array[:0], n=len(array), seed=0, held=array)

    @property
    def dim(self) -> int:
        return int((self.held if self.held is not None else self.real).shape[1])

    def blocks(self, desc: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first id, vectors) in id order, each block at most a million vectors."""
        if self.held is not None:
            for start in tqdm(range(0, self.n, 1_000_000), desc=desc, unit="M"):
                yield start, self.held[start : start + 1_000_000]
            return
        yield 0, self.real
        start = len(self.real)
        fill = _fill_blocks(self.fit, self.n - len(self.real), self.seed)
        for block in tqdm(fill, desc=desc, unit="block", total=-(-(self.n - start) // FILL_BLOCK)):
            yield start, block
            start += len(block)

    def take(self, ids: np.ndarray) -> np.ndarray:
        """The vectors with these (sorted) ids; a stream gathers them in one pass."""
        if self.held is not None:
            return self.held[ids]
        gather = _Gather(ids, self.dim)
        for start, block in self.blocks("gather"):
            gather.add(start, block)
        return gather.out


class _Gather:
    """Vectors with given sorted ids, picked out of blocks as a pass goes by."""

    def __init__(self, ids: np.ndarray, dim: int) -> None:
        self.ids, self.out = ids, np.empty((len(ids), dim), np.float32)

    def add(self, start: int, block: np.ndarray) -> None:
        lo, hi = np.searchsorted(self.ids, [start, start + len(block)])
        self.out[lo:hi] = block[self.ids[lo:hi] - start]


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


def _sample_ids(factory: str, n: int, dim: int, max_train: int, seed: int, train_per_list: int) -> np.ndarray | None:
    """Sorted ids of the seeded training sample of the index `factory` names: at most `max_train`
    vectors, and at most `train_per_list` x nlist when that is set (so one `max_train` serves
    indexes of different nlist); None when the whole database is the sample."""
    if train_per_list:
        nlist = faiss.extract_index_ivf(faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)).nlist
        max_train = min(max_train, train_per_list * nlist)
    if n <= max_train:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, max_train, replace=False))


def _build(factory: str, database: np.ndarray | _Database, max_train: int, seed: int, quantizer_ef: int = 0,
           kmeans: str = "auto", train_per_list: int = 0,
           sample: np.ndarray | None = None) -> tuple[faiss.Index, float, float, str, int]:
    """The index `factory` names (FAISS index_factory syntax, inner product), trained on the seeded
    sample `_sample_ids` chooses (`sample`: those vectors, already gathered by a stream's pass);
    (index, train s, add s, k-means used, training vectors)."""
    db = database if isinstance(database, _Database) else _Database.in_memory(database)
    if factory == "IVF1024,PQ16":
        if db.held is None:
            raise ValueError("the service's own build needs the database in memory: name a --factory to stream")
        started = time.perf_counter()
        index = build_ivfpq(db.held)  # exactly what the service builds
        kmeans, n_train, sample = "flat", min(200_000, db.n), None
    else:
        index = from_factory(db.dim, factory)
        if sample is None:
            ids = _sample_ids(factory, db.n, db.dim, max_train, seed, train_per_list)
            if ids is None:
                ids = np.arange(db.n)
            sample = db.held if db.held is not None and len(ids) == db.n else db.take(ids)
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
    for _, block in db.blocks(f"add to {factory}"):
        index.add(block)
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


def _measure(index: faiss.Index, database: np.ndarray | None, queries: np.ndarray, exact_ranks: np.ndarray,
             nprobes: list[int], rescore: int, cold: Path | None = None, cold_queries: int = 0) -> dict[str, Any]:
    ivf = faiss.extract_index_ivf(index)
    exact_r100 = max(1e-9, _recall(exact_ranks)["R@100"])
    per_nprobe: dict[str, Any] = {}
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        ranks, ms = _ranks(index, queries)
        recall = _recall(ranks)
        row = per_nprobe[str(nprobe)] = {**recall, "ms_per_query": round(ms, 3),
                                         "top100_recall_vs_exact": round(recall["R@100"] / exact_r100, 4)}
        if rescore and database is not None:
            ranks, ms = _rescored_ranks(index, database, queries, rescore)
            recall = _recall(ranks)
            row["rescored"] = {"shortlist": rescore, **recall, "ms_per_query": round(ms, 3),
                               "top100_recall_vs_exact": round(recall["R@100"] / exact_r100, 4)}
        timed = queries[:cold_queries] if cold_queries else queries
        if cold is not None and (measured := _cold_ranks(index, timed, cold)) is not None:
            ranks, ms = measured
            row["cold_ms_per_query"] = round(ms, 3)
            row["cold_queries"] = len(timed)
            row["cold_same_ranks"] = bool(np.array_equal(ranks, _ranks(index, timed)[0]))
    return per_nprobe


def _exact_pass(database: _Database, queries: np.ndarray, n_lat: int,
                samples: dict[str, np.ndarray]) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """One pass over the database: the exact ranks, exact search latency (`n_lat` single queries,
    the whole database, held or summed over a stream's blocks, the drawing not counted) and the
    training samples (ids -> vectors) the indexes will want, so that a stream is drawn once here
    and once per index added."""
    if database.held is not None:
        ranks = _exact_ranks(database.held, queries)
        started = time.perf_counter()
        for q in queries[:n_lat]:
            faiss.knn(q[None, :], database.held, 100, faiss.METRIC_INNER_PRODUCT)
        spent = time.perf_counter() - started
        return ranks, spent * 1000 / n_lat, {name: database.held[ids] for name, ids in samples.items()}
    counter = _RankCounter(queries, database.real)
    gathers = {name: _Gather(ids, database.dim) for name, ids in samples.items()}
    spent = 0.0
    for start, block in database.blocks("exact ranks, samples"):
        counter.add(start, block)
        started = time.perf_counter()
        for q in queries[:n_lat]:
            faiss.knn(q[None, :], block, 100, faiss.METRIC_INNER_PRODUCT)
        spent += time.perf_counter() - started
        for gather in gathers.values():
            gather.add(start, block)
    return counter.ranks(100), spent * 1000 / n_lat, {name: g.out for name, g in gathers.items()}


def run_bench_index(embedder: Any, photos_dir: Path, *, n: int, n_queries: int, nprobes: list[int], seed: int, command: str,
                    factories: tuple[str, ...] = ("IVF1024,PQ16",), max_train: int = 200_000, exact_latency_queries: int = 0,
                    quantizer_ef: int = 0, rescore: int = 0, kmeans: str = "auto", train_per_list: int = 0,
                    ondisk: Path | None = None, stream: bool = False, cold_queries: int = 0,
                    checkpoint: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every index in `factories` on the same database and queries, one after the other (one
    index in memory at a time). With `ondisk`, each is measured again with its inverted lists
    in a file there: warm (page cache) and cold (evicted before every query; the first
    `cold_queries` when set). `stream`: the database is drawn again on each pass instead of
    held (no re-scoring then: it needs the float vectors). `checkpoint` gets the results so far
    after each index (a 10M run is hours: a stopped one keeps what it finished)."""
    if stream and (rescore or "IVF1024,PQ16" in factories):
        raise ValueError("a streamed database cannot re-score (no float vectors held) or use the service's own build")
    rng = random.Random(seed)
    with (photos_dir / "index.csv").open() as fh:
        paths = [photos_dir / r["path"] for r in csv.DictReader(fh)]
    rng.shuffle(paths)
    query_photos, fit_photos = paths[:n_queries], paths[n_queries:]
    originals = [Image.open(p).convert("RGB") for p in query_photos]
    real = _embed(embedder, originals, "originals")
    queries = _embed(embedder, [augment.benign(im, rng).image for im in originals], "queries")
    fit = _embed(embedder, [Image.open(p).convert("RGB") for p in fit_photos], "fit")

    if stream:
        database = _Database(real=real, fit=fit, n=n, seed=seed)
    else:
        array = np.empty((n, real.shape[1]), np.float32)  # ids 0..n_queries-1 are the true originals
        array[: len(real)] = real
        _fill(fit, array[len(real) :], seed)  # in place: one 10 GB array at 10M, not two
        database = _Database.in_memory(array)

    faiss.omp_set_num_threads(max(1, faiss.omp_get_max_threads()))
    # exact search latency: every query below 1M vectors, a sample above (1 s a query at 10M on 2 cores)
    n_lat = exact_latency_queries or (len(queries) if n <= 1_000_000 else 20 if not stream else 10)
    wanted: dict[str, np.ndarray] = {}
    if stream:  # gathered in the exact pass rather than by a pass of their own
        for factory in factories:
            ids = _sample_ids(factory, n, database.dim, max_train, seed, train_per_list)
            wanted[factory] = np.arange(n) if ids is None else ids
    exact_ranks, exact_ms, samples = _exact_pass(database, queries, n_lat, wanted)

    indexes = []
    for factory in factories:
        index, train_s, add_s, used, n_train = _build(factory, database, max_train, seed, quantizer_ef, kmeans,
                                                      train_per_list, sample=samples.pop(factory, None))
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
            "by_nprobe": _measure(index, database.held, queries, exact_ranks, nprobes, rescore),
        }
        if ondisk is not None:
            path = lists_on_disk(index, ondisk / f"{len(indexes)}" / "lists.ivfdata")
            row["ondisk"] = {"file_bytes": path.stat().st_size,
                             "by_nprobe": _measure(index, None, queries, exact_ranks, nprobes, 0, cold=path,
                                                   cold_queries=cold_queries)}
            path.unlink()
        indexes.append(row)
        del index, ivf
        if checkpoint is not None and len(indexes) < len(factories):
            checkpoint(_results(command, embedder, database, queries, exact_ranks, exact_ms, n_lat, indexes))
    return _results(command, embedder, database, queries, exact_ranks, exact_ms, n_lat, indexes)


def _results(command: str, embedder: Any, database: _Database, queries: np.ndarray, exact_ranks: np.ndarray,
             exact_ms: float, n_lat: int, indexes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "command": command,
        "model": embedder.model_id,
        "n": database.n,
        "n_queries": len(queries),
        "dim": database.dim,
        "threads": faiss.omp_get_max_threads(),
        "database": "streamed: drawn again on every pass, never held" if database.held is None else "in memory",
        "exact": {**_recall(exact_ranks), "ms_per_query": round(exact_ms, 3), "latency_queries": n_lat,
                  "bytes_per_vector": database.dim * 4},
        "indexes": list(indexes),
        "fill": "Gaussian fitted to real embeddings of other photos (mean + full covariance), L2-normalised",
    }


def _list_sizes(ivf: faiss.IndexIVF) -> dict[str, int]:
    """How evenly the coarse quantizer spread the vectors: a probe costs its lists' lengths."""
    sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)])
    return {"min": int(sizes.min()), "p50": int(np.median(sizes)), "max": int(sizes.max()), "empty": int((sizes == 0).sum())}
