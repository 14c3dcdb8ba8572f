"""Probe (not product code): does the vote IVF's training sample size matter at 10,000 originals?

`LocalFeatureIndex` trains its centroids on min(train_max, 40 x lists) descriptors. At 10,000
originals (~2.7M descriptors, 8,192 lists) the 200,000 cap gives 24 per centroid and FAISS warns
that it wants 39. The probe builds the index from the same descriptors with each cap and scores
the same queries as `verifier bench-votes` does (first by votes, reaching the bar, unregistered
queries with an addition; the vote's time).

    python scripts/probe_vote_training.py --queries families.csv --registry-extra DIR --registry-extra DIR2 \
        --caps 200000,400000 --out vote_training.json
"""
import argparse
import json
import time
from pathlib import Path

from index import LocalFeatureIndex
from verifier.evaluation.votes import _score, load_vote_data
from verifier.matching.local import MIN_VOTES


def _top(votes: dict[int, int]) -> int | None:
    """The original first by votes (most votes, then the lowest key, as `_score` ranks), if any reaches the bar."""
    best = max(((n, -k) for k, n in votes.items() if n >= MIN_VOTES), default=None)
    return None if best is None else -best[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--registry-extra", type=Path, action="append", default=[])
    ap.add_argument("--caps", default="200000,400000")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    data = load_vote_data(args.queries, args.registry_extra)
    queries, items, key_of_path, voting = data.queries, data.items, data.key_of_path, data.voting
    out = {"originals": len(items), "queries": len(queries), "by_cap": {}}
    answers = {}
    for cap in (int(c) for c in args.caps.split(",")):
        index = LocalFeatureIndex(codes="RaBitQ", train_max=cap)
        started = time.perf_counter()
        index.build(items)
        build_s = time.perf_counter() - started
        row, answers[cap] = _score(index, queries, voting, key_of_path, MIN_VOTES, 0.7)
        out["by_cap"][cap] = {"nlist": index.nlist, "descriptors": len(index), "trained_on": index._train_size(len(index)),
                              "build_s": round(build_s, 1), **row}
        print(cap, {k: v for k, v in out["by_cap"][cap].items() if k != "by_family"}, flush=True)
    caps = list(answers)
    if len(caps) == 2:  # query for query: whose first-by-votes changed
        a, b = answers[caps[0]], answers[caps[1]]
        out["first_changed"] = sum(_top(x) != _top(y) for x, y in zip(a, b, strict=True))
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
