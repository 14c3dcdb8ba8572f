"""Find the registered original a query derives from, and how it differs: the SImProv stages
in the order the paper runs them, each fed what it needs.

exact bytes -> stage 1 (embedding + FAISS top-k) -> stage 2 (PSEN on the candidates that can
matter, re-orderer over all of them) -> first registration (of the originals the query matches
equally well, the earliest registered keeps the attribution) -> stage 3 (benign or
manipulated, and where) against the chosen original. Without stages 2-3 the stage-1 threshold decides the match and the
baseline pixel check decides benign vs manipulated. The answer is an `Evidence`; turning it
into a verdict is verification's job.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from verifier.errors import NotFound
from verifier.images import load_stored
from verifier.matching.concurrent import Later
from verifier.matching.evidence import Evidence, ModelInfo, Related, SearchOutcome
from verifier.matching.local import LocalSearch
from verifier.matching.marks import FoundMark, MarkSet
from verifier.matching.search import ProvenanceSearch, Stage1Vectors
from verifier.matching.views import CandidateViews, DetailNotKept
from verifier.simprov import catalog
from verifier.simprov.align import (
    CLOSER_SIDE,
    MIN_INLIERS,
    CloserFeatures,
    SiftFeatures,
    closer_counts,
    closer_features,
    closer_fit,
    degraded_features,
    screen_inliers,
)
from verifier.simprov.change import ChangeDetector, ChangeResult
from verifier.simprov.channels import ChannelSplit, channel_split, realigned
from verifier.simprov.compare import compare_pixels
from verifier.simprov.detail import detail_of, in_whole_frame
from verifier.simprov.pairs import WORK_SIDE, View, align_pair, reshaped_pair
from verifier.simprov.rerank import Reranker, Stage2Result
from verifier.storage.models import Original
from verifier.storage.originals import OriginalStore

log = logging.getLogger(__name__)

# PSEN's P(same image) from which another candidate counts as the same content.
SAME_CONTENT = 0.5
# Originals whose stage-1 scores for the query are this close look the same to it: the first
# registered of them is the match (a later duplicate cannot take over the attribution), while
# a derivative that the query is clearly closer to (e.g. a copy of a captioned version) wins.
TIE_MARGIN = 0.02
# ... and an earlier registration takes the match only when it also fits the query with at least
# this share of the choice's inliers: a copy of the same photo fits about as well, while another
# monarch butterfly, whose wings align with the chosen one's on ~22 points, fitted a print of the
# chosen photo on 25 against the choice's 181 ("The first registration fits the query too").
RIVAL_FIT_SHARE = 1 / 3
# An original whose kept frame is at least this long (twice the closer look's) is fitted at that
# frame when the gate withdrew it as the choice (`Matcher._detail_fit`).
DETAIL_FIT_SIDE = 2 * CLOSER_SIDE
DETAIL_LOOK = 2  # originals first by votes fitted at their kept frame (`_detail_look`)
# Originals a request adds to the local-feature index before voting (a view read each, ~2.5 ms);
# the background sync the follower wakes, outside requests, has no limit.
SYNC_PER_REQUEST = 64
# Originals the background sync adds to the detail features' index per wake: one whose detail file is missing
# (registered before they were kept) costs a decode and a SIFT (~0.15 s), so a first start after that upgrade
# catches up a chunk at a time, outside start-up and without holding back the views' index (`Service.open`).
DETAIL_SYNC_CHUNK = 64
# A query nothing matched is searched again stretched by these (x, y) factors (`Matcher._stretched`): SIFT
# does not match content squeezed 2:1 (a photo stretched to fit a frame, the tiles of a 1x2 pop-art print),
# and stage 1's embedding did not either; stretched back, the local-feature vote finds it. The stretched image
# is at most twice the work frame. Nothing is tried on an image under STRETCH_MIN_SIDE px across.
STRETCHES = ((2.0, 1.0), (1.0, 2.0))
STRETCH_MIN_SIDE = 32
# Stage 3 fits the chosen original again through the query stretched to its shape when the pair aligned on
# fewer inliers than this (`pairs.reshaped_pair`; the shapes must differ by RESHAPE_MIN): photos squeezed
# 2-3:1 into another frame fitted on 0-24 points, and the flow's residual read as a local warp.
RESHAPE_BELOW = 4 * MIN_INLIERS


@dataclasses.dataclass
class _Found:
    """What stages 1-2 found for one form of the query (as given, or stretched)."""

    outcome: SearchOutcome
    stage2: Stage2Result | None = None
    query_view: View | None = None
    marks: list[FoundMark] = dataclasses.field(default_factory=list)
    original: Original | None = None
    related: list[Related] = dataclasses.field(default_factory=list)


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
        min_inliers: int = 0,
        local: LocalSearch | None = None,
        detail_local: LocalSearch | None = None,
        doubted_fit_inliers: int = 0,
        work_max_side: int | None = None,
        parallel: bool = False,
        marks: MarkSet | None = None,
        detail_share: float = 0.0,
    ) -> None:
        self.originals = originals
        self.detail_share = detail_share  # stage 3 on a detail of a large original (`simprov.detail`; 0: off)
        self.marks = marks  # publishers' marks: a query's keypoints on them are not evidence
        self.parallel = parallel  # steps of a request at once when no other is in flight (`_steps_at_once`)
        self._in_flight = 0
        self._flight = threading.Lock()
        self.work_max_side = work_max_side  # originals are decoded as ingest reduced them (their views' frame)
        self.local = local if (views and reranker and change) else None  # its finds need stage 2 to judge them
        # the large originals' detail features vote in an index of their own (`_detail_look`)
        self.detail_local = detail_local if self.local is not None else None
        self.min_inliers = min_inliers
        self.doubted_fit_inliers = doubted_fit_inliers  # a fit under this many needs PSEN's "same" (0: off)
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

    @contextmanager
    def _steps_at_once(self) -> Iterator[bool]:
        """Whether this request runs its independent steps at once (`matching.concurrent`): the
        setting is on and no other verification is in flight. With every core busy serving
        requests, more threads only cost: 8 soak clients made 11 % fewer requests with them
        (BENCHMARKS.md, "Independent steps at once")."""
        with self._flight:
            alone = self._in_flight == 0
            self._in_flight += 1
        try:
            yield self.parallel and alone
        finally:
            with self._flight:
                self._in_flight -= 1

    def match(self, image: Image.Image, sha256: str) -> Evidence:
        """`image` is the decoded query, `sha256` the digest of its exact bytes."""
        with self._steps_at_once() as parallel:
            return self._match(image, sha256, parallel)

    def _match(self, image: Image.Image, sha256: str, parallel: bool) -> Evidence:
        clock = Stopwatch()
        exact = self.originals.find_by_sha256(sha256)
        clock.lap("exact_lookup")
        split = stretch = None
        if exact is None:
            image, split = _channels_aligned(image)
            clock.lap("channels")
        view = self._view_later(image, parallel and exact is None)
        try:
            outcome = self.search.search(image, parallel=parallel)
        finally:
            view.wait()
        clock.lap("stage1")
        if exact is not None:
            found = _Found(outcome, original=exact, related=[
                Related(o, _relation(o, exact), 1.0) for o in self.originals.all_by_sha256(sha256) if o.id != exact.id])
        else:
            found = self._stages2(outcome, view.result, parallel, clock)
            if found.original is None:
                again = self._stretched(image, parallel)
                clock.lap("stretched")
                if again is not None:
                    image, stretch, found = again
        outcome, stage2, query_view, marks, original, related = (
            found.outcome, found.stage2, found.query_view, found.marks, found.original, found.related)

        original_bytes = pixel = change = None
        if original is not None:
            original_bytes = self.originals.read_bytes(original)
            if exact is None:
                original_image = load_stored(original_bytes, original.width, original.height, self.work_max_side)
                # the baseline's pixel comparison beside stage 3, whose answer an identical copy (rare) drops
                pixel_job = Later(lambda: compare_pixels(image, original_image), parallel)
                if not parallel:
                    pixel_job.result()
                    clock.lap("compare")
                try:
                    if self.change is not None and query_view is not None and stage2 is not None \
                            and (parallel or not pixel_job.result().identical):
                        change = self._stage3(image, query_view, original, original_image, outcome, stage2)
                        clock.lap("stage3")
                finally:
                    pixel_job.wait()
                pixel = pixel_job.result()
                if parallel:
                    clock.lap("compare")  # the wait for what stage 3 did not cover
                if pixel.identical:
                    change = None
        return Evidence(stage1=outcome, original=original, original_bytes=original_bytes, exact=exact is not None,
                        stage2=stage2, pixel=pixel, change=change, timings_ms=clock.laps, related=related, marks=marks,
                        channel_split=split, stretch=stretch)

    def _stages2(self, outcome: SearchOutcome, view: Callable[[], tuple[View, list[FoundMark]]], parallel: bool,
                 clock: Stopwatch | None = None) -> _Found:
        """Stage 2 (with the local-feature vote) after stage 1's `outcome`, and the original it
        chooses; without stage 2, stage 1's match. `view`: the query's view and marks, on demand."""
        if self.reranker is not None and outcome.candidates:
            query_view, marks = view()
            outcome = self.with_votes(query_view, outcome)
            if clock is not None:
                clock.lap("stage1_votes")
            stage2 = self.rerank(query_view, outcome, parallel=parallel)
            if clock is not None:
                clock.lap("stage2")
            original, related = self._first_registration(outcome, stage2) if stage2.choice is not None else (None, [])
            return _Found(outcome, stage2, query_view, marks, original, related)
        original = self._original(outcome.match.original_id) if outcome.match else None
        return _Found(outcome, original=original)

    def _stretched(self, image: Image.Image, parallel: bool) -> tuple[Image.Image, tuple[float, float], _Found] | None:
        """A query nothing matched, searched again stretched 2x across, then 2x down (`STRETCHES`):
        the stretched image, its factors (x, y) and what stages 1-2 found with it; None when
        neither found an original. A stretch goes through stages 1-2 only when the local-feature
        vote of its working-size view names an original, as it did for every squeezed copy it found
        and for 2 of 200 stretches of unrelated photos (BENCHMARKS.md, "Squeezed copies"); otherwise
        it costs that view and its vote."""
        if self.local is None or self.reranker is None or min(image.size) < STRETCH_MIN_SIDE:
            return None
        self.sync_votes(wait=False, limit=SYNC_PER_REQUEST, detail=False)
        for fx, fy in STRETCHES:
            size = (image.width * fx, image.height * fy)
            if not self.local.tally(self.marked_view(_resized(image, size, WORK_SIDE))[0]):
                continue
            stretched = image.resize((round(size[0]), round(size[1])), Image.BICUBIC)
            view = self.marked_view(stretched)
            found = self._stages2(self.search.search(stretched, parallel=parallel), lambda v=view: v, parallel)
            if found.original is not None:
                return stretched, (stretched.width / image.width, stretched.height / image.height), found
        return None

    def resolve(self, image: Image.Image, sha256: str) -> list[tuple[uuid.UUID, float, bool]]:
        """Every registered original the query is a copy or an edit of: (id, probability,
        exact bytes), best first (Soft Binding Resolution by content). Exact bytes: 1.0. Then
        stages 1-2 at the product's operating point: the re-orderer's choice (its probability,
        or PSEN's if higher) and every candidate PSEN calls the same image (P >= 0.5). Without
        stage 2, the stage-1 match above its 1 %-false-match threshold, scaled to 0.5..1 above
        it. Only exact bytes are certain: a learned probability is capped at 0.99."""
        exact = {o.id for o in self.originals.all_by_sha256(sha256)}
        found: dict[uuid.UUID, float] = dict.fromkeys(exact, 1.0)
        image = _channels_aligned(image)[0]
        with self._steps_at_once() as parallel:
            view = self._view_later(image, parallel)
            try:
                outcome = self.search.search(image, parallel=parallel)
            finally:
                view.wait()

        def note(oid: uuid.UUID, p: float) -> None:
            if oid not in exact:
                found[oid] = max(found.get(oid, 0.0), min(0.99, float(p)))

        if self.reranker is not None and outcome.candidates:
            searched = self._stages2(outcome, view.result, parallel)
            if searched.original is None:
                again = self._stretched(image, parallel)
                searched = again[2] if again is not None else searched
            outcome, stage2 = searched.outcome, searched.stage2
            if stage2 is not None and stage2.choice is not None:
                for i, p in stage2.psen.items():
                    if p >= SAME_CONTENT or i == stage2.choice:
                        note(outcome.candidates[i].original_id, max(p, stage2.probability) if i == stage2.choice else p)
        elif outcome.match is not None:
            thr = outcome.threshold
            note(outcome.match.original_id, 0.5 + 0.5 * (outcome.match.score - thr) / max(1e-6, 1 - thr))
        return sorted(((oid, p, oid in exact) for oid, p in found.items()), key=lambda t: (not t[2], -t[1]))

    def query_view(self, image: Image.Image) -> View:
        """A query's view: enlarged to the originals' working size when smaller, so that a
        thumbnail's SIFT can vote and align (BENCHMARKS.md, "Edits shared again"), without its
        keypoints on publishers' marks."""
        return self.marked_view(image)[0]

    def marked_view(self, image: Image.Image, min_side: int = WORK_SIDE, closer: bool = True) -> tuple[View, list[FoundMark]]:
        """`query_view`, and the enrolled marks found on the query (`matching.marks`); `closer`:
        whether stage 2 may take a closer look at it (`_closer_look`)."""
        view = View.of(image, min_side=min_side, closer=closer)
        return self.marks.strip(view) if self.marks is not None else (view, [])

    def _view_later(self, image: Image.Image, parallel: bool) -> Later[tuple[View, list[FoundMark]]]:
        """The query's view (its SIFT: ~20 ms) for stage 2, begun beside stage 1 when `parallel`
        and stage 2 may run; otherwise made on first need."""
        return Later(lambda: self.marked_view(image), parallel and self.reranker is not None)

    def same_content(self, image: Image.Image, vectors: Stage1Vectors) -> list[uuid.UUID]:
        """Registered originals that a new original is a copy or an edit of, best first (the
        ingest duplicate check). Stages 1 (exact re-scoring) and 2 run only when stage 1 can
        call a match (either model at its 1 %-false-match threshold), so new content costs two
        FAISS searches. Measured with `verifier bench-ingest`: gating at the re-ranker's wider
        reach (threshold - 0.25) made ingest 47 % slower, the full stage-1 search on every
        original 39 %."""
        if not self.search.might_match(vectors):
            return []
        outcome = self.search.search(image, vectors)
        if not outcome.candidates:
            return []
        if self.reranker is None:
            return [outcome.match.original_id] if outcome.match else []
        top = outcome.candidates[0]
        cos_threshold = outcome.cosine_threshold if outcome.cosine_threshold is not None else outcome.threshold
        if top.score < outcome.threshold and top.cosine < cos_threshold:
            return []
        stage2 = self.rerank(self.marked_view(image, min_side=0, closer=False)[0], outcome)  # ingest as measured before the closer look
        if stage2.choice is None:
            return []
        # A refusal needs both to agree: the re-orderer found a match and PSEN calls it the same image.
        same = sorted((i for i, p in stage2.psen.items() if p >= SAME_CONTENT), key=lambda i: (i != stage2.choice, -stage2.psen[i]))
        return [outcome.candidates[i].original_id for i in same]

    def vote_indexes(self) -> list[LocalSearch]:
        """The local-feature indexes: the working views' and, when kept, the detail features'."""
        return [v for v in (self.local, self.detail_local) if v is not None]

    def sync_votes(self, *, wait: bool = True, limit: int | None = None, detail: bool = True,
                   detail_limit: int | None = None, detail_stored: bool = False) -> None:
        """Bring the local-feature indexes up to the originals search holds, from what changed since
        their last complete sync (the whole set only when search's log does not reach back).
        `detail`: the detail features' index too (not from a request: an original registered by
        another process a moment ago may not have its detail file yet, and computing it costs a
        decode and a SIFT; the background sync catches that index up). `detail_limit`: that index
        takes at most so many originals now (the background sync's chunk, `DETAIL_SYNC_CHUNK`: the
        rest at its next wake, `votes_behind` being true). `detail_stored`: that index takes only
        originals whose detail features are on disk (start-up's, when a background sync computes the
        rest: after the upgrade that brought them, every large original's, ~0.15 s each)."""
        if self.local is not None:
            self._sync_one(self.local, wait=wait, limit=limit)
        if detail and self.detail_local is not None:
            before = len(self.detail_local)
            self._sync_one(self.detail_local, wait=wait, limit=detail_limit, grow=True, stored_only=detail_stored)
            if detail_limit is not None and self.detail_local.synced != self.search.main.version:
                log.info("detail features' vote index: %d originals held, catching up (%d more now)",
                         len(self.detail_local), len(self.detail_local) - before)

    def _sync_one(self, local: LocalSearch, *, wait: bool, limit: int | None, grow: bool | None = None,
                  stored_only: bool = False) -> None:
        changes = self.search.indexed_changes_since(local.synced)
        known = changes.everything if changes.everything is not None else changes.changed
        if known or changes.everything is not None or changes.version != local.synced:
            local.sync(known, self.loader, wait=wait, limit=limit, version=changes.version, grow=grow,
                       stored_only=stored_only)

    def votes_behind(self) -> bool:
        """Whether search holds originals (or lost some) a vote index has not caught up with:
        the follower then wakes its sync, outside any request (`RegistryFollower`'s `lagging`, `BackgroundSync`)."""
        return any(self.search.main.version != local.synced for local in self.vote_indexes())

    def rebuild_votes(self) -> None:
        """The vote indexes caught up and built once from every original they hold (`LocalSearch.rebuild`)."""
        self.sync_votes()
        for local in self.vote_indexes():
            local.rebuild(self.loader)

    def with_votes(self, query_view: View, outcome: SearchOutcome) -> SearchOutcome:
        """Stage 1 plus the local-feature vote (`matching.local`) when stage 1 has no match: the
        originals the query's SIFT descriptors vote for join the candidates."""
        if self.local is None or outcome.match is not None:
            return outcome
        self.sync_votes(wait=False, limit=SYNC_PER_REQUEST, detail=False)
        supported = self.local.tally(query_view)
        listed = {c.original_id for c in outcome.candidates}
        found = self.local.additions(supported, listed)
        detail = self.detail_local.tally(query_view)[:DETAIL_LOOK] if self.detail_local is not None else []
        found += [oid for oid in detail if oid not in listed and oid not in found]  # for `_detail_look` alone
        voted = self.search.include(outcome, found) if found else outcome
        return dataclasses.replace(voted, supported=frozenset(supported), detail_votes=tuple(detail))

    def _first_registration(self, outcome: SearchOutcome, stage2: Stage2Result) -> tuple[Original | None, list[Related]]:
        """The re-orderer's choice, unless an earlier registration of the same content looks
        as close to the query (stage 1 within `TIE_MARGIN`, a fit with `RIVAL_FIT_SHARE` of the
        choice's inliers); the other same-content candidates as `related`.

        Same content is judged between the two originals, as ingest's duplicate check would
        (`_same_as_choice`), not by PSEN's word on the query alone: a candidate PSEN called the
        same as the query at 0.5-1.0, most with no fit of their own (another butterfly, a leaf for a
        wheel) had replaced a right choice as the "first registration" (15 queries of the families
        runs, all 15 another photo; BENCHMARKS.md, "The first registration of the same content")."""
        assert stage2.choice is not None
        rivals = [i for i, p in stage2.psen.items() if p >= SAME_CONTENT and i != stage2.choice]
        same = [stage2.choice, *self._same_as_choice(outcome, stage2.choice, rivals)]
        found = {i: o for i in same if (o := self._original(outcome.candidates[i].original_id)) is not None}
        if not found:
            return None, []
        score = {i: outcome.candidates[i].score for i in found}
        pool = [i for i in found if self._fits_as_well(stage2, i)] or list(found)
        best = max(score[i] for i in pool)
        close = [i for i in pool if score[i] >= best - TIE_MARGIN]
        chosen = min(close, key=lambda i: (found[i].created_at, -stage2.psen.get(i, 0.0), str(found[i].id)))
        match = found[chosen]
        related = [Related(found[i], _relation(found[i], match), round(score[i], 6)) for i in found if i != chosen]
        return match, sorted(related, key=lambda r: (r.original.created_at, str(r.original.id)))

    @staticmethod
    def _fits_as_well(stage2: Stage2Result, i: int) -> bool:
        """Whether candidate `i` fits the query with `RIVAL_FIT_SHARE` of the choice's inliers (the
        choice itself, and any rival when the choice was not aligned in stage 2, does)."""
        choice = stage2.pairs.get(stage2.choice) if stage2.choice is not None else None
        if i == stage2.choice or choice is None or choice.alignment.inliers < MIN_INLIERS:
            return True
        pair = stage2.pairs.get(i)
        return pair is not None and pair.alignment.inliers >= RIVAL_FIT_SHARE * choice.alignment.inliers

    def _same_as_choice(self, outcome: SearchOutcome, choice: int, rivals: list[int]) -> list[int]:
        """Of `rivals`, the candidates whose original is a copy of the chosen one: the chosen
        original's view as the query, each rival aligns with the gate's inliers and PSEN calls
        the pair the same image (the evidence a match needs). Rare (a right match with another
        candidate PSEN calls the same: ~2 % of the families' queries); ~50 ms each."""
        if not rivals or self.reranker is None:
            return []
        ids = [outcome.candidates[i].original_id for i in (choice, *rivals)]
        try:
            views = [self.view(oid) for oid in ids]
        except NotFound:  # deleted since the search
            return []
        vectors = self.search.vectors_for(ids)
        scores, pairs = self.reranker.psen_scores(views[0], views[1:], vectors[0], vectors[1:])
        bar = max(self.min_inliers, MIN_INLIERS)
        return [i for i, s, pair in zip(rivals, scores, pairs, strict=True) if s >= SAME_CONTENT and pair.alignment.inliers >= bar]

    def rerank(self, query_view: View, outcome: SearchOutcome, reranker: Reranker | None = None,
               parallel: bool = False) -> Stage2Result:
        """Stage 2 over stage 1's candidates: the views and vectors of the candidates that the
        policy selects are fetched here and handed to the reranker (`reranker` overrides the
        service's, e.g. the benchmark's exhaustive policy; `parallel`: the closer look may use a
        second thread, `_steps_at_once`)."""
        r = reranker or self.reranker
        if r is None or outcome.query_vector is None:
            raise ValueError("stage 2 needs a reranker and the query's stage-1 vector")
        ids = [c.original_id for c in outcome.candidates]
        cosines = np.array([c.cosine for c in outcome.candidates], np.float32)
        threshold = outcome.cosine_threshold if outcome.cosine_threshold is not None else outcome.threshold
        chosen = r.select(cosines, threshold)
        views = [self.view(ids[i]) for i in chosen]
        vectors = self.search.vectors_for([ids[i] for i in chosen])
        supported = [ids[i] in outcome.supported for i in chosen]
        result = self._geometry_gate(r.rerank(query_view, outcome.query_vector, cosines, chosen, views, vectors, supported), outcome)
        if r.policy.screen and not self._aligned(result):
            result = self._screen(r, query_view, outcome, result)
        if r.policy.closer and not self._aligned(result):
            result = self._closer_look(r, query_view, outcome, result, parallel)
        if result.choice is None and outcome.detail_votes:
            result = self._detail_look(r, query_view, outcome, result)
        if self.detail_share > 0 and result.choice is None and result.withdrawn is not None:
            result = self._detail_fit(r, query_view, outcome, result)
        return result

    def _aligned(self, result: Stage2Result) -> bool:
        pair = result.pairs.get(result.choice) if result.choice is not None else None
        return pair is not None and pair.alignment.inliers >= self.min_inliers

    def _screen(self, r: Reranker, query_view: View, outcome: SearchOutcome, result: Stage2Result) -> Stage2Result:
        """The geometric screen (`simprov.rerank`): RANSAC on the first `policy.screen`
        candidates PSEN did not see; those with `policy.screen_min_inliers` (at least the
        gate's) go to PSEN and may be promoted. Failing those, a lone fit: when exactly one
        candidate, screened or aligned, reaches `policy.screen_lone_min_inliers` (at least the
        gate's) and the local-feature vote supports it (`SearchOutcome.supported`), it goes to
        PSEN with that bar. On 400 unregistered photos, six unrelated originals were such lone
        fits (8-11 inliers), none with a single vote; the seven true originals had 6-11. The one
        screened candidate with `policy.screen_strong_min_inliers` (or, supported by the vote,
        `policy.screen_strong_supported_min_inliers`) needs no PSEN "same" (`Reranker.promote`'s
        strong fit)."""
        assert outcome.query_vector is not None
        bar = max(r.policy.screen_min_inliers, self.min_inliers)
        lone = max(r.policy.screen_lone_min_inliers, self.min_inliers) if r.policy.screen_lone_min_inliers else bar
        ids = [c.original_id for c in outcome.candidates]
        todo: list[int] = []
        feats: list[tuple[SiftFeatures, tuple[int, ...]]] = []
        for i in range(min(r.policy.screen, len(ids))):
            if i in result.pairs:
                continue
            try:
                feats.append(self.views.features(ids[i], self.loader(ids[i])))  # type: ignore[union-attr]
            except NotFound:  # deleted since the search
                continue
            todo.append(i)
        # Counting fits below the bar (RANSAC on more candidates, the mirrored pass on weak fits)
        # only pays where a lone fit could be promoted: some screened candidate has the vote's support.
        floor = min(bar, lone) if any(ids[i] in outcome.supported for i in todo) else bar
        strong = r.policy.screen_strong_supported_min_inliers
        if strong and any(ids[i] in outcome.supported and p.alignment.inliers >= strong for i, p in result.pairs.items()):
            floor = min(floor, max(strong, self.min_inliers))  # the rivals of a supported strong fit count from its bar
        counts = screen_inliers(query_view.features, query_view.image.shape, feats, floor)
        rest = [j for j, n in enumerate(counts) if n < bar]
        if rest:  # a mirrored copy aligns only with the mirrored query's features (as in the aligner)
            mirrored = screen_inliers(query_view.mirrored_features(), query_view.image.shape, [feats[j] for j in rest], floor)
            for j, n in zip(rest, mirrored, strict=True):
                counts[j] = max(counts[j], n)
        screened = {i: n for i, n in zip(todo, counts, strict=True) if n >= bar}
        min_inliers = bar
        if not screened and lone < bar:
            fits = {i: n for i, n in zip(todo, counts, strict=True) if n >= lone}
            aligned_elsewhere = any(p.alignment.inliers >= lone for p in result.pairs.values())
            if len(fits) == 1 and not aligned_elsewhere and ids[next(iter(fits))] in outcome.supported:
                screened, min_inliers = fits, lone
        if not screened:  # a fit stage 2 aligned itself may still be the strong one
            return r.promote_aligned(result, {i: ids[i] in outcome.supported for i in result.pairs},
                                     dict(zip(todo, counts, strict=True)))
        views = [self.view(ids[i]) for i in screened]
        vectors = self.search.vectors_for([ids[i] for i in screened])
        return r.promote(result, query_view, outcome.query_vector, screened, views, vectors, min_inliers,
                         [ids[i] in outcome.supported for i in screened],
                         [n for i, n in zip(todo, counts, strict=True) if i not in screened])

    def _closer_look(self, r: Reranker, query_view: View, outcome: SearchOutcome, result: Stage2Result,
                     parallel: bool = False) -> Stage2Result:
        """With no aligned match after the screen: the first `policy.closer` stage-1 candidates and
        those the local-feature vote supports are fitted again at CLOSER_SIDE px (`align.closer_fit`),
        where a subject cut out of its photo, a small pasted piece or a printed copy keeps the
        keypoints the 256-px working frame loses. The one candidate that fits there with the gate's
        inliers, alone, goes to PSEN aligned by that fit and is promoted when PSEN gives it
        `policy.closer_min_psen`, or as a strong fit of 32 without the vote's discount
        (`Reranker.promote`). Chosen on `train` pieces (BENCHMARKS.md, "A closer look"): among the
        first 10 and the supported, 19 true originals fitted alone (PSEN 0.90-1.0) and one unrelated
        photo (0.57); on the families runs unrelated fits reached PSEN 1.0 on second photographs of
        a scene, so the set is the first 3 and the supported, where the cost stays near 100 ms: a
        decode and a SIFT per candidate, half of them on the other core when `parallel`, on
        queries without a match only. A query smaller than the working frame is not enlarged at
        384 px either; where none of those candidates fits it there, their working views are fitted
        brought down to the query's own resolution (`align.degraded_features`: the query's blur
        given to the original), with the same rule ("A very small copy fitted at its own
        resolution")."""
        if query_view.closer_source is None:
            return result
        bar = self.min_inliers or MIN_INLIERS
        ids = [c.original_id for c in outcome.candidates]
        first = min(r.policy.closer, len(ids))
        picks = list(range(first)) + [i for i in range(first, len(ids)) if ids[i] in outcome.supported]

        loading = _halved(picks, lambda i: self._closer_features(ids[i]), parallel)
        closer = query_view.closer()
        found = loading.result()
        assert closer is not None
        todo, feats = [i for i, _ in found], [f for _, f in found]
        fits = {i: n for i, n in zip(todo, closer_counts(closer, feats, bar), strict=True) if n >= bar}
        side = max(query_view.full_size)
        if not fits and side < WORK_SIDE:  # a resize and a SIFT at 256 px a candidate, ~9 ms each alone
            degrading = _halved(picks, lambda i: degraded_features(self.view(ids[i]).image, side), parallel)
            closer = CloserFeatures(query_view.features, query_view.image.shape, query_view.mirrored_features())
            found = degrading.result()
            todo, feats = [i for i, _ in found], [f for _, f in found]
            fits = {i: n for i, n in zip(todo, closer_counts(closer, feats, bar), strict=True) if n >= bar}
        if len(fits) != 1:
            return dataclasses.replace(result, closer=fits)
        i = next(iter(fits))
        return self._promote_fitted(r, query_view, outcome, result, i, closer, feats[todo.index(i)], bar)

    def _promote_fitted(self, r: Reranker, query_view: View, outcome: SearchOutcome, result: Stage2Result, i: int,
                        closer: CloserFeatures, feats: CloserFeatures, bar: int) -> Stage2Result:
        """Candidate `i`, fitted to the query's `closer` features by its `feats` at some finer scale,
        to PSEN aligned by that fit and promoted by the closer look's rule (`Reranker.promote`)."""
        oid = outcome.candidates[i].original_id
        view = self.view(oid)
        fit = closer_fit(closer, feats, query_view.image.shape, view.image.shape)
        return r.promote(result, query_view, outcome.query_vector, {i: fit[1]}, [view],  # type: ignore[arg-type]
                         self.search.vectors_for([oid]), bar, [oid in outcome.supported], fits=[fit])

    def _detail_look(self, r: Reranker, query_view: View, outcome: SearchOutcome, result: Stage2Result) -> Stage2Result:
        """With no match yet: the first `DETAIL_LOOK` originals by the vote of the detail features
        (`CandidateViews.detail`: the SIFT of a large original's kept frame, in an index of their
        own) are fitted against the query's closer look there, and the one that fits alone with
        the gate's inliers is promoted by the closer look's rule. A crop of a fifth of a large
        photo is a few dozen pixels of the working view and of the closer look's 384 px, and ~200
        px of the kept frame (BENCHMARKS.md, "Details of a large original"). Stored features: one
        RANSAC a candidate, no decode."""
        if query_view.closer_source is None:
            return result
        assert self.views is not None
        found: list[tuple[int, CloserFeatures]] = []
        for oid in outcome.detail_votes[:DETAIL_LOOK]:
            i = outcome.index_of(oid)
            try:
                detail = self.views.detail(oid, self.loader(oid)) if i is not None else None
            except NotFound:  # deleted since the search
                continue
            if i is not None and detail is not None:
                found.append((i, detail))
        if not found:
            return result
        closer = query_view.closer()
        assert closer is not None
        bar = self.min_inliers or MIN_INLIERS
        counts = closer_counts(closer, [d for _, d in found], bar)
        fits = [(i, d) for (i, d), n in zip(found, counts, strict=True) if n >= bar]
        if len(fits) != 1:
            return result
        i, detail = fits[0]
        return self._promote_fitted(r, query_view, outcome, result, i, closer, detail, bar)

    def _detail_fit(self, r: Reranker, query_view: View, outcome: SearchOutcome, result: Stage2Result) -> Stage2Result:
        """The choice the gate withdrew, fitted again against its original at the frame ingest kept
        (`work_max_side`), when that original is large and PSEN gave the pair the closer look's
        "same": a detail cropped from a 12 MP photo is a box of the 256-px working view a few dozen
        pixels wide and of the closer look's 384 px little more, and kept 0-7 inliers there while
        the re-orderer chose its original and PSEN called it the same (BENCHMARKS.md, "Crops of a
        large original"). Its stored detail features when kept (one RANSAC), else one decode and one
        SIFT (~100 ms), for such a query only; it is promoted by the closer look's rule."""
        i = result.withdrawn
        assert i is not None
        if query_view.closer_source is None or result.psen.get(i, 0.0) < r.policy.closer_min_psen:
            return result
        original = self._original(outcome.candidates[i].original_id)
        if original is None or max(original.width, original.height) < DETAIL_FIT_SIDE:
            return result
        feats = self._kept_frame_features(original)
        if feats is None:
            return result
        closer = query_view.closer()
        assert closer is not None
        bar = self.min_inliers or MIN_INLIERS
        if closer_counts(closer, [feats], bar)[0] < bar:
            return result
        return self._promote_fitted(r, query_view, outcome, result, i, closer, feats, bar)

    def _kept_frame_features(self, original: Original) -> CloserFeatures | None:
        """SIFT of the frame ingest kept, when at least `DETAIL_FIT_SIDE`: its stored detail
        features (`CandidateViews.detail`, no decode) or, without them, computed (~100 ms); None
        when the original was deleted since the search."""
        try:
            if self.views is not None:
                try:
                    stored = self.views.detail(original.id, self.loader(original.id), compute=False)
                except DetailNotKept:
                    stored = None
                if stored is not None:
                    return stored
            image = self.originals.image(original, self.work_max_side)
        except NotFound:
            return None
        return closer_features(image, max(image.size)) if max(image.size) >= DETAIL_FIT_SIDE else None

    def _closer_features(self, original_id: uuid.UUID) -> CloserFeatures:
        """An original's SIFT at the closer look's size, from its stored bytes (a JPEG decoded at a
        reduced DCT scale: a few ms even for 12 MP)."""
        return closer_features(self.originals.image(self.originals.get(original_id), CLOSER_SIDE))

    def _geometry_gate(self, result: Stage2Result, outcome: SearchOutcome) -> Stage2Result:
        """A stage-2 match needs evidence beyond the re-orderer's say-so: RANSAC inliers between
        the query and the chosen original (at least `min_inliers`), or, without an alignment,
        stage 1 at its own decision threshold *and* PSEN calling the pair the same image. On 400
        photos whose originals were deleted from the families registry, matches without inliers
        were a jellyfish taken for a notebook page, clouds for fish (PSEN fooled, stage 1 low) and
        a baseball, oranges, a hound for others of their kind (stage 1 high, PSEN saying
        "different", the re-orderer trusting stage 1). Without the evidence the answer is "not
        registered" (`gated`).

        A weak fit (under `doubted_fit_inliers`) that PSEN calls different stands only as a strong
        fit (`by_geometry`, the screen's rules): the re-orderer alone does not outweigh both. On
        400 registered photos deleted and queried, such a choice was a mantis taken for a katydid
        (8 inliers, PSEN 0.34, the re-orderer at 0.50); BENCHMARKS.md, "A weak fit PSEN doubts",
        has the measurement."""
        c = result.choice
        if c is None or not self.min_inliers:
            return result
        pair = result.pairs.get(c)
        inliers = pair.alignment.inliers if pair is not None else 0
        psen_same = result.psen.get(c, 0.0) >= SAME_CONTENT
        doubted = inliers < self.doubted_fit_inliers and not psen_same and not result.by_geometry
        aligned = inliers >= self.min_inliers and not doubted
        both_learned = outcome.candidates[c].score >= outcome.threshold and psen_same
        if aligned or both_learned:
            return result
        return dataclasses.replace(result, choice=None, gated=True, withdrawn=c)

    def view(self, original_id: uuid.UUID) -> View:
        """An original's stage 2-3 view (working image + SIFT), from the cache or computed."""
        if self.views is None:
            raise ValueError("stages 2-3 are off: no candidate views")
        return self.views.get(original_id, self.loader(original_id))

    def loader(self, original_id: uuid.UUID) -> Callable[[], Image.Image]:
        """How to load an original's image, for a view computed on demand."""
        return lambda: self.originals.image(self.originals.get(original_id), self.work_max_side)

    def _stage3(self, image: Image.Image, query_view: View, original: Original, original_image: Image.Image,
                outcome: SearchOutcome, stage2: Stage2Result) -> ChangeResult:
        assert self.change is not None and self.views is not None
        cand_view = self.views.get(original.id, lambda: original_image)
        index = outcome.index_of(original.id)
        pair = stage2.pairs.get(index) if index is not None else None
        if pair is None:  # the original was not among the pairs stage 2 aligned
            pair = align_pair(query_view, cand_view)
        if pair.alignment.inliers < RESHAPE_BELOW:  # a squeezed copy fits imprecisely as given
            reshaped = reshaped_pair(query_view, cand_view)
            if reshaped is not None and reshaped.alignment.inliers > pair.alignment.inliers:
                pair = reshaped
        detail = detail_of(pair, cand_view, self.detail_share) if self.detail_share > 0 else None
        if detail is not None and detail.full_size == original_image.size:
            # a detail of a large original: judged against that part at the scale the query shows it
            view = detail.view(original_image)
            closer = align_pair(query_view, view)
            if closer.alignment.inliers >= pair.alignment.inliers and detail.holds(closer, view):
                return in_whole_frame(self.change.analyse(closer, query_view, view, image.size), detail,
                                      cand_view.image.shape[:2])
        return self.change.analyse(pair, query_view, cand_view, image.size)

    def _original(self, original_id: uuid.UUID) -> Original | None:
        try:
            return self.originals.get(original_id)
        except NotFound:  # deleted between search and lookup
            return None


def _halved(picks: list[int], make: Callable[[int], CloserFeatures], parallel: bool) -> Later[list[tuple[int, CloserFeatures]]]:
    """`make(i)` for each of `picks`, in their order: half of them begun now on the other core when
    `parallel`, the rest run by `result()`; a candidate deleted since the search (NotFound) is left out."""

    def run(some: list[int]) -> list[tuple[int, CloserFeatures]]:
        out = []
        for i in some:
            try:
                out.append((i, make(i)))
            except NotFound:  # deleted since the search
                continue
        return out

    others = Later(lambda: run(picks[1::2]), parallel and len(picks) > 1)
    return Later(lambda: sorted(run(picks[0::2]) + others.result(), key=lambda t: t[0]), False)


def _resized(image: Image.Image, size: tuple[float, float], side: int) -> Image.Image:
    """`image` resized to `size` scaled to at most `side` on its long side, in one step: the vote's
    look at a stretch, ~20 ms where stretching a 1,024-px query in full and reducing it cost ~70."""
    f = min(1.0, side / max(size))
    return image.resize((max(1, round(size[0] * f)), max(1, round(size[1] * f))), Image.BICUBIC, reducing_gap=3.0)


def _channels_aligned(image: Image.Image) -> tuple[Image.Image, ChannelSplit | None]:
    """The query with a colour-channel split (a glitch or RGB-split filter) undone, and the
    split (None: none found, the image as given). Every stage then reads edges that lie once."""
    split = channel_split(image)
    return (image if split is None else realigned(image, split)), split


def _relation(other: Original, match: Original) -> str:
    if other.derived_from == match.id:
        return "derived_from"
    if match.derived_from == other.id:
        return "source"
    return "duplicate"
