"""Probe (not product code): the geometry gate's refusals, recorded before the gate drops the choice.

Runs `verifier bench` with two wrappers: every verification opens a record, and `Matcher._geometry_gate`
fills it with the choice it was handed (stage-1 index and score, PSEN, inliers, the re-orderer's
p_absent) and whether it kept it. The records follow the bench's per-query order, so they join its
results file query for query. BENCHMARKS.md "The geometry gate's refusals, read".

    python scripts/probe_gate_refusals.py gates.json bench --queries families.csv ... --out famG.json
"""
import json
import sys

import verifier.matching.matcher as mm
import verifier.verification.pipeline as vp

records: list[dict] = []
_verify = vp.VerificationPipeline.verify
_gate = mm.Matcher._geometry_gate


def verify(self, *a, **k):
    records.append({"gates": []})
    return _verify(self, *a, **k)


def gate(self, result, outcome):
    c = result.choice
    if c is not None and records:
        pair = result.pairs.get(c)
        cand = outcome.candidates[c]
        records[-1]["gates"].append({
            "original": str(cand.original_id), "rank1": c, "score": float(cand.score), "threshold": float(outcome.threshold),
            "psen": float(result.psen.get(c, 0.0)), "inliers": int(pair.alignment.inliers) if pair is not None else 0,
            "p_absent": float(getattr(result, "p_absent", -1.0)), "probability": float(getattr(result, "probability", -1.0)),
        })
    out = _gate(self, result, outcome)
    if records and records[-1]["gates"]:
        records[-1]["gates"][-1]["kept"] = out.choice is not None
    return out


vp.VerificationPipeline.verify = verify
mm.Matcher._geometry_gate = gate
from verifier.cli import main

rc = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump(records, fh)
sys.exit(rc)
