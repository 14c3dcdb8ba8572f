"""The running service: settings, database, registry, matching and verification, opened and
closed together. The one composition root: the only module that wires the roles to each
other (the registry reaches matching only through the `Indexer` given here)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from PIL import Image

from verifier.jobs import JobRunner
from verifier.matching.follower import BackgroundSync, RegistryFollower
from verifier.matching.indexer import SearchIndexer
from verifier.matching.local import LocalSearch
from verifier.matching.marks import SUGGESTIONS_JOB, MarkSet, suggestions_result
from verifier.matching.matcher import DETAIL_SYNC_CHUNK, Matcher
from verifier.matching.search import ImageOf, ProvenanceSearch, Stage1Vectors
from verifier.matching.views import CandidateViews
from verifier.registry import Registry
from verifier.reports.signing import KeyRing
from verifier.settings import Settings
from verifier.simprov import catalog
from verifier.simprov.catalog import Calibration
from verifier.simprov.change import ChangeDetector
from verifier.simprov.device import resolve as resolve_device
from verifier.simprov.embedding import Embedder, get_embedder
from verifier.simprov.regions import RegionEmbedder
from verifier.simprov.rerank import Reranker, Stage2Policy
from verifier.storage import Database
from verifier.storage.bindings import BindingStore
from verifier.storage.blobs import BlobStore
from verifier.storage.embeddings import EmbeddingStore
from verifier.storage.models import RegistryChange
from verifier.storage.originals import OriginalStore
from verifier.storage.reports import ReportStore
from verifier.verification.pipeline import VerificationPipeline
from verifier.verification.resolution import SoftBindingResolver

log = logging.getLogger(__name__)

# How long shutdown waits for a vote-index sync in progress (a rebuild takes minutes at 10,000 originals);
# past it the sync's work is dropped, and the next start catches up from the last saved index.
VOTES_STOP_S = 10.0


@dataclass
class Service:
    settings: Settings
    db: Database
    originals: OriginalStore
    registry: Registry
    search: ProvenanceSearch
    matcher: Matcher
    keys: KeyRing
    pipeline: VerificationPipeline
    resolver: SoftBindingResolver
    jobs: JobRunner
    follower: RegistryFollower | None = None
    votes: BackgroundSync | None = None  # the vote index's syncs, which the follower wakes

    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True, embedder: Embedder | None = None) -> Service:
        """Connect (starting the embedded PostgreSQL when no URL is set), migrate, and
        rebuild the search index from the database. `embedder` lets tests share one model."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.trust.context().close()  # a bad trust list or c2pa setting fails here, at start-up
        _ = settings.softbinding_algorithms  # and so does a bad soft-binding algorithm list
        db = Database.open(settings.database_url, settings.pg_dir)
        local: LocalSearch | None = None
        detail_local: LocalSearch | None = None
        try:
            if migrate:
                db.upgrade()
            device = resolve_device(settings.device)
            embedder = embedder or get_embedder(settings.embedding_model)
            if embedder.device != device:
                embedder.to(device)
            originals = OriginalStore(db, BlobStore(settings.blob_dir))
            regions = _region_model(settings)
            if regions is not None:
                regions.to(device)
            search = ProvenanceSearch(
                EmbeddingStore(db), embedder, Calibration.load(embedder.model_id), top_k=settings.search_top_k,
                index_path=settings.index_dir / f"{embedder.model_id}.faiss", nprobe=settings.index_nprobe,
                regions=regions, regions_calibration=Calibration.load(regions.model_id) if regions else None,
                rescore=settings.index_rescore, held_bytes=settings.vector_cache_mb * 2**20,
            )
            views = CandidateViews(settings.views_dir, settings.views_cache_size, settings.views_store,
                                   settings.local_detail_features if settings.local_votes else 0)
            reranker, change = _pairwise_stages(settings)
            lists = settings.local_lists_dir or settings.index_dir / "local-lists"
            # with the lists on disk, the state that refers to them lives beside them (one process per folder)
            local = LocalSearch(views, min_votes=settings.local_min_votes, codes=settings.local_codes,
                                path=(lists if settings.local_ondisk else settings.index_dir) / "local-sift.npz",
                                lists_dir=lists if settings.local_ondisk else None,
                                compact_at=settings.local_ondisk_compact) if settings.local_votes else None
            detail_lists = lists / "detail"
            detail_local = LocalSearch(views, min_votes=settings.local_min_votes, codes=settings.local_codes,
                                       path=(detail_lists if settings.local_ondisk else settings.index_dir) / "local-detail.npz",
                                       lists_dir=detail_lists if settings.local_ondisk else None,
                                       compact_at=settings.local_ondisk_compact, detail=True) \
                if local is not None and settings.local_detail_features else None
            marks = MarkSet(db, settings.marks_check_s, cache_dir=settings.index_dir / "marks")
            marks.current()  # the enrolled marks' models built now (~0.5 s each), not in the first request
            matcher = Matcher(originals, search, views, reranker.to(device) if reranker else None,
                              change.to(device) if change else None, min_inliers=settings.stage2_min_inliers, local=local,
                              detail_local=detail_local,
                              doubted_fit_inliers=settings.stage2_doubted_fit_inliers,
                              work_max_side=settings.work_max_side, parallel=settings.parallel_stages,
                              marks=marks, detail_share=settings.stage3_detail_share)
            registry = Registry(settings, originals, SearchIndexer(search, views, matcher))
            votes = BackgroundSync(partial(matcher.sync_votes, detail_limit=DETAIL_SYNC_CHUNK), "vote-sync") \
                if local is not None else None
            follower = RegistryFollower(db, search, views, settings.follow_interval_s,
                                        on_change=votes.poke if votes is not None else None,
                                        lagging=matcher.votes_behind if local is not None else None)
            after = follower.position()  # before loading: a change committed meanwhile is replayed, not lost
            search.load(working_images(originals, settings))
            for index in matcher.vote_indexes():  # loaded and caught up now, not inside the first request that needs it
                index.load()
            # from here on a vote applies only what changed since; the detail index takes the detail features on disk,
            # and leaves those to compute (a first start after they came: every large original's, ~0.15 s each) to
            # the background sync when there is one
            matcher.sync_votes(detail_stored=settings.follow_registry)
            for index in matcher.vote_indexes():
                index.save()
            keys = KeyRing(settings.keys_dir, settings.report_signing_key_file)
            keys.current()  # create the first key now, not inside a request
            pipeline = VerificationPipeline(settings, matcher, ReportStore(db), keys)
            resolver = SoftBindingResolver(settings, matcher, BindingStore(db))
            jobs = JobRunner(db, {SUGGESTIONS_JOB: partial(suggestions_result, originals, matcher.view)},
                             lease_s=settings.jobs_lease_s, nice=settings.jobs_nice)
        except BaseException:
            for index in (local, detail_local):
                if index is not None:
                    index.index.close()  # its lists folder, for the next attempt
            db.close()
            raise
        service = cls(settings=settings, db=db, originals=originals, registry=registry, search=search, matcher=matcher,
                      keys=keys, pipeline=pipeline, resolver=resolver, jobs=jobs)
        if settings.follow_registry:
            if votes is not None:
                service.votes = votes
                votes.start()
                votes.poke()  # the detail index's catch-up (`sync_votes`' `detail_limit`)
            service.follower = follower
            follower.start(after)
        return service

    def rebuild_search(self, *, reembed: bool = False) -> int:
        """Rebuild the search index from the database (recomputing the stored vectors with `reembed`) and tell
        every other process to rebuild theirs; the number of originals it holds."""
        self.search.reset(reembed=reembed)
        n = self.search.load(working_images(self.originals, self.settings))
        with self.db.session() as session:
            session.add(RegistryChange(action="rebuild"))
        return n

    def stop_following(self) -> None:
        """Stop following other processes' changes, and the vote-index syncs that follow them: the
        index then changes only through requests and explicit syncs (what some tests drive)."""
        if self.follower is not None:
            self.follower.stop()
            self.follower = None
        if self.votes is not None:
            self.votes.stop()
            self.votes = None

    def start_jobs(self) -> None:
        """Run queued jobs in this process (a serving process calls it; the CLI's commands do not)."""
        if self.settings.run_jobs:
            self.jobs.start()

    def close(self) -> None:
        self.jobs.stop()
        if self.follower is not None:
            self.follower.stop()
        idle = self.votes is None or self.votes.stop(timeout=VOTES_STOP_S)
        try:
            self.search.save()
            for index in self.matcher.vote_indexes():
                if idle:
                    index.close()
                else:  # saved now, its maps would name originals the index being built does not hold yet
                    log.warning("a vote-index build was still running at shutdown; the last saved index stays")
                    index.index.close()
        finally:
            self.db.close()


def working_images(originals: OriginalStore, settings: Settings) -> ImageOf:
    """Originals decoded as ingest embedded them (reduced to `work_max_side`): what any vector recomputed for the
    index must be computed from, or it would differ from the one stored at ingest."""
    return lambda o: originals.image(o, settings.work_max_side)


def stage1_preparer(settings: Settings) -> Callable[[Image.Image], Stage1Vectors]:
    """A new original's stage-1 vectors exactly as the service computes them, without a
    database: what bulk-ingest workers (Ray actors) run."""
    device = resolve_device(settings.device)
    embedder = get_embedder(settings.embedding_model).to(device)
    regions = _region_model(settings)
    if regions is not None:
        regions.to(device)

    def vectors(image: Image.Image) -> Stage1Vectors:
        region_vectors = regions.embed_regions([image])[0].reshape(-1) if regions is not None else None
        return Stage1Vectors(embedder.embed([image])[0], region_vectors)

    return vectors


def _region_model(settings: Settings) -> RegionEmbedder | None:
    """Stage 1's region model as shipped (None when disabled or absent)."""
    spec = catalog.spec(catalog.REGIONS_ID)
    if not settings.stage1_regions or not spec.shipped or not spec.calibration_file.exists():
        return None
    return RegionEmbedder(spec.weights)


def _pairwise_stages(settings: Settings) -> tuple[Reranker | None, ChangeDetector | None]:
    """Stages 2-3 as shipped (None when disabled or their weights are absent)."""
    if not settings.pairwise_stages:
        return None, None
    policy = Stage2Policy(max_pairs=settings.stage2_max_pairs, exhaustive=settings.stage2_exhaustive,
                          screen=settings.stage2_screen, screen_min_inliers=settings.stage2_screen_min_inliers,
                          screen_lone_min_inliers=settings.stage2_screen_lone_min_inliers,
                          screen_strong_min_inliers=settings.stage2_screen_strong_min_inliers,
                          screen_strong_supported_min_inliers=settings.stage2_screen_strong_supported_min_inliers,
                          colour_min_inliers=settings.stage2_colour_min_inliers,
                          colour_supported_min_inliers=settings.stage2_colour_supported_min_inliers,
                          inverted_candidates=settings.stage2_inverted_candidates, closer=settings.stage2_closer,
                          closer_min_psen=settings.stage2_closer_min_psen)
    return Reranker.packaged(policy), ChangeDetector.packaged(
        warp_threshold=settings.stage3_warp_threshold, colour_gain=settings.stage3_colour_gain,
        footprint_share=settings.stage3_footprint_share, recolour_share=settings.stage3_recolour_share)
