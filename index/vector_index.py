"""The registry's vector index: exact search while small, IVF1024,PQ16 (128-bit codes, as in
SImProv) once there are enough vectors to train it, persisted with atomic replace.

Switch point: IVF1024 needs about 39 training vectors per centroid (~40k) for stable
k-means, and below ~50k vectors exact inner-product search over 256-D float32 costs a few
milliseconds per query on two cores anyway, so the index turns into IVF-PQ at 50,000
vectors (`ivf_threshold`). The database stays the source of truth: the file is a cache that
is reconciled with it at start-up (see `ProvenanceSearch.load`).

Lists: 1,024 below 4M vectors, 4,096 from there (`nlist_for`), the choices measured at 1M, 10M
and 100M vectors (BENCHMARKS.md, "Scale" and "100M vectors"); an index that outgrows its lists is
rebuilt at the next start-up (`needs_upgrade`). A build reads its vectors in batches
(`build_streamed`): at 10M originals their float copy is 110 GB.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np


@dataclass(frozen=True)
class SearchHit:
    id: int  # the database's embedding id
    score: float  # inner product = cosine similarity for unit vectors


IVF_THRESHOLD = 50_000
NLIST_4096_FROM = 4_000_000
MAX_ID = 2**40  # row id x 16 + position: 68 billion rows; the held-id flags grow to the largest id


def nlist_for(n: int) -> int:
    """Coarse lists for an index of n vectors: IVF1024 keeps 99 % of exact search's top-100 recall
    at 1M vectors (nprobe 128, 1.3 ms); at 10M IVF4096 does (98 %, 99 % re-scored; IVF65536 lost
    recall), and at 100M IVF4096 is what was measured (BENCHMARKS.md)."""
    return 1024 if n < NLIST_4096_FROM else 4096


class VectorIndex:
    def __init__(self, dim: int, *, ivf_threshold: int = IVF_THRESHOLD, nlist: int | None = None, pq_m: int = 16,
                 nprobe: int = 128, use_gpu: bool = True, nlist_rule: Callable[[int], int] = nlist_for) -> None:
        """`nlist` fixes the lists; None chooses them by size (`nlist_rule`) at each build."""
        self.dim = dim
        self.ivf_threshold = ivf_threshold
        self.nlist, self.pq_m, self.nprobe, self.nlist_rule = nlist, pq_m, nprobe, nlist_rule
        self.use_gpu = use_gpu
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._held = _IdSet()  # ids held, for reconciliation and rebuilds
        self._lock = threading.RLock()

    # -- shape --------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return "ivfpq" if isinstance(faiss.downcast_index(self._base()), faiss.IndexIVFPQ) else "exact"

    def _base(self) -> faiss.Index:
        idx = self._index
        return faiss.downcast_index(idx.index) if isinstance(idx, faiss.IndexIDMap) else idx

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> np.ndarray:
        with self._lock:
            return self._held.ids()

    def bytes_per_vector(self) -> float:
        return self.pq_m if self.kind == "ivfpq" else self.dim * 4.0

    # -- writes -------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        with self._lock:
            self.remove(ids)
            self._index.add_with_ids(vectors, ids)
            self._held.mark(ids, True)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        with self._lock:
            present = self._held.has(ids)
            if not present.any():
                return 0
            removed = int(self._index.remove_ids(ids[present]))
            self._held.mark(ids[present], False)
            return removed

    def build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the contents: exact below the threshold, else train IVF-PQ on `vectors`."""
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim)
        self.build_streamed(len(vectors), lambda: vectors, [(ids, vectors)])

    def build_streamed(self, total: int, sample: Callable[[], np.ndarray],
                       batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the contents with `batches` of (ids, vectors), about `total` in all: IVF-PQ
        trained on `sample()` (at most 200k of them are used) when `total` reaches the threshold.
        The new index is built aside and swapped in whole; only one batch is held at a time."""
        if total >= self.ivf_threshold:
            index = build_ivfpq(sample(), self.wanted_nlist(total), self.pq_m, use_gpu=self.use_gpu)
            index.nprobe = self.nprobe
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        held = _IdSet()
        for ids, vectors in batches:
            ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
            index.add_with_ids(np.ascontiguousarray(vectors, np.float32).reshape(-1, self.dim), ids)
            held.mark(ids, True)
        with self._lock:
            self._index, self._held = index, held

    def wanted_nlist(self, total: int) -> int:
        return self.nlist or self.nlist_rule(total)

    def lists(self) -> int:
        """The IVF's lists (0 while exact)."""
        base = self._base()
        return int(faiss.downcast_index(base).nlist) if self.kind == "ivfpq" else 0

    def needs_upgrade(self) -> bool:
        """Exact past the threshold, or IVF-PQ with fewer lists than its size calls for."""
        if self.kind == "exact":
            return len(self) >= self.ivf_threshold
        return self.lists() < self.wanted_nlist(len(self))

    # -- reads --------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> list[SearchHit]:
        return self.search_many(np.asarray(query).reshape(1, self.dim), k)[0]

    def search_many(self, queries: np.ndarray, k: int) -> list[list[SearchHit]]:
        """Top-k of each row of `queries` (Q, dim), in one FAISS call (one matrix product
        for an exact index instead of Q)."""
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        with self._lock:
            if self._index.ntotal == 0:
                return [[] for _ in queries]
            scores, ids = self._index.search(queries, min(k, len(self)))
        return [[SearchHit(int(i), float(s)) for s, i in zip(srow, irow) if i != -1] for srow, irow in zip(scores, ids)]

    def reconstruct(self, ids: np.ndarray) -> np.ndarray | None:
        """The stored vectors (N, dim) of these ids, exactly as added, while the index is exact
        (IVF-PQ keeps only codes: None); None too when any id is not held."""
        ids = np.ascontiguousarray(ids, np.int64).reshape(-1)
        with self._lock:
            if self.kind != "exact":
                return None
            try:
                return self._index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dim), np.float32)
            except RuntimeError:  # an id not held (removed meanwhile)
                return None

    # -- persistence --------------------------------------------------------------------

    def save(self, path: Path, meta: dict[str, object]) -> None:
        """Atomically write index + id list + metadata (three files, each replaced whole;
        the metadata is written last and names the index file's checksum-free size)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            blob = faiss.serialize_index(self._index).tobytes()
            ids = self._held.ids().tobytes()
        _atomic_write(path, blob)
        _atomic_write(path.with_suffix(".ids"), ids)
        _atomic_write(path.with_suffix(".json"), json.dumps({**meta, "count": len(ids) // 8, "index_bytes": len(blob), "kind": self.kind}).encode())

    def load(self, path: Path) -> dict[str, object] | None:
        """Load a saved index; None when absent or inconsistent (then rebuild from the DB)."""
        meta_path, ids_path = path.with_suffix(".json"), path.with_suffix(".ids")
        if not (path.exists() and meta_path.exists() and ids_path.exists()):
            return None
        meta = json.loads(meta_path.read_text())
        blob = path.read_bytes()
        ids = np.frombuffer(ids_path.read_bytes(), np.int64).copy()
        if meta.get("index_bytes") != len(blob) or meta.get("count") != len(ids):
            return None  # a crash between the three replaces: stale, rebuild
        if len(ids) and (ids.min() < 0 or ids.max() >= MAX_ID):
            return None  # not ids this service writes (a damaged file): rebuild, rather than a flag array that size
        index = faiss.deserialize_index(np.frombuffer(blob, np.uint8))
        if index.ntotal != len(ids) or index.d != self.dim:
            return None
        base = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else faiss.downcast_index(index)
        if isinstance(base, faiss.IndexIVF):
            base.nprobe = self.nprobe
        with self._lock:
            held = _IdSet()
            held.mark(ids, True)
            self._index, self._held = index, held
        return meta


def lists_on_disk(index: faiss.Index, path: Path) -> Path:
    """Move an IVF index's inverted lists into one memory-mapped file at `path`
    (`OnDiskInvertedLists`), the layout for more lists than RAM; the index answers as before.
    An existing file there is replaced."""
    ivf = faiss.extract_index_ivf(index)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(path))
    lists = faiss.InvertedListsPtrVector()
    lists.push_back(ivf.invlists)
    ondisk.merge_from_multiple(lists.data(), lists.size(), False)
    ivf.replace_invlists(ondisk, True)
    ondisk.this.disown()
    return path


def gpu_available() -> bool:
    """faiss-gpu (the `gpu` extra) installed and a GPU visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class _IdSet:
    """The ids an index holds, as one flag per possible id (the ids are PostgreSQL row ids x 16 +
    position: dense). Why not the sorted array it was: at 100M region vectors, `np.isin` against
    it and the copy that appending makes cost ~4 s per registration (~0.4 s at 10M), under the
    index's lock; a flag costs 1 byte per id, less than the 8 the array took."""

    def __init__(self) -> None:
        self._flags = np.zeros(0, bool)

    def has(self, ids: np.ndarray) -> np.ndarray:
        inside = (ids >= 0) & (ids < len(self._flags))
        out = np.zeros(len(ids), bool)
        out[inside] = self._flags[ids[inside]]
        return out

    def mark(self, ids: np.ndarray, value: bool) -> None:
        if not len(ids):
            return
        top = int(ids.max())
        if value and top >= len(self._flags):
            grown = np.zeros(max(top + 1, 2 * len(self._flags)), bool)
            grown[: len(self._flags)] = self._flags
            self._flags = grown
        self._flags[ids[(ids >= 0) & (ids < len(self._flags))]] = value

    def ids(self) -> np.ndarray:
        return np.flatnonzero(self._flags).astype(np.int64)


def from_factory(dim: int, spec: str, metric: int = faiss.METRIC_INNER_PRODUCT) -> faiss.Index:
    """`faiss.index_factory`, with PQ's polysemous training off. The factory turns it on for
    every PQ encoding; it only renumbers each sub-quantizer's centroids so that Hamming distances
    between codes track real ones, which nothing here searches by (`polysemous_ht` is never set),
    and it costs ~0.8 s per sub-quantizer whatever the sample: 26 s of a PQ32 vote index's 27-s
    build on 1,000 descriptors, the same codes' distances and neighbours without it
    (BENCHMARKS.md, "PQ's polysemous training: 26 s of every PQ32 build")."""
    index = faiss.index_factory(dim, spec, metric)
    for part in (index, *_nested(index)):
        part = faiss.downcast_index(part)
        if hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    return index


def _nested(index: faiss.Index) -> list[faiss.Index]:
    """The IVF inside a pre-transform or an id map, where the factory puts it."""
    try:
        return [faiss.extract_index_ivf(index)]
    except RuntimeError:  # not an IVF
        return []


def build_ivfpq(train_vectors: np.ndarray, nlist: int = 1024, pq_m: int = 16, max_train: int = 200_000,
                use_gpu: bool = True) -> faiss.Index:
    """IVF{nlist},PQ{pq_m} on inner product: pq_m bytes (pq_m*8 bits) per vector. The
    k-means of the coarse quantizer runs on the GPU when faiss-gpu has one; the index
    itself stays on the CPU (it is what gets saved and served)."""
    dim = train_vectors.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
    if use_gpu and gpu_available():
        index.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
    sample = train_vectors
    if len(sample) > max_train:
        sample = sample[np.random.default_rng(0).choice(len(sample), max_train, replace=False)]
    index.train(np.ascontiguousarray(sample, np.float32))
    return index


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)  # the rename is durable once the directory is synced


def fsync_path(path: Path) -> None:
    """fsync a file (written through a memory mapping, say) or a directory (after a rename into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
