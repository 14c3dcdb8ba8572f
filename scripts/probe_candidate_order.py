"""Probe (not product code): every query's candidate list as stage 2 left it, for reading orderings offline.

Runs `verifier bench` with `evaluation.bench._query_record` wrapped: beside the bench's own record it keeps,
per query, stage 1's candidates (original, fused score, global cosine), the re-orderer's probabilities, PSEN's
scores, the fits' inliers (aligned, screened or at the closer look), stage 2's choice, and the true original. The records follow
the bench's per-query order.

    python scripts/probe_candidate_order.py lists.json bench --queries queries.csv ... --out results.json
"""
import json
import sys

import verifier.evaluation.bench as vb

lists: list[dict] = []
_record = vb._query_record


def record(q, report, ev, true_id, got, total_ms):  # type: ignore[no-untyped-def]
    out = _record(q, report, ev, true_id, got, total_ms)
    cands = ev.stage1.candidates
    s2 = ev.stage2
    entry = {"query": q.name, "true": true_id, "matched": got, "ids": [str(c.original_id) for c in cands],
             "score": [round(float(c.score), 5) for c in cands], "cosine": [round(float(c.cosine), 5) for c in cands]}
    if s2 is not None:
        entry.update({
            "probs": None if s2.probs is None else [round(float(p), 6) for p in s2.probs[: len(cands)]],
            "p_absent": float(s2.p_absent), "choice": s2.choice, "promoted": s2.promoted, "gated": s2.gated,
            "psen": {str(i): round(float(p), 5) for i, p in s2.psen.items()},
            "inliers": {str(i): int(p.alignment.inliers) for i, p in s2.pairs.items()},
            "screened": {str(i): int(n) for i, n in s2.screened.items()},
            "closer": {str(i): int(n) for i, n in s2.closer.items()}, "by_closer": s2.by_closer,
            "supported": [i for i, c in enumerate(cands) if c.original_id in ev.stage1.supported],
        })
    lists.append(entry)
    return out


vb._query_record = record
from verifier.cli import main

rc = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump(lists, fh)
sys.exit(rc)
