"""Soft Binding Resolution byContent latency beside /v1/verify's pipeline, on a kept bench
registry (`verifier bench ... --data-dir DIR --register-only`), same process, same queries.

    python scripts/sbr_latency.py --data-dir /tmp/benchreg --queries /tmp/devbench/queries.csv [--n 100]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from verifier.evaluation.queries import read_queries
from verifier.service import Service
from verifier.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    queries = [q for q in read_queries(args.queries) if q.kind != "distinct"]
    queries = random.Random(args.seed).sample(queries, min(args.n, len(queries)))
    service = Service.open(Settings(data_dir=args.data_dir, database_url=None, max_upload_bytes=512 * 2**20,
                                    max_image_pixels=400_000_000))
    try:
        sbr, verify = [], []
        for q in queries:
            t = time.perf_counter()
            service.resolver.by_content(q.data, None, 10)
            sbr.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            service.pipeline.verify(q.data)
            verify.append((time.perf_counter() - t) * 1000)
    finally:
        service.close()

    def p(v: list[float]) -> dict[str, int]:
        v = sorted(v)
        return {"p50": round(statistics.median(v)), "p95": round(v[int(0.95 * (len(v) - 1))])}

    print(json.dumps({"n": len(queries), "byContent_ms": p(sbr), "verify_ms": p(verify)}))


if __name__ == "__main__":
    main()
