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
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from index import ExactIndex
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
    def __init__(self, db: Database, embedder: Embedder, calibration: Calibration, top_k: int = 100) -> None:
        self.db = db
        self.embedder = embedder
        self.calibration = calibration
        self.top_k = top_k
        self.index = ExactIndex(embedder.dim)
        self._owner: dict[int, uuid.UUID] = {}  # embedding id -> original id
        self._lock = threading.Lock()

    @property
    def method(self) -> str:
        return f"{self.embedder.model_id}+faiss-exact-ip"

    # -- lifecycle ------------------------------------------------------------------------

    def load(self, blob_reader: Any) -> int:
        """(Re)build the index from the database; embed originals that lack a vector."""
        model_id = self.embedder.model_id
        with self.db.session() as session:
            rows = session.execute(
                select(Embedding.id, Embedding.original_id, Embedding.vector).where(Embedding.model_id == model_id)
            ).all()
            missing = list(
                session.scalars(
                    select(Original).where(
                        ~select(Embedding.id)
                        .where(Embedding.original_id == Original.id, Embedding.model_id == model_id)
                        .exists()
                    )
                )
            )
        if rows:
            ids = np.array([r.id for r in rows], np.int64)
            vecs = np.stack([np.frombuffer(r.vector, np.float32) for r in rows])
            self.index.add(ids, vecs)
            with self._lock:
                self._owner.update({r.id: r.original_id for r in rows})
        for original in missing:
            from verifier.images import load_image

            data = blob_reader(original)
            _, img = load_image(data, max_bytes=len(data) + 1, max_pixels=original.width * original.height + 1)
            vector = self.embed(img)
            with self.db.session() as session:
                emb = self.stage(session, original.id, vector)
            self.commit_added(emb, vector)
        log.info("search index: %d vectors of %s (%d embedded at start-up)", len(self.index), model_id, len(missing))
        return len(self.index)

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
        return SearchOutcome(self.method, candidates, match, self.calibration.threshold)
