"""Where a verification's time goes: cProfile over the service's own pipeline on benchmark queries.

Opens a registered benchmark data directory (e.g. the 10k registry of scripts/latency_10k.sh) the
way `verifier bench` does, verifies a seeded sample of a queries CSV (`verifier bench-data`'s
format), and prints verify p50/p95, each stage's p50/p95 and the profile's top functions by
cumulative time (`--phone-size`: the queries as 12 MP uploads). It finds the costs, `verifier bench`
measures them.

    python scripts/profile_verify.py --data-dir /tmp/bench10k --queries /tmp/devbench/queries.csv \
        --n 80 --out /tmp/verify.prof
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import pstats
import random
import time
from collections import defaultdict
from pathlib import Path

import verifier  # noqa: F401 -- first: it sets the thread pools' wait policies before NumPy loads OpenBLAS

# isort: split
import numpy as np

from verifier.service import Service
from verifier.settings import Settings, UnsignedPolicy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--n", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", action="append", help="only queries of this kind (e.g. distinct: unregistered photos)")
    ap.add_argument("--out", type=Path, default=None, help="save the raw profile here (pstats)")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--phone-size", action="store_true", help="every query upscaled to ~12 MP (as `verifier bench --large-share`)")
    ap.add_argument("--no-profile", action="store_true", help="times only (cProfile's overhead inflates Python-heavy stages)")
    args = ap.parse_args()

    settings = Settings(data_dir=args.data_dir, database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                        max_upload_bytes=512 * 2**20, max_image_pixels=400_000_000, verify_requires_key=False)
    started = time.perf_counter()
    service = Service.open(settings)
    print(f"service open: {time.perf_counter() - started:.1f} s; index {service.search.state()}")
    try:
        rows = [r for r in csv.DictReader(args.queries.open()) if not args.kind or r["kind"] in args.kind]
        rows = random.Random(args.seed).sample(rows, min(args.n, len(rows)))
        datas = [(args.queries.parent / r["query"]).read_bytes() for r in rows]
        if args.phone_size:
            from verifier.evaluation.bench import phone_size

            datas = [phone_size(d) for d in datas]
        for data in datas[:2]:  # warm-up
            service.pipeline.verify(data)
        totals: list[float] = []
        stages: dict[str, list[float]] = defaultdict(list)
        profile = cProfile.Profile()
        for data in datas:
            t = time.perf_counter()
            if not args.no_profile:
                profile.enable()
            report = service.pipeline.verify(data)
            if not args.no_profile:
                profile.disable()
            totals.append((time.perf_counter() - t) * 1000)
            for stage, ms in report.timings_ms.items():
                stages[stage].append(ms)
        print(f"verify ({len(totals)} queries{'' if args.no_profile else ', profiled'}) p50 {np.median(totals):.0f} ms, p95 {np.percentile(totals, 95):.0f} ms")
        for stage, ms in stages.items():
            print(f"  {stage:<18} p50 {np.median(ms):7.1f}  p95 {np.percentile(ms, 95):7.1f}")
        if not args.no_profile:
            if args.out:
                profile.dump_stats(args.out)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    finally:
        service.close()


if __name__ == "__main__":
    main()
