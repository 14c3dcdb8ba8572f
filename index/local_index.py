"""Local-feature index: the SIFT descriptors of every registered original in one FAISS index,
so that a query's descriptors can vote for the originals they come from.

Why: a real edit often keeps only a piece of the original (a subject cut out and placed into
another scene, a small inset). No global or region vector of such a query resembles the
original's, but its SIFT descriptors still match the original's one for one. Each query
descriptor looks up its nearest registered descriptors; when the nearest beats the nearest of
any *other* original by Lowe's ratio, that original gets a vote (a ratio test across the
whole registry: a descriptor common to many photos votes for none).

Layout: exact L2 search while small; from `ivf_threshold` descriptors on, IVF with an HNSW
coarse quantizer (`nlist` ~ 4 sqrt(N), 2 lists probed) and `codes` per descriptor, RaBitQ by
default. Measured on the families registry (3,980 originals, 1.55M descriptors), every families
query voting (`verifier bench-votes`, BENCHMARKS.md "The vote index's codes"): the true original
first by votes with >= 5 for 681 of 710 queries with RaBitQ (24-byte codes; 13 KB per original in
all), SQ4 (29 KB) and SQ8 (54 KB) alike, 677 with PQ32 (16 KB), 646 with 4-bit fast-scan PQ32.
A flat coarse quantizer (4 probes) was slower than the HNSW one (2 probes) for the same votes.

FAISS id = key * KEY_STRIDE + descriptor number.
"""

from __future__ import annotations

import threading
from pathlib import Path

import faiss
import numpy as np

from index.vector_index import lists_on_disk

DIM = 128
KEY_STRIDE = 4096  # more than the SIFT features kept per image (2,000)


def _nlist(n: int) -> int:
    """A power of two near 4 sqrt(n), 256..65536."""
    return int(min(65536, max(256, 2 ** round(np.log2(4 * np.sqrt(max(n, 1)))))))


class LocalFeatureIndex:
    def __init__(self, *, ivf_threshold: int = 200_000, nprobe: int = 2, train_max: int = 200_000, codes: str = "RaBitQ") -> None:
        self.ivf_threshold = ivf_threshold
        self.codes = codes  # FAISS encoding of the IVF's descriptors (index_factory's last part)
        self.nprobe = nprobe
        self.train_max = train_max
        self._index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatL2(DIM))
        self._lists_file: Path | None = None  # where `move_lists_to` put the lists (then read-only)
        self._lock = threading.RLock()

    @property
    def kind(self) -> str:
        with self._lock:
            ivf = faiss.downcast_index(self._index)
            return f"ivf-{self.codes.lower()}" if isinstance(ivf, faiss.IndexIVF) else "exact"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def code_bytes(self) -> int:
        """Bytes of a descriptor's code (the id and the lists' overhead come on top); 512 exact."""
        with self._lock:
            ivf = faiss.downcast_index(self._index)
            return int(ivf.code_size) if isinstance(ivf, faiss.IndexIVF) else 4 * DIM

    def add(self, key: int, descriptors: np.ndarray) -> None:
        """One image's descriptors (N, 128) under `key` (replacing what it had)."""
        d = np.ascontiguousarray(descriptors, np.float32).reshape(-1, DIM)[:KEY_STRIDE]
        ids = key * KEY_STRIDE + np.arange(len(d), dtype=np.int64)
        with self._lock:
            self._writable()
            self.remove(key)
            if len(d):
                self._index.add_with_ids(d, ids)

    def remove(self, key: int) -> None:
        with self._lock:
            self._writable()
            self._index.remove_ids(faiss.IDSelectorRange(key * KEY_STRIDE, (key + 1) * KEY_STRIDE))

    def build(self, items: list[tuple[int, np.ndarray]]) -> None:
        """Replace the contents with these (key, descriptors); IVF when they are many. The
        descriptors are added a chunk at a time and the IVF is trained on a sample, so the
        build holds no float32 copy of them all (at 10k originals that copy was 1.4 GB)."""
        items = [(k, np.asarray(d).reshape(-1, DIM)[:KEY_STRIDE]) for k, d in items]
        total = sum(len(d) for _, d in items)
        index = self._empty(self._sample(items, total), total)
        for start in range(0, len(items), 512):
            chunk = items[start : start + 512]
            data = np.concatenate([d for _, d in chunk]).astype(np.float32) if chunk else np.zeros((0, DIM), np.float32)
            ids = np.concatenate([k * KEY_STRIDE + np.arange(len(d), dtype=np.int64) for k, d in chunk])
            if len(data):
                index.add_with_ids(np.ascontiguousarray(data), ids)
        with self._lock:
            self._index, self._lists_file = index, None

    def _writable(self) -> None:
        if self._lists_file is not None:
            raise ValueError(f"the lists in {self._lists_file} are read-only: FAISS's on-disk lists corrupt on removal")

    def _sample(self, items: list[tuple[int, np.ndarray]], total: int) -> np.ndarray:
        """The IVF's training descriptors: a uniform sample of `train_size(total)` rows."""
        take = self._train_size(total)
        if total < self.ivf_threshold or not take:
            return np.zeros((0, DIM), np.float32)
        rows = np.sort(np.random.default_rng(0).choice(total, min(take, total), replace=False))
        offsets = np.cumsum([0] + [len(d) for _, d in items])
        which = np.searchsorted(offsets, rows, side="right") - 1
        return np.stack([items[i][1][r - offsets[i]] for i, r in zip(which.tolist(), rows.tolist(), strict=True)]).astype(np.float32)

    def _train_size(self, total: int) -> int:
        return min(self.train_max, 40 * _nlist(total))

    def _empty(self, sample: np.ndarray, total: int) -> faiss.Index:
        if total < self.ivf_threshold:
            return faiss.IndexIDMap2(faiss.IndexFlatL2(DIM))
        index = faiss.index_factory(DIM, f"IVF{_nlist(total)}_HNSW32,{self.codes}", faiss.METRIC_L2)
        index.train(np.ascontiguousarray(sample))
        faiss.extract_index_ivf(index).nprobe = self.nprobe
        return index

    def serialize(self) -> np.ndarray:
        """The whole index as bytes (uint8 array), for the caller to persist."""
        with self._lock:
            return faiss.serialize_index(self._index)

    def deserialize(self, blob: np.ndarray) -> None:
        index = faiss.deserialize_index(np.ascontiguousarray(blob, np.uint8))
        if index.d != DIM:
            raise ValueError(f"a local-feature index has {DIM}-D descriptors, not {index.d}")
        lists_file = None
        if isinstance(faiss.downcast_index(index), faiss.IndexIVF):
            ivf = faiss.extract_index_ivf(index)
            ivf.nprobe = self.nprobe
            ondisk = faiss.downcast_InvertedLists(ivf.invlists)
            if isinstance(ondisk, faiss.OnDiskInvertedLists):  # saved after `move_lists_to`: read-only still
                lists_file = Path(ondisk.filename)
        with self._lock:
            self._index, self._lists_file = index, lists_file

    def move_lists_to(self, path: Path) -> None:
        """Keep the IVF's inverted lists (the codes and ids) in a memory-mapped file at `path`
        instead of RAM, for more descriptors than memory holds; the votes are unchanged
        (`verifier bench-votes --ondisk` measures what a vote costs then). The index is then
        read-only until the next `build`: FAISS 1.x's `OnDiskInvertedLists` removed the wrong
        entries and zeroed distances on `remove_ids` (tested), so a service holding its lists
        on disk would have to rebuild instead of removing."""
        with self._lock:
            if not isinstance(faiss.downcast_index(self._index), faiss.IndexIVF):
                raise ValueError("only an IVF index keeps inverted lists (this one is exact)")
            lists_on_disk(self._index, path)
            self._lists_file = path

    def needs_upgrade(self) -> bool:
        return self.kind == "exact" and len(self) >= self.ivf_threshold

    def vote(self, descriptors: np.ndarray, ratio: float = 0.7, k: int = 4) -> dict[int, int]:
        """key -> votes of the query's descriptors (N, 128): a descriptor votes for the key of its
        nearest neighbour when that is nearer than `ratio` x the nearest of another key."""
        q = np.ascontiguousarray(descriptors, np.float32).reshape(-1, DIM)
        with self._lock:
            if not len(q) or self._index.ntotal == 0:
                return {}
            d2, ids = self._index.search(q, min(k, int(self._index.ntotal)))
        keys = np.where(ids >= 0, ids // KEY_STRIDE, -1)
        first = keys[:, 0]
        other = (keys != first[:, None]) & (keys >= 0)  # neighbours from another image
        has_other = other.any(1)
        # without another image among the k, the k-th neighbour stands in (a descriptor far from everything fails)
        second = np.where(has_other, d2[np.arange(len(q)), np.argmax(other, 1)], d2[:, -1])
        ok = (first >= 0) & (d2[:, 0] < ratio**2 * second)
        voted, counts = np.unique(first[ok], return_counts=True)
        return {int(key): int(n) for key, n in zip(voted, counts, strict=True)}
