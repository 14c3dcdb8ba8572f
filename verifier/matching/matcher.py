"""Find the registered original a query derives from, and how it differs: the SImProv stages
in the order the paper runs them, each fed what it needs.

exact bytes -> stage 1 (embedding + FAISS top-k) -> stage 2 (PSEN on the candidates that can
matter, re-orderer over all of them) -> stage 3 (benign or manipulated, and where) against
the chosen original. Without stages 2-3 the stage-1 threshold decides the match and the
baseline pixel check decides benign vs manipulated. The answer is an `Evidence`; turning it
into a verdict is verification's job.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
from PIL import Image

from verifier.errors import NotFound
from verifier.images import load_stored
from verifier.matching.evidence import Evidence, ModelInfo, SearchOutcome
from verifier.matching.search import ProvenanceSearch
from verifier.matching.views import CandidateViews
from verifier.simprov import catalog
from verifier.simprov.change import ChangeDetector, ChangeResult
from verifier.simprov.compare import compare_pixels
from verifier.simprov.pairs import View, align_pair
from verifier.simprov.rerank import Reranker, Stage2Result
from verifier.storage.models import Original
from verifier.storage.originals import OriginalStore


class Stopwatch:
    """Named laps in milliseconds, each from the end of the previous one."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._t) * 1000, 3)
        self._t = now

    def add(self, laps: dict[str, float]) -> None:
        """Laps timed elsewhere (e.g. by the matcher), up to now."""
        self.laps.update(laps)
        self._t = time.perf_counter()


class Matcher:
    def __init__(
        self,
        originals: OriginalStore,
        search: ProvenanceSearch,
        views: CandidateViews | None = None,
        reranker: Reranker | None = None,
        change: ChangeDetector | None = None,
    ) -> None:
        self.originals = originals
        self.search = search
        self.views = views
        # Stages 2-3 need all three (the views feed both); otherwise neither runs.
        self.reranker = reranker if (views and change) else None
        self.change = change if (views and reranker) else None

    @property
    def pairwise(self) -> bool:
        """Whether stages 2-3 run."""
        return self.reranker is not None and self.change is not None

    def models(self) -> list[ModelInfo]:
        """The networks behind an answer, with the exact weights (named in every report)."""
        embedder = self.search.embedder
        models = [ModelInfo("stage1-embedding", embedder.model_id, embedder.weights_sha256)]
        if self.search.region_embedder is not None:
            regions = self.search.region_embedder
            models.append(ModelInfo(catalog.spec(catalog.REGIONS_ID).role, regions.model_id, regions.weights_sha256))
        if self.reranker is not None and self.change is not None:
            shas = {catalog.PSEN_ID: self.reranker.psen_sha256, catalog.REORDER_ID: self.reranker.reorder_sha256,
                    catalog.CHANGE_ID: self.change.sha256}
            models += [ModelInfo(catalog.spec(model_id).role, model_id, sha) for model_id, sha in shas.items()]
        return models

    def match(self, image: Image.Image, sha256: str) -> Evidence:
        """`image` is the decoded query, `sha256` the digest of its exact bytes."""
        clock = Stopwatch()
        exact = self.originals.find_by_sha256(sha256)
        clock.lap("exact_lookup")
        outcome = self.search.search(image)
        clock.lap("stage1")
        stage2: Stage2Result | None = None
        query_view: View | None = None
        original: Original | None = exact
        if exact is None and self.reranker is not None and outcome.candidates:
            query_view = View.of(image)
            stage2 = self.rerank(query_view, outcome)
            clock.lap("stage2")
            if stage2.choice is not None:
                original = self._original(outcome.candidates[stage2.choice].original_id)
        elif exact is None and outcome.match:
            original = self._original(outcome.match.original_id)

        original_bytes = pixel = change = None
        if original is not None:
            original_bytes = self.originals.read_bytes(original)
            if exact is None:
                original_image = load_stored(original_bytes, original.width, original.height)
                pixel = compare_pixels(image, original_image)
                clock.lap("compare")
                if not pixel.identical and self.change is not None and query_view is not None and stage2 is not None:
                    change = self._stage3(image, query_view, original, original_image, outcome, stage2)
                    clock.lap("stage3")
        return Evidence(stage1=outcome, original=original, original_bytes=original_bytes, exact=exact is not None,
                        stage2=stage2, pixel=pixel, change=change, timings_ms=clock.laps)

    def rerank(self, query_view: View, outcome: SearchOutcome, reranker: Reranker | None = None) -> Stage2Result:
        """Stage 2 over stage 1's candidates: the views and vectors of the candidates that the
        policy selects are fetched here and handed to the reranker (`reranker` overrides the
        service's, e.g. the benchmark's exhaustive policy)."""
        r = reranker or self.reranker
        if r is None or outcome.query_vector is None:
            raise ValueError("stage 2 needs a reranker and the query's stage-1 vector")
        ids = [c.original_id for c in outcome.candidates]
        cosines = np.array([c.cosine for c in outcome.candidates], np.float32)
        threshold = outcome.cosine_threshold if outcome.cosine_threshold is not None else outcome.threshold
        chosen = r.select(cosines, threshold)
        views = [self.view(ids[i]) for i in chosen]
        vectors = self.search.vectors_for([ids[i] for i in chosen])
        return r.rerank(query_view, outcome.query_vector, cosines, chosen, views, vectors)

    def view(self, original_id: uuid.UUID) -> View:
        """An original's stage 2-3 view (working image + SIFT), from the cache or computed."""
        if self.views is None:
            raise ValueError("stages 2-3 are off: no candidate views")
        return self.views.get(original_id, lambda: self.originals.image(self.originals.get(original_id)))

    def _stage3(self, image: Image.Image, query_view: View, original: Original, original_image: Image.Image,
                outcome: SearchOutcome, stage2: Stage2Result) -> ChangeResult:
        assert self.change is not None and self.views is not None
        cand_view = self.views.get(original.id, lambda: original_image)
        index = outcome.index_of(original.id)
        pair = stage2.pairs.get(index) if index is not None else None
        if pair is None:  # the original was not among the pairs stage 2 aligned
            pair = align_pair(query_view, cand_view)
        return self.change.analyse(pair, query_view, cand_view, image.size)

    def _original(self, original_id: uuid.UUID) -> Original | None:
        try:
            return self.originals.get(original_id)
        except NotFound:  # deleted between search and lookup
            return None
