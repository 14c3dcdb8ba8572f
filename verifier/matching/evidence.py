"""What matching found for one query, stage by stage: the typed hand-over from matching to
verification (which turns it into a report) and to the benchmark (which scores it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from verifier.matching.marks import FoundMark
from verifier.simprov.change import ChangeResult
from verifier.simprov.channels import ChannelSplit
from verifier.simprov.compare import PixelComparison
from verifier.simprov.rerank import Stage2Result
from verifier.storage.models import Original


@dataclass(frozen=True)
class Candidate:
    original_id: uuid.UUID
    score: float  # stage-1 similarity that ranks the candidates (fused region score, or the global cosine)
    cosine: float  # the global embedding's cosine (stage 2's input)


@dataclass(frozen=True)
class SearchOutcome:
    """Stage 1: the index's top-k for the query."""

    method: str
    candidates: list[Candidate]  # best first
    match: Candidate | None  # the top candidate when it clears the decision threshold
    threshold: float  # on `Candidate.score`
    query_vector: np.ndarray | None = None  # the global embedding of the query
    cosine_threshold: float | None = None  # the global model's calibrated threshold (stage 2's skip rules)
    query_regions: np.ndarray | None = None  # (R, D) the query's region vectors, when the region model runs
    voted: int = 0  # candidates that only the local-feature vote found (`matching.local`)
    supported: frozenset[uuid.UUID] = frozenset()  # originals with the vote's minimum, listed before it or not
    detail_votes: tuple[uuid.UUID, ...] = ()  # originals the detail features vote for, most votes first (`Matcher._detail_look`)

    def index_of(self, original_id: uuid.UUID) -> int | None:
        return next((i for i, c in enumerate(self.candidates) if c.original_id == original_id), None)


@dataclass(frozen=True)
class ModelInfo:
    role: str  # stage1-embedding, stage2-psen, stage2-reorderer, stage3-change
    model_id: str
    weights_sha256: str


@dataclass(frozen=True)
class Related:
    """Another registered original that the query matches as well as the chosen one."""

    original: Original
    relation: str  # duplicate | derived_from (it declares the match as its source) | source (the match declares it)
    score: float | None  # its stage-1 score for the query


@dataclass(frozen=True)
class Evidence:
    """`original` is the registered original the query derives from (None: no match):
    among originals the query matches equally well, the first registered (`related` lists
    the others); `exact` says it was found by its bytes. The stage fields are None where a stage did
    not run (stages 2-3 are off, the bytes matched exactly, or nothing was found)."""

    stage1: SearchOutcome
    original: Original | None
    original_bytes: bytes | None
    exact: bool
    stage2: Stage2Result | None = None
    pixel: PixelComparison | None = None  # baseline pixel check against the original
    change: ChangeResult | None = None  # stage 3
    timings_ms: dict[str, float] = field(default_factory=dict)
    related: list[Related] = field(default_factory=list)
    marks: list[FoundMark] = field(default_factory=list)  # publishers' marks on the query: not evidence
    channel_split: ChannelSplit | None = None  # the query's colour channels were shifted (and realigned before matching)
    stretch: tuple[float, float] | None = None  # the query matched stretched by (x, y): stages 1-3 read it so

    def stage12_indices(self) -> list[int]:
        """Indices into stage 1's candidates, best first after stage 2 (stage 1's order when it did
        not run), the match first: an earlier registration of the chosen content is the match
        (`Matcher._first_registration`). The report lists them so and the benchmark ranks by it."""
        cands = self.stage1.candidates
        n = len(cands)
        supported = [i for i, c in enumerate(cands) if c.original_id in self.stage1.supported]
        order = self.stage2.order(n, supported) if self.stage2 is not None else list(range(n))
        at = self.stage1.index_of(self.original.id) if self.original is not None else None
        if at is not None and order and order[0] != at:
            order.remove(at)
            order.insert(0, at)
        return order

    def stage12_order(self) -> list[uuid.UUID]:
        """Candidate originals best first after stage 2 (`stage12_indices`)."""
        return [self.stage1.candidates[i].original_id for i in self.stage12_indices()]
