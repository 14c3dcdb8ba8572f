"""Matching's side of publisher ingest: what makes a registered original findable.

`SearchIndexer` is the registry's `Indexer` (wired in `service.py`): the embedding is
computed before any lock, its row is written in the registration's transaction, and only
after the commit does the vector enter the FAISS index and the stage 2-3 view the cache.
Before all that, `same_content` runs the provenance search for the duplicate check.
"""

from __future__ import annotations

import logging
import uuid

from PIL import Image
from sqlalchemy.orm import Session

from verifier.matching.matcher import Matcher
from verifier.matching.search import ProvenanceSearch, Stage1Vectors
from verifier.matching.views import CandidateViews
from verifier.simprov.align import CloserFeatures
from verifier.simprov.pairs import View
from verifier.storage.models import Embedding

log = logging.getLogger(__name__)


class SearchIndexer:
    def __init__(self, search: ProvenanceSearch, views: CandidateViews | None = None, matcher: Matcher | None = None) -> None:
        self.search = search
        self.views = views
        self.matcher = matcher  # the duplicate check's provenance search (stages 1-2)

    def prepare(self, image: Image.Image) -> Stage1Vectors:
        return self.search.embed(image)

    def prepare_many(self, images: list[Image.Image]) -> list[Stage1Vectors]:
        return self.search.embed_many(images)

    def stage(self, session: Session, original_id: uuid.UUID, prepared: Stage1Vectors) -> tuple[list[Embedding], Stage1Vectors]:
        return self.search.stage(session, original_id, prepared), prepared

    def prepare_view(self, image: Image.Image) -> tuple[View, CloserFeatures | None] | None:
        """The view and, for a large original, its detail features (`CandidateViews.detail`)."""
        return (View.of(image), self.views.detail_of(image)) if self.views is not None else None

    def committed(self, original_id: uuid.UUID, image: Image.Image, staged: tuple[list[Embedding], Stage1Vectors],
                  view: tuple[View, CloserFeatures | None] | None = None) -> None:
        rows, vectors = staged
        self.search.commit_added(rows, vectors)
        if self.views is not None:
            try:
                self.views.put(original_id, image, view[0] if view is not None else None)
                if view is not None and view[1] is not None:
                    self.views.put_detail(original_id, view[1])
                elif view is None:  # a large original's, from its kept frame (`image`)
                    self.views.detail(original_id, lambda: image)
            except OSError as exc:  # derived data: recomputed on first use
                log.warning("could not cache the view of %s: %s", original_id, exc)

    def forget(self, original_id: uuid.UUID) -> None:
        self.search.forget(original_id)
        if self.views is not None:
            self.views.forget(original_id)

    def same_content(self, image: Image.Image, prepared: Stage1Vectors) -> list[uuid.UUID]:
        if self.matcher is None:
            return []
        return self.matcher.same_content(image, prepared)
