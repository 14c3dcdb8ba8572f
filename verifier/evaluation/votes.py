"""`verifier bench-votes`: which encoding of the local-feature index (`VERIFIER_LOCAL_CODES`) keeps
the vote's answers, at what memory (issue 16: at 8-bit scalar codes the index costs ~54 KB per
original, 54 GB at 1M).

Every registry image's descriptors are those the service indexes (the candidate view's SIFT,
uint8); every query votes as `LocalSearch.tally` does (its SIFT plus the mirrored query's, Lowe's
ratio across originals, at least `min_votes`). Per encoding: bytes per descriptor of the
serialized index (codes, ids, lists, coarse quantizer), build time, vote time, and per family how
often the true original is first by votes and how often it reaches `min_votes` at all; for
distinct queries (no registered original), how many get any original with `min_votes` (an
addition stage 2 must then reject). With `--ondisk`, each IVF again with its inverted lists in a
file, warm and read from disk (what the vote costs once the index outgrows RAM), and in the
service's on-disk layout (`VERIFIER_LOCAL_ONDISK`) after churn: a share of the originals removed
and registered again, so the file holds their tombstoned copies and the in-memory additions
the live ones, before and after a compaction.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from index import LocalFeatureIndex
from verifier.evaluation.queries import Query, decode, extra_images, read_queries
from verifier.fsutil import evict_from_page_cache
from verifier.matching.local import MIN_VOTES, voting_descriptors
from verifier.matching.matcher import SYNC_PER_REQUEST
from verifier.simprov.pairs import View

Voting = tuple[np.ndarray, np.ndarray]  # a query's descriptors (N, 128) and their groups (N,): `voting_descriptors`


def _timed_votes(index: LocalFeatureIndex, voting: list[Voting], ratio: float, expected: list[dict[int, int]],
                 before: Any = None) -> dict[str, Any]:
    """Vote time per query and how many queries vote otherwise than `expected`; `before(index)`
    runs before each vote, outside the timer."""
    ms: list[float] = []
    differ = 0
    for (d, groups), want in zip(voting, expected, strict=True):
        if before is not None:
            before(index)
        started = time.perf_counter()
        votes = index.vote(d, ratio, groups=groups)
        ms.append((time.perf_counter() - started) * 1000)
        differ += votes != want
    return {"vote_ms": {"p50": round(float(np.median(ms)), 1), "p95": round(float(np.percentile(ms, 95)), 1)},
            "queries_with_other_votes": differ}


def _score(index: LocalFeatureIndex, queries: list[Query], voting: list[Voting], key_of_path: dict[Path, int],
           min_votes: int, ratio: float) -> tuple[dict[str, Any], list[dict[int, int]]]:
    """Every query's vote: time, and per family how often the true original is first by votes and
    reaches `min_votes`; how many distinct queries get an addition. (figures, each query's votes)"""
    ms: list[float] = []
    tally: dict[str, dict[str, int]] = defaultdict(lambda: {"n": 0, "first": 0, "listed": 0})
    distinct_added = 0
    answers: list[dict[int, int]] = []
    for q, (d, groups) in zip(queries, voting, strict=True):
        started = time.perf_counter()
        votes = index.vote(d, ratio, groups=groups)
        ms.append((time.perf_counter() - started) * 1000)
        answers.append(votes)
        ranked = sorted(((n, key) for key, n in votes.items() if n >= min_votes), key=lambda t: (-t[0], t[1]))
        group = tally[q.family or q.kind]
        group["n"] += 1
        if q.original is None:
            distinct_added += bool(ranked)
            continue
        true = key_of_path.get(q.original)
        group["first"] += bool(ranked) and ranked[0][1] == true
        group["listed"] += any(key == true for _, key in ranked)
    with_original = {g: t for g, t in tally.items() if g != "distinct"}
    return {
        "vote_ms": {"p50": round(float(np.median(ms)), 1), "p95": round(float(np.percentile(ms, 95)), 1)},
        "first_by_votes": sum(t["first"] for t in with_original.values()),
        "reaching_min_votes": sum(t["listed"] for t in with_original.values()),
        "queries_with_original": sum(t["n"] for t in with_original.values()),
        "distinct_with_an_addition": distinct_added,
        "distinct": tally["distinct"]["n"] if "distinct" in tally else 0,
        "by_family": {g: dict(t) for g, t in sorted(with_original.items())},
    }, answers


def _grown(items: list[tuple[int, np.ndarray]], code: str, ivf_from: int, queries: list[Query], voting: list[Voting],
           key_of_path: dict[Path, int], min_votes: int, ratio: float, built: list[dict[int, int]],
           step: int = SYNC_PER_REQUEST, seed: int = 0, follower: bool = True) -> dict[str, Any]:
    """The index as a service's registry grows it: originals arriving `step` at a time in a random
    order (their ids' order), each batch built in or added as `LocalSearch.sync` does, not built
    once from everything; scored like the built one, and how many queries vote otherwise.
    `follower`: synced by the registry follower (rebuilt when outgrown), else by requests alone
    (`VERIFIER_FOLLOW_REGISTRY` off: built once, at the threshold)."""
    order = random.Random(seed).sample(items, len(items))
    index = LocalFeatureIndex(codes=code, ivf_threshold=ivf_from)
    builds, held = 0, []
    started = time.perf_counter()
    for at in range(0, len(order), step):
        batch = order[at : at + step]
        held += batch
        adding = sum(len(d) for _, d in batch)
        if index.wants_build(adding) or (follower and index.outgrown(adding)):
            index.build(held)
            builds += 1
        else:
            index.add_new(batch)
    row, answers = _score(index, queries, voting, key_of_path, min_votes, ratio)
    return {"kind": index.kind, "nlist": index.nlist, "builds": builds, "grow_s": round(time.perf_counter() - started, 1),
            **row, "queries_with_other_votes": sum(a != b for a, b in zip(answers, built, strict=True))}


def _on_disk(index: LocalFeatureIndex, path: Path, voting: list[Voting], ratio: float,
             expected: list[dict[int, int]]) -> dict[str, Any]:
    """The same votes with the index's inverted lists in a file (`LocalFeatureIndex.move_lists_to`):
    warm (the file in the page cache) and cold (before every query, outside the timer, the index
    is loaded again, mapping the file anew, and the file evicted: every probed list read from disk,
    as when the lists outgrow RAM). Votes must not change."""
    index.move_lists_to(path)
    blob = index.serialize()  # the lists by reference to `path`
    row: dict[str, Any] = {"file_bytes": path.stat().st_size, "warm": _timed_votes(index, voting, ratio, expected)}

    def cold(idx: LocalFeatureIndex) -> None:  # a fresh mapping: eviction cannot drop pages a live mapping holds
        idx.deserialize(blob)
        if not evict_from_page_cache(path):
            raise OSError("no page-cache control")

    try:
        row["cold"] = _timed_votes(index, voting, ratio, expected, cold)
    except OSError:
        row["cold"] = None
    return row


def _service_layout(items: list[tuple[int, np.ndarray]], code: str, ivf_from: int, folder: Path, voting: list[Voting],
                    ratio: float, expected: list[dict[int, int]], churn: float = 0.05) -> dict[str, Any]:
    """The service's on-disk layout (`lists_dir`): built into a file, then `churn` of the originals
    removed and added again with the same descriptors (the file's copies tombstoned, the live ones
    in memory), so every vote must equal the in-memory index's; timed warm and read from disk,
    then compacted and timed again."""
    index = LocalFeatureIndex(codes=code, ivf_threshold=ivf_from, lists_dir=folder, compact_at=1.0)
    started = time.perf_counter()
    index.build(items)
    row: dict[str, Any] = {"build_s": round(time.perf_counter() - started, 1)}
    assert index.lists_file is not None
    row["file_bytes"] = index.lists_file.stat().st_size
    moved = random.Random(0).sample(items, max(1, round(churn * len(items))))
    for key, d in moved:
        index.remove(key)
        index.add(key, d)
    row["churned_originals"] = len(moved)
    row["churned_descriptors"] = sum(len(d) for _, d in moved)
    row["warm"] = _timed_votes(index, voting, ratio, expected)
    state = index.state()

    def cold(idx: LocalFeatureIndex) -> None:  # a fresh mapping, then the file out of the page cache
        idx.restore(state)
        assert idx.lists_file is not None
        if not evict_from_page_cache(idx.lists_file):
            raise OSError("no page-cache control")

    try:
        row["cold"] = _timed_votes(index, voting, ratio, expected, cold)
    except OSError:
        row["cold"] = None
    index.restore(state)
    started = time.perf_counter()
    index.compact()
    row["compact_s"] = round(time.perf_counter() - started, 1)
    assert index.lists_file is not None
    row["compacted_file_bytes"] = index.lists_file.stat().st_size
    row["compacted_warm"] = _timed_votes(index, voting, ratio, expected)
    index.prune_files()
    index.close()
    return row


@dataclass
class VoteData:
    """What a vote benchmark reads once: the queries, every original's descriptors keyed by a small
    integer (a copy of the same file is one original, as in the registry), and each query's voting
    descriptors (plain and mirrored, as `Matcher.with_votes` votes)."""

    queries: list[Query]
    items: list[tuple[int, np.ndarray]]
    key_of_path: dict[Path, int]
    voting: list[Voting]


def load_vote_data(queries_csv: Path, registry_extra: list[Path]) -> VoteData:
    queries = read_queries(queries_csv)
    paths = sorted({q.original for q in queries if q.original is not None} | {p.resolve() for p in extra_images(registry_extra)})
    key_of_digest: dict[str, int] = {}
    key_of_path: dict[Path, int] = {}
    items: list[tuple[int, np.ndarray]] = []
    for path in tqdm(paths, desc="originals", unit="img"):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest not in key_of_digest:  # a copy of the same file is one original, as in the registry
            key_of_digest[digest] = len(items)
            view = View.of(decode(data))
            items.append((len(items), np.clip(view.features.descriptors, 0, 255).astype(np.uint8)))
        key_of_path[path] = key_of_digest[digest]
    voting = [voting_descriptors(View.of(decode(q.data))) for q in tqdm(queries, desc="queries", unit="query")]
    return VoteData(queries, items, key_of_path, voting)


def run_bench_votes(queries_csv: Path, registry_extra: list[Path], codes: list[str], *, command: str,
                    min_votes: int = MIN_VOTES, ratio: float = 0.7, ivf_from: int = 200_000,
                    ondisk: Path | None = None, grown: bool = False) -> dict[str, Any]:
    """`ondisk`: a folder where each IVF's lists are then moved to a file and the votes timed again.
    `grown`: each encoding also as the service grows it (`_grown`)."""
    data = load_vote_data(queries_csv, registry_extra)
    queries, items, key_of_path, voting = data.queries, data.items, data.key_of_path, data.voting

    results: dict[str, Any] = {}
    for code in codes:
        index = LocalFeatureIndex(codes=code, ivf_threshold=ivf_from)
        started = time.perf_counter()
        index.build(items)
        build_s = time.perf_counter() - started
        blob = index.serialize()
        row, answers = _score(index, queries, voting, key_of_path, min_votes, ratio)
        results[code] = {
            "kind": index.kind,
            "nlist": index.nlist,
            "descriptors": len(index),
            "code_bytes": index.code_bytes,
            "bytes_per_descriptor": round(len(blob) / max(1, len(index)), 1),
            "bytes_per_original": round(len(blob) / max(1, len(items))),
            "build_s": round(build_s, 1),
            **row,
        }
        if grown:
            results[code]["grown"] = _grown(items, code, ivf_from, queries, voting, key_of_path, min_votes, ratio, answers)
            results[code]["grown_by_requests"] = _grown(items, code, ivf_from, queries, voting, key_of_path, min_votes,
                                                        ratio, answers, follower=False)
        if ondisk is not None and index.kind != "exact":
            results[code]["ondisk"] = _on_disk(index, ondisk / f"{code}.ivfdata", voting, ratio, answers)
            results[code]["ondisk_service"] = _service_layout(items, code, ivf_from, ondisk / f"{code}-service", voting,
                                                              ratio, answers)
    return {"command": command, "originals": len(items), "queries": len(queries), "min_votes": min_votes,
            "ratio": ratio, "ivf_from": ivf_from, "by_codes": results}
