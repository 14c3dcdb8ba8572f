"""Provenance search behind one small interface: embed -> search -> compare.

The registry's originals are embedded at ingest (vectors kept in PostgreSQL, table
`embeddings`) and held in a FAISS index that is rebuilt from the database at start-up, so
nothing registered is missing from search after a restart or a crash. Originals that
have no vector for the current model (registered under another model, or before a crash
between commit and embedding) are embedded during that catch-up.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from index import VectorIndex
from verifier.db import Database
from verifier.db.models import Embedding, Original
from verifier.embedding import Embedder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    original_id: uuid.UUID
    score: float


@dataclass(frozen=True)
class SearchOutcome:
    method: str
    candidates: list[Candidate]  # best first
    match: Candidate | None  # the top candidate when it clears the decision threshold
    threshold: float
    query_vector: np.ndarray | None = None


@dataclass(frozen=True)
class Calibration:
    """Decision threshold on cosine similarity, with how it was measured."""

    threshold: float
    details: dict[str, Any]

    @classmethod
    def load(cls, model_id: str) -> Calibration:
        path = resources.files("verifier.models").joinpath(f"{model_id}.calibration.json")
        raw = json.loads(path.read_text())
        if raw.get("model_id") != model_id:
            raise ValueError(f"calibration file is for {raw.get('model_id')}, not {model_id}")
        return cls(threshold=float(raw["threshold"]), details=raw)


class ProvenanceSearch:
    SAVE_EVERY = 1000  # persist the index after this many additions (start-up reconciles anyway)

    def __init__(self, db: Database, embedder: Embedder, calibration: Calibration, top_k: int = 100,
                 index_path: Path | None = None, ivf_threshold: int | None = None, nprobe: int = 128) -> None:
        self.db = db
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

    def load(self, blob_reader: Any) -> int:
        """Bring the index up to date with the database: load the saved index, drop ids the
        database no longer has, add the ones it lacks, embed originals with no vector for
        this model, switch to IVF-PQ when large enough, and save."""
        model_id = self.embedder.model_id
        with self.db.session() as session:
            owners = {row.id: row.original_id for row in session.execute(select(Embedding.id, Embedding.original_id).where(Embedding.model_id == model_id))}
            missing = list(
                session.scalars(
                    select(Original).where(
                        ~select(Embedding.id)
                        .where(Embedding.original_id == Original.id, Embedding.model_id == model_id)
                        .exists()
                    )
                )
            )
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
            from verifier.images import load_stored

            vector = self.embed(load_stored(blob_reader(original), original.width, original.height))
            with self.db.session() as session:
                emb = self.stage(session, original.id, vector)
            self.commit_added(emb, vector)
        if self.index.needs_upgrade():
            self.index.build(*self._vectors(None))
        self.save()
        log.info("search index: %d vectors of %s, %s (%d embedded at start-up)", len(self.index), model_id, self.index.kind, len(missing))
        return len(self.index)

    def _vectors(self, ids: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        stmt = select(Embedding.id, Embedding.vector).where(Embedding.model_id == self.embedder.model_id)
        if ids is not None:
            stmt = stmt.where(Embedding.id.in_(ids))
        with self.db.session() as session:
            rows = session.execute(stmt.order_by(Embedding.id)).all()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.embedder.dim), np.float32)
        return np.array([r.id for r in rows], np.int64), np.stack([np.frombuffer(r.vector, np.float32) for r in rows])

    def save(self) -> None:
        if self.index_path is not None:
            self.index.save(self.index_path, {"model_id": self.embedder.model_id})
            self._unsaved = 0

    # -- write path (called by the registry inside its transaction) -----------------------

    def embed(self, img: Image.Image) -> np.ndarray:
        return self.embedder.embed([img])[0]

    def stage(self, session: Session, original_id: uuid.UUID, vector: np.ndarray) -> Embedding:
        emb = Embedding(
            original_id=original_id,
            model_id=self.embedder.model_id,
            dim=int(vector.shape[0]),
            vector=np.ascontiguousarray(vector, np.float32).tobytes(),
        )
        session.add(emb)
        session.flush()
        return emb

    def commit_added(self, emb: Embedding, vector: np.ndarray) -> None:
        """After the transaction committed: make the vector searchable."""
        self.index.add(np.array([emb.id], np.int64), vector[None, :])
        with self._lock:
            self._owner[emb.id] = emb.original_id
            self._unsaved += 1
            due = self._unsaved >= self.SAVE_EVERY
        if due:
            self.save()

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
        if not original_ids:
            return np.zeros((0, self.embedder.dim), np.float32)
        stmt = select(Embedding.original_id, Embedding.vector).where(
            Embedding.model_id == self.embedder.model_id, Embedding.original_id.in_(original_ids)
        )
        with self.db.session() as session:
            found = {row.original_id: np.frombuffer(row.vector, np.float32) for row in session.execute(stmt)}
        return np.stack([found.get(i, np.zeros(self.embedder.dim, np.float32)) for i in original_ids])
