"""Provenance search behind one small interface: embed -> search -> compare.

The registry's originals are embedded at ingest (vectors kept in PostgreSQL, table
`embeddings`) and held in FAISS indexes that are rebuilt from the database at start-up, so
nothing registered is missing from search after a restart or a crash. Originals that
have no vector for a current model (registered under another model, or before a crash
between commit and embedding) are embedded during that catch-up.

Two models take part (`simprov.regions` says why):
* the global embedding (one vector per original): its cosine feeds stage 2 (PSEN and the
  re-orderer were trained on it);
* the region model (REGIONS vectors per original, one FAISS entry each): it finds the
  original of a large composite, a meme or a collage. The shortlist -- the best originals by
  any region hit, plus the global top-k -- is re-scored exactly with `fused_scores` from the
  stored region vectors, and that score orders the candidates and decides a stage-1 match.
Without the region model the global cosine does both, as before.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from index import VectorIndex
from verifier.matching.concurrent import Later
from verifier.matching.evidence import Candidate, SearchOutcome
from verifier.matching.held import HeldVectors
from verifier.simprov.catalog import Calibration
from verifier.simprov.embedding import Embedder
from verifier.simprov.regions import RegionEmbedder, fused_scores
from verifier.storage.embeddings import EmbeddingStore
from verifier.storage.models import Embedding, Original

log = logging.getLogger(__name__)

__all__ = ["Calibration", "Candidate", "HeldChanges", "ModelIndex", "ProvenanceSearch", "SearchOutcome", "Stage1Vectors"]

ImageOf = Callable[[Original], Image.Image]


class ModelIndex:
    """One model's vectors: the durable rows in PostgreSQL (one row per original, `per_row`
    vectors of `dim` floats) and the FAISS index of the single vectors, FAISS id = row id x
    ID_STRIDE + position in the row."""

    ID_STRIDE = 16
    SAVE_EVERY = 1000  # persist the index after this many additions, or 5 % of it (start-up reconciles anyway;
    # a save writes the whole index: 2.6 GB at 10M originals, so not every 1,000 of a backfill)

    def __init__(self, store: EmbeddingStore, model_id: str, dim: int, per_row: int, embed: Callable[[Image.Image], np.ndarray],
                 index_path: Path | None, ivf_threshold: int | None, nprobe: int, held_bytes: int = 0) -> None:
        if not 1 <= per_row <= self.ID_STRIDE:
            raise ValueError(f"per_row must be 1..{self.ID_STRIDE}")
        self.store, self.model_id, self.dim, self.per_row = store, model_id, dim, per_row
        self.embed = embed  # image -> (per_row * dim,) float32
        self.index_path = index_path
        kwargs = {"ivf_threshold": ivf_threshold} if ivf_threshold else {}
        self.index = VectorIndex(dim, nprobe=nprobe, **kwargs)
        self._owner: dict[int, uuid.UUID] = {}  # row id -> original id
        self._row_of: dict[uuid.UUID, int] = {}  # the reverse (one row per original and model)
        self._lock = threading.Lock()
        self.held_bytes = held_bytes  # the budget of `_held`, the stored vectors' copy in memory (`matching.held`)
        self._held = HeldVectors(self.row_dim, 0)  # off until `load`
        self._unsaved = 0
        self.version = 0  # bumped whenever the set of originals held changes (the vote index's cue to sync)
        self._changes: deque[tuple[int, uuid.UUID, bool]] = deque(maxlen=self.CHANGES_KEPT)  # (version, original, held)
        self._changes_from = 0  # the oldest version `changes_since` can answer from

    @property
    def row_dim(self) -> int:
        return self.per_row * self.dim

    def _faiss_ids(self, row_ids: np.ndarray) -> np.ndarray:
        return (row_ids.astype(np.int64)[:, None] * self.ID_STRIDE + np.arange(self.per_row)).reshape(-1)

    def _rows(self, ids: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
        """FAISS ids and single vectors of these rows (all when None)."""
        row_ids, rows = self.store.vectors(self.model_id, self.row_dim, ids)
        return self._faiss_ids(row_ids), rows.reshape(-1, self.dim)

    CHANGES_KEPT = 100_000  # originals added or removed that `changes_since` remembers

    TRAIN_VECTORS = 200_000  # an IVF-PQ build's training sample (`build_ivfpq`'s most)

    def _rebuild(self, owners: dict[int, uuid.UUID]) -> None:
        """A new index of every row in the database, read in batches: the training sample is a
        seeded choice of rows fetched by id, then every row streams through once."""
        rows = np.sort(np.fromiter(owners, np.int64, len(owners)))
        want = -(-self.TRAIN_VECTORS // self.per_row)
        held = HeldVectors(self.row_dim, self.held_bytes, len(rows))

        def sample() -> np.ndarray:
            pick = rows if len(rows) <= want else np.sort(np.random.default_rng(0).choice(rows, want, replace=False))
            return self._rows(pick.tolist())[1]

        batches = ((self._faiss_ids(ids), vectors.reshape(-1, self.dim))
                   for ids, vectors in held.filling(self.store.batches(self.model_id, self.row_dim)))
        self.index.build_streamed(len(rows) * self.per_row, sample, batches)
        with self._lock:
            self._held = held

    def _refill(self, rows: int) -> None:
        """Hold the stored vectors again (the index came from its file, so no build read them)."""
        held = HeldVectors(self.row_dim, self.held_bytes, rows)
        if held.on:
            for _ in held.filling(self.store.batches(self.model_id, self.row_dim)):
                pass
        with self._lock:
            self._held = held

    def load(self, image_of: ImageOf) -> int:
        """Bring the index up to date with the database (see the module docstring); the
        number of originals it holds."""
        owners = self.store.owners(self.model_id)
        missing = self.store.originals_without(self.model_id)
        with self._lock:
            self._owner = owners
            self._row_of = {oid: rid for rid, oid in owners.items()}
            self._replaced()
        meta = self.index.load(self.index_path) if self.index_path else None
        if meta is None or meta.get("model_id") != self.model_id or meta.get("per_row", 1) != self.per_row:
            self._rebuild(owners)
        else:
            held = self.index.ids()
            wanted = self._faiss_ids(np.fromiter(owners, np.int64, len(owners)))
            self.index.remove(held[~np.isin(held, wanted)])
            held_rows = set((held // self.ID_STRIDE).tolist())
            lacking = [i for i in owners if i not in held_rows]
            if lacking:
                self.index.add(*self._rows(lacking))
            self._refill(len(owners))
        for original in missing:
            vector = self.embed(image_of(original))
            self.commit_added(self.store.add(original.id, self.model_id, vector), vector)
        if self.index.needs_upgrade():
            self._rebuild(self.store.owners(self.model_id))
        self.save()
        log.info("search index: %d originals of %s, %s (%d embedded at start-up; vectors held in memory: %s)",
                 len(owners) + len(missing), self.model_id, self.index.kind, len(missing), self._held.on)
        return len(self._owner)

    def reset(self) -> None:
        """Forget the saved index file, so that the next `load` rebuilds it from the database."""
        if self.index_path is not None:
            for suffix in (".faiss", ".ids", ".json"):
                self.index_path.with_suffix(suffix).unlink(missing_ok=True)

    def save(self) -> None:
        if self.index_path is not None:
            self.index.save(self.index_path, {"model_id": self.model_id, "per_row": self.per_row})
            self._unsaved = 0

    def stage(self, session: Session, original_id: uuid.UUID, vector: np.ndarray) -> Embedding:
        return self.store.stage(session, original_id, self.model_id, vector)

    def commit_added(self, emb: Embedding, vector: np.ndarray) -> None:
        """After the transaction committed: make the vectors searchable."""
        self.index.add(self._faiss_ids(np.array([emb.id])), vector.reshape(self.per_row, self.dim))
        with self._lock:
            self._held.put(emb.id, vector)
            self._owner[emb.id] = emb.original_id
            self._row_of[emb.original_id] = emb.id
            self._unsaved += 1
            self._changed(emb.original_id, True)
            due = self._unsaved >= max(self.SAVE_EVERY, len(self._row_of) // 20)
        if due:
            self.save()

    @property
    def holds_vectors(self) -> bool:
        """Whether the stored vectors are held in memory (`matching.held`)."""
        with self._lock:
            return self._held.on

    def __len__(self) -> int:
        """Originals held."""
        with self._lock:
            return len(self._row_of)

    def originals(self) -> set[uuid.UUID]:
        with self._lock:
            return set(self._row_of)

    def _changed(self, original_id: uuid.UUID, held: bool) -> None:  # under self._lock
        self.version += 1
        if len(self._changes) == self._changes.maxlen:
            self._changes_from = self._changes[0][0]  # the oldest is about to be dropped
        self._changes.append((self.version, original_id, held))

    def _replaced(self) -> None:  # under self._lock: every original may have changed
        self.version += 1
        self._changes.clear()
        self._changes_from = self.version

    def changes_since(self, version: int) -> HeldChanges:
        """What changed in the originals held after `version`: each changed original and whether
        it is held now. Why not the set of all: at 10M originals, copying it and comparing it with
        the vote index's cost seconds on every vote after a registration. When the log does not
        reach back that far (a reload, or more than `CHANGES_KEPT` changes), every original held."""
        with self._lock:
            if version < self._changes_from or version > self.version:
                return HeldChanges(self.version, {}, everything=set(self._row_of))
            changed: dict[uuid.UUID, bool] = {}
            for seen, oid, held in reversed(self._changes):
                if seen <= version:
                    break
                changed.setdefault(oid, held)  # the latest change of each original
            return HeldChanges(self.version, changed)

    def holding(self, original_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Those of `original_ids` that have vectors here (a lookup each, no copy of the map)."""
        with self._lock:
            return [oid for oid in original_ids if oid in self._row_of]

    def adopt(self, rows: list[tuple[int, uuid.UUID]]) -> int:
        """Vectors another process added (embedding id, original id), from the database;
        those already held are skipped. How many were added."""
        with self._lock:
            new = [(rid, oid) for rid, oid in rows if rid not in self._owner]
        if not new:
            return 0
        ids, vectors = self._rows([rid for rid, _ in new])
        row_ids = ids[:: self.per_row] // self.ID_STRIDE  # the rows found, in the order of `vectors`
        found = set(row_ids.tolist())
        self.index.add(ids, vectors)
        with self._lock:
            for rid, vector in zip(row_ids.tolist(), vectors.reshape(-1, self.row_dim), strict=True):
                self._held.put(rid, vector)
            for rid, oid in new:
                if rid in found:  # gone again since (deleted): nothing to hold
                    old = self._row_of.get(oid)
                    if old is not None and old != rid:
                        self._owner.pop(old, None)
                        self._held.drop(old)
                    self._owner[rid] = oid
                    self._row_of[oid] = rid
                    self._changed(oid, True)
        return len(found)

    def reload(self) -> int:
        """Rebuild from the database's vectors (another process rebuilt the index): the new
        index is built aside and swapped in whole, so searches never see half of it."""
        owners = self.store.owners(self.model_id)
        self._rebuild(owners)
        with self._lock:
            self._owner = owners
            self._row_of = {oid: rid for rid, oid in owners.items()}
            self._replaced()
        return len(owners)

    def forget(self, original_id: uuid.UUID) -> None:
        with self._lock:
            row = self._row_of.pop(original_id, None)
            if row is not None:
                self._owner.pop(row, None)
                self._held.drop(row)
                self._changed(original_id, False)
        if row is not None:
            self.index.remove(self._faiss_ids(np.array([row])))

    def search(self, queries: np.ndarray, k: int) -> dict[uuid.UUID, float]:
        """queries (Q, dim): original -> best score over every query vector's top-k hits,
        in descending order of score."""
        hits = [hit for row in self.index.search_many(queries, k) for hit in row]
        best: dict[uuid.UUID, float] = {}
        with self._lock:
            for hit in hits:
                oid = self._owner.get(hit.id // self.ID_STRIDE)
                if oid is not None and hit.score > best.get(oid, -2.0):
                    best[oid] = hit.score
        return dict(sorted(best.items(), key=lambda kv: -kv[1]))

    def vectors_for(self, original_ids: list[uuid.UUID]) -> np.ndarray:
        """(N, per_row, dim) in the order asked (zeros where an original has none). From memory
        when they are held (`matching.held`; 0.2 ms instead of a database read of 25 ms for the
        region model's pool at 10,000 originals) or while the index is exact (it holds these very
        vectors); otherwise, or when an original is not held here (added by another process, not
        yet followed), from PostgreSQL."""
        with self._lock:
            rows = [self._row_of.get(oid) for oid in original_ids]
            held = self._held.get(rows)
        if held is not None:
            return held.reshape(len(original_ids), self.per_row, self.dim)
        if self.index.kind == "exact" and all(r is not None for r in rows):
            held = self.index.reconstruct(self._faiss_ids(np.array(rows, np.int64)))
            if held is not None:
                return held.reshape(len(original_ids), self.per_row, self.dim)
        flat = self.store.vectors_for(self.model_id, self.row_dim, original_ids)
        return flat.reshape(len(original_ids), self.per_row, self.dim)


@dataclass(frozen=True)
class HeldChanges:
    """`ModelIndex.changes_since`: the version it answers at, and either the originals that changed
    (original -> held now) or, when its log does not reach back, `everything` held."""

    version: int
    changed: dict[uuid.UUID, bool]
    everything: set[uuid.UUID] | None = None


@dataclass(frozen=True)
class Stage1Vectors:
    """What ingest computes before taking any lock: the global vector and, when the region
    model runs, the region vectors."""

    vector: np.ndarray  # (D,)
    regions: np.ndarray | None = None  # (R, D_r)


class ProvenanceSearch:
    def __init__(self, store: EmbeddingStore, embedder: Embedder, calibration: Calibration, top_k: int = 100,
                 index_path: Path | None = None, ivf_threshold: int | None = None, nprobe: int = 128,
                 regions: RegionEmbedder | None = None, regions_calibration: Calibration | None = None,
                 rescore: int = 1000, held_bytes: int = 0) -> None:
        if (regions is None) != (regions_calibration is None):
            raise ValueError("the region model needs its calibration")
        self.store = store
        self.embedder = embedder
        self.calibration = calibration
        self.top_k = top_k
        self.rescore = rescore
        self.main = ModelIndex(store, embedder.model_id, embedder.dim, 1, self._embed_global, index_path,
                               ivf_threshold, nprobe, held_bytes)
        self.region_embedder = regions
        self.regions_calibration = regions_calibration
        self.regions: ModelIndex | None = None
        if regions is not None:
            region_path = index_path.with_name(f"{regions.model_id}.faiss") if index_path else None
            self.regions = ModelIndex(store, regions.model_id, regions.dim, regions.regions, self._embed_regions,
                                      region_path, ivf_threshold, nprobe, held_bytes)

    @property
    def index(self) -> VectorIndex:
        """The global model's FAISS index."""
        return self.main.index

    @property
    def method(self) -> str:
        base = f"{self.embedder.model_id}+faiss-{self.index.kind}"
        return base if self.regions is None else f"{base}+{self.regions.model_id}+faiss-{self.regions.index.kind}"

    @property
    def decision_threshold(self) -> float:
        """On the candidates' `score` (the fused region score when the region model runs)."""
        return (self.regions_calibration or self.calibration).threshold

    def _indexes(self) -> list[ModelIndex]:
        return [self.main] if self.regions is None else [self.main, self.regions]

    def _embed_global(self, img: Image.Image) -> np.ndarray:
        return self.embedder.embed([img])[0]

    def _embed_regions(self, img: Image.Image) -> np.ndarray:
        assert self.region_embedder is not None
        return self.region_embedder.embed_regions([img])[0].reshape(-1)

    # -- lifecycle ------------------------------------------------------------------------

    def load(self, image_of: ImageOf) -> int:
        """Bring every index up to date with the database; the number of searchable originals."""
        return min(ix.load(image_of) for ix in self._indexes())

    def reset(self, reembed: bool = False) -> None:
        """Forget the saved index files (and with `reembed` the stored vectors), so that the
        next `load` rebuilds from the database."""
        for ix in self._indexes():
            if reembed:
                self.store.delete_model(ix.model_id)
            ix.reset()

    def save(self) -> None:
        for ix in self._indexes():
            ix.save()

    # -- write path (called by the registry inside its transaction) -----------------------

    def embed(self, img: Image.Image, parallel: bool = False) -> Stage1Vectors:
        """Both models' vectors of one image; with `parallel` the global one in a second thread."""
        if self.regions is None:
            return Stage1Vectors(self._embed_global(img))
        vector = Later(lambda: self._embed_global(img), parallel)
        regions = self._embed_regions(img)
        return Stage1Vectors(vector.result(), regions)

    def embed_many(self, images: list[Image.Image]) -> list[Stage1Vectors]:
        """`embed` for a batch (batch ingest), in forward passes of `micro_batch` images."""
        out: list[Stage1Vectors] = []
        step = self.micro_batch
        for k in range(0, len(images), step):
            chunk = images[k : k + step]
            vectors = self.embedder.embed(chunk)
            if self.region_embedder is None or self.regions is None:
                out.extend(Stage1Vectors(v) for v in vectors)
                continue
            regions = self.region_embedder.embed_regions(chunk)
            out.extend(Stage1Vectors(v, r.reshape(-1)) for v, r in zip(vectors, regions, strict=True))
        return out

    @property
    def micro_batch(self) -> int:
        """Images per forward pass in batch ingest: on CPU one at a time is fastest (measured on
        2 cores: global 20.6 ms/img alone vs 27.2 in 8s; regions 67 vs 113), on a GPU many."""
        return 64 if self.embedder.device.type == "cuda" else 1

    def stage(self, session: Session, original_id: uuid.UUID, vectors: Stage1Vectors) -> list[Embedding]:
        rows = [self.main.stage(session, original_id, vectors.vector)]
        if self.regions is not None and vectors.regions is not None:
            rows.append(self.regions.stage(session, original_id, vectors.regions))
        return rows

    def commit_added(self, rows: list[Embedding], vectors: Stage1Vectors) -> None:
        """After the transaction committed: make the vectors searchable."""
        self.main.commit_added(rows[0], vectors.vector)
        if self.regions is not None and vectors.regions is not None and len(rows) > 1:
            self.regions.commit_added(rows[1], vectors.regions)

    def state(self) -> dict[str, object]:
        """What /healthz reports of the search indexes."""
        out: dict[str, object] = {"originals": len(self.main), "kind": self.index.kind}
        if self.regions is not None:
            out["region_originals"] = len(self.regions)
        out["vectors_in_memory"] = all(ix.holds_vectors for ix in self._indexes())  # VERIFIER_VECTOR_CACHE_MB
        return out

    def indexed_originals(self) -> set[uuid.UUID]:
        """The originals that search can return now."""
        return self.main.originals()

    def indexed_changes_since(self, version: int) -> HeldChanges:
        """The global index's `changes_since` (what the local-feature vote follows)."""
        return self.main.changes_since(version)

    def forget(self, original_id: uuid.UUID) -> None:
        for ix in self._indexes():
            ix.forget(original_id)

    # -- read path ------------------------------------------------------------------------

    def follow(self, changes: list[tuple[str, uuid.UUID | None, int | None, str | None]]) -> dict[str, int]:
        """Apply the registry's change sequence (action, original id, embedding id, model id),
        as written by the database triggers: vectors other processes added, originals they
        deleted, a rebuild. Idempotent: this process's own changes come back too."""
        done = {"added": 0, "deleted": 0, "reloaded": 0}
        adds: dict[str, list[tuple[int, uuid.UUID]]] = {}
        for action, oid, emb_id, model_id in changes:
            if action == "add" and oid is not None and emb_id is not None and model_id is not None:
                adds.setdefault(model_id, []).append((emb_id, oid))
            elif action == "delete" and oid is not None:
                for model_id, rows in adds.items():  # an add earlier in the batch must not survive the delete
                    adds[model_id] = [(r, o) for r, o in rows if o != oid]
                self.forget(oid)
                done["deleted"] += 1
            elif action == "rebuild":
                adds.clear()
                for ix in self._indexes():
                    ix.reload()
                done["reloaded"] += 1
        for ix in self._indexes():
            done["added"] += ix.adopt(adds.get(ix.model_id, []))
        return done

    def might_match(self, vectors: Stage1Vectors) -> bool:
        """Whether stage 1 could call a match, from FAISS scores alone: the fused score is at
        most the best region pair's cosine, so below the threshold there is no need for the
        exact re-scoring (database reads, ~50 ms). The ingest duplicate check's gate. With
        IVF-PQ the FAISS scores are approximate, and so is this bound."""
        best = self.main.search(vectors.vector[None], 1)
        if best and next(iter(best.values())) >= self.calibration.threshold:
            return True
        if self.regions is None or vectors.regions is None or self.region_embedder is None:
            return False
        best = self.regions.search(vectors.regions.reshape(self.region_embedder.regions, -1), 1)
        return bool(best) and next(iter(best.values())) >= self.decision_threshold

    def search(self, img: Image.Image, vectors: Stage1Vectors | None = None, *, parallel: bool = False) -> SearchOutcome:
        """Stage 1 for `img`; `vectors` = its embeddings when already computed (ingest); `parallel`:
        the two embeddings at once (`matching.concurrent`; the matcher decides per request)."""
        if vectors is None:
            vectors = self.embed(img, parallel)
        elif self.regions is not None and vectors.regions is None:
            vectors = Stage1Vectors(vectors.vector, self._embed_regions(img))
        vector = vectors.vector
        cosines = self._global(vector, self.top_k)
        query_regions = None
        if self.regions is None:
            candidates = [Candidate(oid, s, s) for oid, s in cosines.items()]
        else:
            assert self.region_embedder is not None and vectors.regions is not None
            query_regions = vectors.regions.reshape(self.region_embedder.regions, -1)  # (R, D)
            candidates = self._search_regions(query_regions, vector, cosines)
        return self._outcome(candidates, vector, query_regions)

    def _outcome(self, candidates: list[Candidate], vector: np.ndarray, query_regions: np.ndarray | None, voted: int = 0) -> SearchOutcome:
        top = candidates[0] if candidates else None
        match = top if top is not None and top.score >= self.decision_threshold else None
        method = f"{self.method}+sift-votes" if voted else self.method  # the report names what found its candidates
        return SearchOutcome(method, candidates, match, self.decision_threshold, vector, self.calibration.threshold,
                             query_regions, voted)

    def include(self, outcome: SearchOutcome, original_ids: list[uuid.UUID]) -> SearchOutcome:
        """`outcome` with these originals among its candidates (the local-feature vote's finds),
        scored as stage 1 scores any candidate, in place of the lowest-scored ones: the list keeps
        its length and its best-first order, and the match is decided again."""
        assert outcome.query_vector is not None
        have = {c.original_id for c in outcome.candidates}
        new = [oid for oid in dict.fromkeys(original_ids) if oid not in have][: self.top_k]
        if not new:
            return outcome
        cosines = (self.vectors_for(new) @ outcome.query_vector).tolist()
        if self.regions is not None and outcome.query_regions is not None:
            scores = fused_scores(outcome.query_regions, self.regions.vectors_for(new)).tolist()
        else:
            scores = cosines
        added = [Candidate(oid, float(s), float(c)) for oid, s, c in zip(new, scores, cosines, strict=True)]
        kept = outcome.candidates[: max(0, self.top_k - len(added))]
        candidates = sorted([*kept, *added], key=lambda c: -c.score)
        return self._outcome(candidates, outcome.query_vector, outcome.query_regions, outcome.voted + len(added))

    def _global(self, vector: np.ndarray, k: int) -> dict[uuid.UUID, float]:
        """The global index's k nearest originals by cosine, best first. Once the index is IVF-PQ
        (above IVF_THRESHOLD vectors) its top `rescore` are re-scored with the stored float
        vectors and the best k kept: PQ's approximate inner products would otherwise order the
        candidates, decide a stage-1 match and feed stage 2. At 10M vectors re-scoring a 1,000
        shortlist brought top-100 recall vs exact from 0.978 to 0.990 and R@1 from 0.93 to 0.98
        (BENCHMARKS.md, "10M vectors"), for one database read of the shortlist's vectors
        (`verifier bench-store` measures it)."""
        if self.main.index.kind != "ivfpq":
            return self.main.search(vector[None], k)
        hits = self.main.search(vector[None], max(k, self.rescore))
        if not hits:
            return hits
        ids = list(hits)
        exact = (self.vectors_for(ids) @ vector).tolist()
        return dict(sorted(zip(ids, exact), key=lambda kv: -kv[1])[:k])

    def nearest(self, vector: np.ndarray, k: int) -> list[tuple[uuid.UUID, float]]:
        """The global index's k nearest originals to a given stage-1 vector (D,), by cosine,
        best first: a fingerprint lookup with no image (Soft Binding Resolution by value)."""
        vector = vector.astype(np.float32)
        return list(self._global(vector, k).items())

    def _search_regions(self, query: np.ndarray, vector: np.ndarray, cosines: dict[uuid.UUID, float]) -> list[Candidate]:
        """query: the query's region vectors (R, D)."""
        assert self.regions is not None
        by_region = self.regions.search(query, self.top_k)
        pool = self.regions.holding(list(dict.fromkeys([*list(by_region)[: self.top_k], *cosines])))
        fused = fused_scores(query, self.regions.vectors_for(pool))
        order = np.argsort(-fused, kind="stable")[: self.top_k]
        chosen = [pool[i] for i in order]
        lacking = [oid for oid in chosen if oid not in cosines]
        if lacking:
            cosines = {**cosines, **dict(zip(lacking, (self.vectors_for(lacking) @ vector).tolist()))}
        return [Candidate(pool[i], float(fused[i]), float(cosines[pool[i]])) for i in order]

    def vectors_for(self, original_ids: list[uuid.UUID]) -> np.ndarray:
        """Global stage-1 vectors of originals (N, D), in the order asked (PSEN's input)."""
        return self.main.vectors_for(original_ids)[:, 0]
