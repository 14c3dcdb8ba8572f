"""Exact inner-product search with FAISS, ids = the database's embedding ids (int64)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class SearchHit:
    id: int
    score: float  # inner product = cosine similarity for unit vectors


class ExactIndex:
    """Thread-safe IndexIDMap2(IndexFlatIP): add, remove and search by int64 id."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        with self._lock:
            self._index.remove_ids(ids)  # re-adding an id replaces it
            self._index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        with self._lock:
            return int(self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)))

    def search(self, query: np.ndarray, k: int) -> list[SearchHit]:
        """Top-k for one query vector, best first."""
        with self._lock:
            if self._index.ntotal == 0:
                return []
            k = min(k, int(self._index.ntotal))
            scores, ids = self._index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim), k)
        return [SearchHit(int(i), float(s)) for s, i in zip(scores[0], ids[0]) if i != -1]
