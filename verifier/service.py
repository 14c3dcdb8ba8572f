"""The running service: settings, database, registry, search and pipeline, opened and closed together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from verifier.change import ChangeDetector
from verifier.db import Database
from verifier.embedding import Embedder, get_embedder
from verifier.pipeline import VerificationPipeline
from verifier.registry import Registry
from verifier.report_keys import KeyRing
from verifier.rerank import Reranker, Stage2Policy
from verifier.search import Calibration, ProvenanceSearch
from verifier.settings import Settings
from verifier.views import CandidateViews

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    db: Database
    registry: Registry
    search: ProvenanceSearch
    keys: KeyRing
    pipeline: VerificationPipeline

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True, embedder: Embedder | None = None) -> Service:
        """Connect (starting the embedded PostgreSQL when no URL is set), migrate, and
        rebuild the search index from the database. `embedder` lets tests share one model."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.open(settings.database_url, settings.pg_dir)
        try:
            if migrate:
                db.upgrade()
            embedder = embedder or get_embedder(settings.embedding_model)
            search = ProvenanceSearch(
                db, embedder, Calibration.load(embedder.model_id), top_k=settings.search_top_k,
                index_path=settings.index_dir / f"{embedder.model_id}.faiss", nprobe=settings.index_nprobe,
            )
            views = CandidateViews(settings.views_dir, settings.views_cache_size)
            registry = Registry(settings, db, search, views)
            search.load(registry.original_bytes)
            keys = KeyRing(settings.keys_dir, settings.report_signing_key_file)
            keys.current()  # create the first key now, not inside a request
            pipeline = VerificationPipeline(settings, db, registry, search, keys, views, *_pairwise_stages(settings))
        except BaseException:
            db.close()
            raise
        return cls(settings=settings, db=db, registry=registry, search=search, keys=keys, pipeline=pipeline)

    def close(self) -> None:
        try:
            self.search.save()
        finally:
            self.db.close()


def _pairwise_stages(settings: Settings) -> tuple[Reranker | None, ChangeDetector | None]:
    """Stages 2-3 as shipped (None when disabled or their weights are absent)."""
    if not settings.pairwise_stages:
        return None, None
    policy = Stage2Policy(max_pairs=settings.stage2_max_pairs, exhaustive=settings.stage2_exhaustive)
    return Reranker.packaged(policy), ChangeDetector.packaged()
