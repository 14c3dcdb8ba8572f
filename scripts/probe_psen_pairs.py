"""Probe (not product code): PSEN weights side by side on the same aligned pairs, on a families
registry that `verifier bench --register-only` kept. Positives: each family query against its
true original; negatives: each unregistered (`distinct`) query against its stage-1 top 10. PSEN's
first look only (no colour-matched second look, no rules), so the weights alone are compared.
BENCHMARKS "PSEN learns that the original may be a minority of the query".

    python scripts/probe_psen_pairs.py --fambench /tmp/s50/fambench --data-dir <copy of the registry> \\
        B=/tmp/psen-B.safetensors C=/tmp/psen-C.safetensors      # A: the packaged PSEN
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
from pathlib import Path

import numpy as np
import torch

from verifier.evaluation.queries import decode
from verifier.service import Service
from verifier.settings import Settings, UnsignedPolicy
from verifier.simprov import catalog
from verifier.simprov.metrics import average_precision
from verifier.simprov.pairs import align_pair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fambench", type=Path, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("weights", nargs="*", help="NAME=path.safetensors")
    args = ap.parse_args()
    service = Service.open(Settings(data_dir=args.data_dir, database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                                    verify_requires_key=False))
    matcher = service.matcher
    reranker = matcher.reranker
    assert reranker is not None
    models = {"A": reranker.psen}
    for item in args.weights:
        name, path = item.split("=", 1)
        models[name] = catalog.load_weights(Path(path), "psen", "cpu").eval()
    scores: dict[str, dict[str, list[float]]] = {k: collections.defaultdict(list) for k in models}
    inliers: dict[str, list[int]] = collections.defaultdict(list)
    try:
        for r in csv.DictReader((args.fambench / "families.csv").open()):
            data = (args.fambench / r["query"]).read_bytes()
            img = decode(data)
            qv = matcher.query_view(img)
            vectors = service.search.embed(img)
            if r["kind"] == "distinct":
                cands, group = [c.original_id for c in service.search.search(img, vectors).candidates[:10]], "NEG"
            else:
                found = service.originals.find_by_sha256(hashlib.sha256((args.fambench / r["original"]).read_bytes()).hexdigest())
                assert found is not None, r["original"]
                cands, group = [found.id], r["family"]
            pairs = [align_pair(qv, matcher.view(c), retry=True) for c in cands]
            eq = torch.from_numpy(np.repeat(vectors.vector[None].astype(np.float32), len(pairs), 0))
            ec = torch.from_numpy(np.asarray(service.search.vectors_for(cands), np.float32))
            for name, net in models.items():
                reranker.psen = net
                scores[name][group].extend(reranker._psen(pairs, eq, ec).tolist())
            reranker.psen = models["A"]
            inliers[group].extend(p.alignment.inliers for p in pairs)
    finally:
        service.close()
    names = list(models)
    print("| group | n | " + " | ".join(f"{n}: AP / under 0.5" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for group in sorted(g for g in inliers if g != "NEG"):
        cells = []
        for n in names:
            pos, neg = np.array(scores[n][group]), np.array(scores[n]["NEG"])
            ap_ = average_precision(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
            cells.append(f"{ap_:.4f} / {int((pos < 0.5).sum())}")
        print(f"| {group} | {len(inliers[group])} | " + " | ".join(cells) + " |")
    neg_inl = np.array(inliers["NEG"])
    print(f"negatives: {len(neg_inl)} pairs, {int((neg_inl >= 8).sum())} with 8 or more inliers; at or over 0.5: "
          + ", ".join(f"{n} {int((np.array(scores[n]['NEG']) >= 0.5).sum())}" for n in names))


if __name__ == "__main__":
    main()
