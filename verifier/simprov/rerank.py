"""SImProv stage 2: pairwise same/different scores (PSEN) and the 101-way re-orderer.

Cost control. Each PSEN evaluation needs an alignment (~30 ms) and a PEN pass (~20 ms) on a
CPU, so it runs only on candidates that can matter (`select_for_psen`):
* at most `max_pairs` candidates, best stage-1 first: always the first `min_pairs`, and
  beyond them only those whose stage-1 cosine is within `floor_margin` of the stage-1
  threshold (far below it, a candidate was never a match in calibration);
* when stage 1 is decisive -- the top cosine is at least `decisive` and leads the second by
  `decisive_gap` -- only the top candidate is checked.
The re-orderer still sees all 100 candidates (the skipped ones by stage-1 cosine only).

Geometric screen. When stage 2 ends without a match that aligns, the first `screen` stage-1
candidates that PSEN skipped are checked by RANSAC alone (SIFT matches + homography, no
flow or warping: a few ms each); those with `screen_min_inliers` get PSEN, and the one with
the most inliers that PSEN calls the same image becomes the match (`Reranker.promote`). Why:
on the families benchmark, a transplanted subject's original sat at stage-1 ranks 3-30 with
20-200 inliers while every other candidate had <= 6, but the cosine rules never let PSEN see
it. The bar is twice the matcher's gate (8): searching 100 candidates instead of 3 gives chance
alignments more tries (a traffic light took a television's frame with 8 inliers). A lone fit is
the exception (`screen_lone_min_inliers`): when exactly one candidate of all those aligned or
screened reaches the gate's 8 inliers and the local-feature vote supports it (the matcher's
check), it goes to PSEN too. A piece of 10-15 % of an original pasted into another photo keeps
only 8-15 inliers at the 256-px working size; unrelated originals reach 8-11 by chance on ~1.5 %
of unregistered photos, but without the vote's support. All 100 rather
than 30: transplant IR@1 0.62 -> 0.73 with the same false matches on 1,300 unregistered photos,
for ~1 ms per extra candidate on queries without an aligned match (BENCHMARKS.md).
A strong fit is the other exception (`screen_strong_min_inliers`): the only candidate at the
screen's bar, aligned with 32 or more inliers, is promoted although PSEN calls the pair different
(PSEN learned our generator's pairs, not a subject cut into another scene; `Stage2Result.by_geometry`),
or with `screen_strong_supported_min_inliers` (8) when the local-feature vote supports it: a cut-out
subject keeps 9-31 inliers against its original, while unrelated lone fits of 8-11 had no vote
(BENCHMARKS.md, "A family nothing was tuned on: cut-out subjects"). When the screen finds nothing,
the same rule applies to the candidates stage 2 aligned itself (`Reranker.promote_aligned`).
`verifier bench` measures the accuracy this costs (`--compare-exhaustive`; the setting
`VERIFIER_STAGE2_EXHAUSTIVE` turns the rules off). The caller (`matching.Matcher`) fetches the
views and vectors of the selected candidates and hands them to `Reranker.rerank`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from verifier.simprov import catalog
from verifier.simprov.align import MIRROR_RETRY
from verifier.simprov.catalog import PSEN_ID, REORDER_ID
from verifier.simprov.device import place, to_numpy
from verifier.simprov.nn.pen import PSEN, Reorderer
from verifier.simprov.pairs import (
    AlignedPair,
    View,
    align_pair,
    colour_matched,
    pen_inputs,
)

LIST_SIZE = 100


@dataclass(frozen=True)
class Stage2Policy:
    max_pairs: int = 10
    min_pairs: int = 3
    floor_margin: float = 0.25
    decisive: float = 0.95
    decisive_gap: float = 0.10
    exhaustive: bool = False  # evaluate max_pairs candidates regardless of the rules above
    screen: int = 100  # stage-1 candidates checked by RANSAC when no match aligned (0: off)
    screen_min_inliers: int = 16  # what a screened candidate needs to be promoted (twice the gate's bar)
    screen_lone_min_inliers: int = 8  # ... or this many when no other candidate has as many and the vote supports it (0: off)
    screen_strong_min_inliers: int = 32  # a screened fit this strong, alone at the screen's bar, needs no PSEN "same" (0: off)
    screen_strong_supported_min_inliers: int = 8  # ... or this many when the local-feature vote supports it (0: no other bar)
    colour_min_inliers: int = 32  # a pair PSEN rejects with this many inliers is judged again colour-matched (0: off)
    colour_supported_min_inliers: int = 16  # ... or this many when the local-feature vote supports it (0: no other bar)
    inverted_candidates: int = 2  # the first this many candidates PSEN sees are also fitted tone-inverted (a negative; 0: off)
    closer: int = 3  # with no aligned match after the screen, these first stage-1 candidates and those the vote supports are fitted at CLOSER_SIDE px (0: off)
    closer_min_psen: float = 0.75  # what PSEN must give a pair the closer look aligned (not the screen's 0.5)


def select_for_psen(cosines: np.ndarray, threshold: float, policy: Stage2Policy) -> list[int]:
    """Indices (into the best-first candidate list) that PSEN evaluates."""
    n = min(len(cosines), policy.max_pairs)
    if policy.exhaustive:
        return list(range(n))
    if n == 0:
        return []
    second = cosines[1] if len(cosines) > 1 else -1.0
    if cosines[0] >= policy.decisive and cosines[0] - second >= policy.decisive_gap:
        return [0]
    return [i for i in range(n) if i < policy.min_pairs or cosines[i] >= threshold - policy.floor_margin]


def reorder_features(psen: np.ndarray, evaluated: np.ndarray, cosines: np.ndarray) -> torch.Tensor:
    """One list -> (1, LIST_SIZE, 6), padded with absent candidates (cosine -1, unevaluated)."""
    k = min(len(cosines), LIST_SIZE)
    p = np.zeros(LIST_SIZE, np.float32)
    e = np.zeros(LIST_SIZE, np.float32)
    c = np.full(LIST_SIZE, -1.0, np.float32)
    p[:k], e[:k], c[:k] = psen[:k], evaluated[:k], cosines[:k]
    return Reorderer.features(torch.from_numpy(p)[None], torch.from_numpy(e)[None], torch.from_numpy(c)[None])


@dataclass
class Stage2Result:
    choice: int | None  # index into the candidate list, None = "not in the registry"
    probability: float  # re-orderer's probability of its choice
    p_absent: float
    psen: dict[int, float]  # candidate index -> P(same image)
    pairs: dict[int, AlignedPair] = field(default_factory=dict)  # kept for stage 3
    probs: np.ndarray | None = None  # (LIST_SIZE + 1,) re-orderer probabilities
    gated: bool = False  # a choice withdrawn for want of geometric or stage-1 evidence (matching.Matcher)
    screened: dict[int, int] = field(default_factory=dict)  # candidate index -> RANSAC inliers (geometric screen)
    promoted: bool = False  # the choice came from the geometric screen, not the re-orderer
    by_geometry: bool = False  # ... on its inliers alone: PSEN called the pair different (a strong fit)
    closer: dict[int, int] = field(default_factory=dict)  # candidate index -> RANSAC inliers at the closer look (at the gate's bar)
    by_closer: bool = False  # the promoted choice was fitted by the closer look (`matching.Matcher._closer_look`)
    withdrawn: int | None = None  # the choice the gate withdrew (`gated`)

    def given(self, i: int) -> float:
        """What the re-orderer gave candidate `i` (a promoted choice keeps it as its probability)."""
        return float(self.probs[i]) if self.probs is not None else 0.0

    def order(self, n: int, supported: Iterable[int] = ()) -> list[int]:
        """Candidate indices best first (the ranking of stage 1+2 IR@k and of the report's
        candidates): the choice, then those PSEN calls the same image (by its probability), then
        those the local-feature vote supports (`supported`), then stage 1's order. Not the
        re-orderer's probabilities below its choice: it sees the global cosine, not the fused
        region score that orders stage 1, and when it finds nothing its favourite is no lead. On
        `train` pieces that no stage matched, the original came first for 1 of 110 by the
        re-orderer and 20 in this order (BENCHMARKS.md, "The report's candidates in stage 2's order")."""
        same = sorted((i for i, p in self.psen.items() if i < n and p >= 0.5), key=lambda i: -self.psen[i])
        voted = [i for i in sorted(set(supported)) if i < n and i not in same]
        lead = list(dict.fromkeys(([self.choice] if self.choice is not None and self.choice < n else []) + same + voted))
        led = set(lead)
        return lead + [i for i in range(n) if i not in led]


class Reranker:
    def __init__(self, psen: PSEN, reorderer: Reorderer, psen_sha256: str, reorder_sha256: str, policy: Stage2Policy | None = None) -> None:
        device = next(psen.parameters()).device
        self.psen = place(psen, device)
        self.reorderer = place(reorderer, device)
        self.policy = policy or Stage2Policy()
        self.psen_sha256 = psen_sha256
        self.reorder_sha256 = reorder_sha256
        self._lock = threading.Lock()

    @classmethod
    def packaged(cls, policy: Stage2Policy | None = None) -> Reranker | None:
        """The shipped PSEN and re-orderer (None when either is missing)."""
        p, r = catalog.spec(PSEN_ID), catalog.spec(REORDER_ID)
        if not (p.shipped and r.shipped):
            return None
        return cls(catalog.load(PSEN_ID), catalog.load(REORDER_ID), catalog.file_sha256(p.weights),  # type: ignore[arg-type]
                   catalog.file_sha256(r.weights), policy)

    @property
    def device(self) -> torch.device:
        return next(self.psen.parameters()).device

    def to(self, device: torch.device) -> Reranker:
        with self._lock:
            self.psen = place(self.psen, device)
            self.reorderer = place(self.reorderer, device)
        return self

    def with_policy(self, policy: Stage2Policy) -> Reranker:
        """The same networks under another policy (the benchmark's exhaustive comparison)."""
        return Reranker(self.psen, self.reorderer, self.psen_sha256, self.reorder_sha256, policy)

    def select(self, cosines: np.ndarray, threshold: float) -> list[int]:
        """Which candidates PSEN evaluates under this reranker's policy."""
        return select_for_psen(cosines, threshold, self.policy)

    def psen_scores(self, query: View, views: list[View], eq: np.ndarray, ecs: np.ndarray,
                    supported: Sequence[bool] | None = None,
                    fits: Sequence[tuple[np.ndarray, int]] | None = None) -> tuple[np.ndarray, list[AlignedPair]]:
        """PSEN's P(same image) for the query against each view, with the aligned pairs. Views
        come best stage-1 first; once one aligns well (MIRROR_RETRY inliers) the rest are not
        retried mirrored: an unrelated candidate's weak fit would otherwise cost another matching
        (~4 ms) on most manipulated queries, whose original has already aligned. The inverted tries
        (a negative) are made on the first `policy.inverted_candidates` only: stage 1 ranks a negative's
        original first or second (its embedding is not fooled by the inversion, SIFT is), and on
        every candidate they cost an unregistered query ~30 ms (BENCHMARKS.md, "Negatives").

        A pair PSEN rejects although it aligns with `policy.colour_min_inliers` is judged again
        with the query colour-matched to the candidate (`pairs.colour_matched`), the higher
        score standing: PSEN, trained on mild colour changes, called heavily filtered copies
        (posterised, solarised, duotone) of their aligned originals "different". Colour matching
        can fool it: on 750 unrelated top-5 pairs it turned 54 into "same" (all under 8 inliers),
        and at a bar of 16 it made one false match in 400 unregistered photos (smoke taken for a
        coffered dome through a chance fit of exactly 16 inliers). Hence twice the screen's bar:
        overriding PSEN takes more geometry than promoting past the re-orderer (BENCHMARKS.md,
        "Filtered copies"). A candidate the local-feature vote supports (`supported`, per view:
        the query's descriptors picked it out of the whole registry, which neither PSEN nor a
        pairwise RANSAC fit can say) is looked at again from `policy.colour_supported_min_inliers`,
        the screen's bar: on 400 unregistered photos no supported candidate that aligned with 8 or
        more inliers was one PSEN rejected (BENCHMARKS.md, "The colour look for a candidate the
        vote supports"). `fits`: per view, a homography found elsewhere (the closer look's, in these
        frames) in place of the aligner's own SIFT fit."""
        pairs: list[AlignedPair] = []
        aligned = False
        for k, v in enumerate(views):
            pairs.append(align_pair(query, v, retry=not aligned, invert=len(pairs) < self.policy.inverted_candidates,
                                    fit=fits[k] if fits is not None else None))
            aligned = aligned or pairs[-1].alignment.inliers >= MIRROR_RETRY
        if not pairs:
            return np.zeros(0, np.float32), []
        eq_t = torch.from_numpy(np.repeat(eq[None].astype(np.float32), len(pairs), 0))
        ec_t = torch.from_numpy(ecs.astype(np.float32))
        s = self._psen(pairs, eq_t, ec_t)
        bar, lower = self.policy.colour_min_inliers, self.policy.colour_supported_min_inliers
        bars = [min(bar, lower) if lower and supported is not None and supported[i] else bar for i in range(len(pairs))]
        again = [i for i, p in enumerate(pairs) if bar and s[i] < 0.5 and p.alignment.inliers >= bars[i]]
        if again:
            second = self._psen([colour_matched(pairs[i]) for i in again], eq_t[again], ec_t[again])
            s[again] = np.maximum(s[again], second)
        return s, pairs

    def _psen(self, pairs: list[AlignedPair], eq: torch.Tensor, ec: torch.Tensor) -> np.ndarray:
        q, c = pen_inputs(np.stack([p.query for p in pairs]), np.stack([p.valid for p in pairs]), np.stack([p.candidate for p in pairs]))
        inl = torch.tensor([p.alignment.inliers for p in pairs])
        d = self.device
        with self._lock, torch.inference_mode():
            return to_numpy(torch.sigmoid(self.psen(q.to(d), c.to(d), eq.to(d), ec.to(d), inl.to(d)))).copy()

    def reorder(self, psen: np.ndarray, evaluated: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        """(LIST_SIZE + 1,) probabilities; the last = not in the registry."""
        with self._lock, torch.inference_mode():
            logits = self.reorderer(reorder_features(psen, evaluated, cosines).to(self.device))[0]
        probs = to_numpy(torch.softmax(logits, 0))
        k = min(len(cosines), LIST_SIZE)
        probs[k:LIST_SIZE] = 0.0  # padding is never a choice
        return probs / probs.sum()

    def rerank(self, query: View, query_vector: np.ndarray, cosines: np.ndarray, chosen: list[int],
               views: list[View], vectors: np.ndarray, supported: Sequence[bool] | None = None) -> Stage2Result:
        """PSEN on the `chosen` candidates (from `select`), whose views and stage-1 vectors
        (N, D) the caller brings in the same order (and whether the vote supports each); then
        the re-orderer over all of them."""
        if len(views) != len(chosen) or len(vectors) != len(chosen):
            raise ValueError("one view and one vector per chosen candidate")
        scores, pairs = self.psen_scores(query, views, query_vector, vectors, supported)
        psen = np.zeros(len(cosines), np.float32)
        evaluated = np.zeros(len(cosines), np.float32)
        psen[chosen], evaluated[chosen] = scores, 1.0
        probs = self.reorder(psen, evaluated, cosines)
        best = int(np.argmax(probs))
        choice = None if best == LIST_SIZE else best
        return Stage2Result(choice, float(probs[best]), float(probs[LIST_SIZE]), dict(zip(chosen, map(float, scores))), dict(zip(chosen, pairs)), probs)

    def promote(self, result: Stage2Result, query: View, query_vector: np.ndarray, screened: dict[int, int],
                views: list[View], vectors: np.ndarray, min_inliers: int, supported: Sequence[bool] | None = None,
                others: Sequence[int] = (), fits: Sequence[tuple[np.ndarray, int]] | None = None) -> Stage2Result:
        """PSEN on the screened candidates that aligned (`views`, `vectors` in the order of
        `screened`'s keys), then the one with the most inliers that PSEN calls the same image
        (P >= 0.5) replaces a result without an aligned match. An alignment needs `min_inliers`
        on both passes (the cheap count and the full alignment), so the promoted match passes
        the matcher's geometry gate on its own evidence. `result` is returned, with the screen
        recorded, when none qualifies. `others`: the inlier counts of the candidates the screen
        did not pass on (rivals of a strong fit).

        `fits` (the closer look's homographies, one per screened candidate): the candidates were
        fitted there, not by the screen; they are recorded as `closer`, PSEN's "same" takes
        `policy.closer_min_psen`, and the vote's support does not lower a strong fit's bar (32
        inliers): at the closer look unrelated photos fitted with 8-15 inliers, PSEN giving them
        0.57-1.0, where the true originals of `train` pieces had 0.90-1.0 (BENCHMARKS.md, "A closer
        look")."""
        order = list(screened)
        if len(views) != len(order) or len(vectors) != len(order):
            raise ValueError("one view and one vector per screened candidate")
        scores, pairs = self.psen_scores(query, views, query_vector, vectors, supported, fits)
        psen = {**result.psen, **dict(zip(order, map(float, scores)))}
        aligned = {**result.pairs, **dict(zip(order, pairs))}
        same = self.policy.closer_min_psen if fits is not None else 0.5
        ok = [i for i, p in zip(order, pairs) if psen[i] >= same and p.alignment.inliers >= min_inliers]
        trusted = bool(supported and supported[0]) and fits is None
        strong = [] if ok else self._strong_fit(result, order, pairs, trusted, others)
        found = {"closer": screened} if fits is not None else {"screened": screened}
        if not ok and not strong:
            return replace(result, psen=psen, pairs=aligned, **found)  # type: ignore[arg-type]
        best = max(ok or strong, key=lambda i: (aligned[i].alignment.inliers, psen[i], -i))
        return replace(result, choice=best, probability=result.given(best), psen=psen, pairs=aligned,  # type: ignore[arg-type]
                       promoted=True, gated=False, by_geometry=not ok, by_closer=fits is not None, **found)

    def promote_aligned(self, result: Stage2Result, supported: Mapping[int, bool], screened: Mapping[int, int]) -> Stage2Result:
        """The strong-fit rule (`_strong_fit`) for a candidate stage 2 aligned itself, when the
        screen found nothing to promote: PSEN saw that pair and called it different. A cut-out
        subject whose original stage 1 ranked first (26 inliers, PSEN 0.31) was otherwise left
        "not registered" while a lower-ranked one was promoted. `supported`: whether the vote
        supports each candidate; `screened`: the screen's inlier counts, rivals like any other
        fit. At most one candidate can clear: each is the others' rival."""
        for i, pair in result.pairs.items():
            if result.psen.get(i, 0.0) < 0.5 and self._strong_fit(result, [i], [pair], supported.get(i, False), screened.values()):
                return replace(result, choice=i, probability=result.given(i), screened={j: n for j, n in screened.items() if n},
                               promoted=True, gated=False, by_geometry=True)
        return result

    def _strong_fit(self, result: Stage2Result, order: list[int], pairs: list[AlignedPair], supported: bool = False,
                    others: Iterable[int] = ()) -> list[int]:
        """The screened candidate whose full alignment has `screen_strong_min_inliers`, when it is
        the only candidate (screened, or aligned by stage 2) at the screen's bar: promoted although
        PSEN calls the pair different. PSEN learned our generator's pairs; a subject cut out of the
        original into another scene, or a tight crop zoomed back, keeps 40-50 inliers of one
        homography while PSEN gives it 0.45-0.47. Unrelated candidates reached 14 at most on 620
        queries without an aligned match (1,450 queries, 500 of them unregistered), the most being
        another shot of the same cat from the same sitting: hence the colour look's bar (32), not
        the screen's, to overrule PSEN (BENCHMARKS.md, "A strong fit").

        When the local-feature vote supports that candidate (`supported`: its descriptors picked
        it out of the whole registry, which a pairwise fit cannot say) it may instead clear
        `screen_strong_supported_min_inliers`, with no other candidate aligned at that bar (or at
        the screen's, if lower): the vote only adds answers, never removes one. `others`: inlier
        counts of more rivals (the screen's, for a candidate stage 2 aligned)."""
        if len(order) != 1:
            return []
        p, inliers = self.policy, pairs[0].alignment.inliers
        rivals = [q.alignment.inliers for i, q in result.pairs.items() if i not in order] + list(others)

        def clears(bar: int) -> bool:
            return bool(bar) and inliers >= bar and not any(n >= min(p.screen_min_inliers, bar) for n in rivals)

        lower = p.screen_strong_supported_min_inliers
        return order if clears(p.screen_strong_min_inliers) or (supported and clears(lower)) else []
