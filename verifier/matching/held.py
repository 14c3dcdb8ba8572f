"""The stored stage-1 vectors held in memory, so that re-scoring a shortlist reads no database.

Once an index is IVF-PQ its FAISS copy of the vectors is approximate, and stage 1 re-scores its
shortlist with the stored float32 vectors: the region model's pool (up to 200 originals x 10
vectors) and, past the global index's threshold, the global top 1,000. At 10,000 originals that
read was 25 ms of stage 1's 116 (profiled; BENCHMARKS.md, "Held vectors"). These are the
database's vectors bit for bit, so every score is the same; the database stays the source of
truth and this copy is rebuilt from it whenever the index is. Held only while every row fits the
budget (`VERIFIER_VECTOR_CACHE_MB`): a partial copy would still need the read for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["HeldVectors"]


class HeldVectors:
    """Row id -> the row's vectors (row_dim float32). Not thread-safe: the owner's lock guards it."""

    def __init__(self, row_dim: int, budget_bytes: int, rows: int = 0) -> None:
        self.row_dim = row_dim
        self.capacity = max(0, budget_bytes) // (row_dim * 4)  # rows that fit the budget
        self.on = 0 < self.capacity and rows <= self.capacity
        self._data = np.zeros((min(rows + rows // 8 + 16, self.capacity) if self.on else 0, row_dim), np.float32)
        self._slot: dict[int, int] = {}
        self._free: list[int] = []
        self._used = 0  # slots ever handed out (high-water mark)

    def __len__(self) -> int:
        return len(self._slot)

    def filling(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Pass (row ids (N,), vectors (N, row_dim)) batches through, holding each row (an index
        build reads every row once anyway: holding them costs no second read)."""
        for ids, vectors in batches:
            for row_id, vector in zip(ids.tolist(), vectors.reshape(len(ids), self.row_dim), strict=True):
                self.put(row_id, vector)
            yield ids, vectors

    def put(self, row_id: int, vector: np.ndarray) -> None:
        if not self.on:
            return
        slot = self._slot.get(row_id)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                if self._used == len(self._data):
                    if self._used >= self.capacity:
                        self._off()
                        return
                    grown = np.zeros((min(self.capacity, 2 * len(self._data) + 16), self.row_dim), np.float32)
                    grown[: self._used] = self._data[: self._used]
                    self._data = grown
                slot = self._used
                self._used += 1
            self._slot[row_id] = slot
        self._data[slot] = vector.reshape(self.row_dim)

    def drop(self, row_id: int) -> None:
        slot = self._slot.pop(row_id, None)
        if slot is not None:
            self._free.append(slot)

    def get(self, row_ids: list[int | None]) -> np.ndarray | None:
        """(N, row_dim), a copy, when every row is held; else None (the caller reads the database)."""
        if not self.on:
            return None
        slots = [self._slot.get(r) if r is not None else None for r in row_ids]
        if any(s is None for s in slots):
            return None
        return self._data[np.array(slots, np.int64)] if slots else np.zeros((0, self.row_dim), np.float32)

    def _off(self) -> None:
        log.info("stored vectors no longer held in memory: %d rows of %d floats exceed the budget", self._used + 1,
                 self.row_dim)
        self.on = False
        self._data = np.zeros((0, self.row_dim), np.float32)
        self._slot.clear()
        self._free.clear()
        self._used = 0
