"""Provenance search behind one small interface: embed -> search -> compare.

The registry's originals are embedded at ingest (vectors kept in PostgreSQL, table
`embeddings`) and held in a FAISS index that is rebuilt from the database at start-up, so
nothing registered is missing from search after a restart or a crash. Originals that
have no vector for the current model (registered under another model, or before a crash
between commit and embedding) are embedded during that catch-up.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from index import VectorIndex
from verifier.matching.evidence import Candidate, SearchOutcome
from verifier.simprov.catalog import Calibration
from verifier.simprov.embedding import Embedder
from verifier.storage.embeddings import EmbeddingStore
from verifier.storage.models import Embedding, Original

log = logging.getLogger(__name__)

__all__ = ["Calibration", "Candidate", "ProvenanceSearch", "SearchOutcome"]


class ProvenanceSearch:
    SAVE_EVERY = 1000  # persist the index after this many additions (start-up reconciles anyway)

    def __init__(self, store: EmbeddingStore, embedder: Embedder, calibration: Calibration, top_k: int = 100,
                 index_path: Path | None = None, ivf_threshold: int | None = None, nprobe: int = 128) -> None:
        self.store = store
        self.embedder = embedder
        self.calibration = calibration
        self.top_k = top_k
        self.index_path = index_path
        kwargs = {"ivf_threshold": ivf_threshold} if ivf_threshold else {}
        self.index = VectorIndex(embedder.dim, nprobe=nprobe, **kwargs)
        self._owner: dict[int, uuid.UUID] = {}  # embedding id -> original id
        self._lock = threading.Lock()
        self._unsaved = 0

    @property
    def method(self) -> str:
        return f"{self.embedder.model_id}+faiss-{self.index.kind}"

    # -- lifecycle ------------------------------------------------------------------------

    def load(self, image_of: Callable[[Original], Image.Image]) -> int:
        """Bring the index up to date with the database: load the saved index, drop ids the
        database no longer has, add the ones it lacks, embed originals with no vector for
        this model (`image_of` decodes a stored original), switch to IVF-PQ when large
        enough, and save."""
        model_id = self.embedder.model_id
        owners = self.store.owners(model_id)
        missing = self.store.originals_without(model_id)
        with self._lock:
            self._owner = owners
        meta = self.index.load(self.index_path) if self.index_path else None
        if meta is None or meta.get("model_id") != model_id:
            self.index.build(*self._vectors(None))
        else:
            held = self.index.ids()
            self.index.remove(held[~np.isin(held, np.fromiter(owners, np.int64, len(owners)))])
            held_set = set(held.tolist())
            lacking = [i for i in owners if i not in held_set]
            if lacking:
                self.index.add(*self._vectors(lacking))
        for original in missing:
            vector = self.embed(image_of(original))
            self.commit_added(self.store.add(original.id, model_id, vector), vector)
        if self.index.needs_upgrade():
            self.index.build(*self._vectors(None))
        self.save()
        log.info("search index: %d vectors of %s, %s (%d embedded at start-up)", len(self.index), model_id, self.index.kind, len(missing))
        return len(self.index)

    def _vectors(self, ids: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        return self.store.vectors(self.embedder.model_id, self.embedder.dim, ids)

    def reset(self) -> None:
        """Forget the saved index file, so that the next `load` rebuilds it from the database."""
        if self.index_path is not None:
            for suffix in (".faiss", ".ids", ".json"):
                self.index_path.with_suffix(suffix).unlink(missing_ok=True)

    def save(self) -> None:
        if self.index_path is not None:
            self.index.save(self.index_path, {"model_id": self.embedder.model_id})
            self._unsaved = 0

    # -- write path (called by the registry inside its transaction) -----------------------

    def embed(self, img: Image.Image) -> np.ndarray:
        return self.embedder.embed([img])[0]

    def stage(self, session: Session, original_id: uuid.UUID, vector: np.ndarray) -> Embedding:
        return self.store.stage(session, original_id, self.embedder.model_id, vector)

    def commit_added(self, emb: Embedding, vector: np.ndarray) -> None:
        """After the transaction committed: make the vector searchable."""
        self.index.add(np.array([emb.id], np.int64), vector[None, :])
        with self._lock:
            self._owner[emb.id] = emb.original_id
            self._unsaved += 1
            due = self._unsaved >= self.SAVE_EVERY
        if due:
            self.save()

    def indexed_originals(self) -> set[uuid.UUID]:
        """The originals that search can return now."""
        with self._lock:
            return set(self._owner.values())

    def forget(self, original_id: uuid.UUID) -> None:
        with self._lock:
            ids = [eid for eid, oid in self._owner.items() if oid == original_id]
            for eid in ids:
                del self._owner[eid]
        if ids:
            self.index.remove(np.array(ids, np.int64))

    # -- read path ------------------------------------------------------------------------

    def search(self, img: Image.Image) -> SearchOutcome:
        vector = self.embed(img)
        hits = self.index.search(vector, self.top_k)
        with self._lock:
            candidates = [Candidate(self._owner[h.id], h.score) for h in hits if h.id in self._owner]
        top = candidates[0] if candidates else None
        match = top if top is not None and top.score >= self.calibration.threshold else None
        return SearchOutcome(self.method, candidates, match, self.calibration.threshold, vector)

    def vectors_for(self, original_ids: list[uuid.UUID]) -> np.ndarray:
        """Stage-1 vectors of originals (this model), in the order asked."""
        return self.store.vectors_for(self.embedder.model_id, self.embedder.dim, original_ids)
