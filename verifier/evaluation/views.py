"""`verifier bench-views`: what each `VERIFIER_VIEWS_STORE` costs per original on a registry.

For a seeded sample of registered originals: bytes on disk, the time to write a view at
registration, and the time of a cold read (nothing in memory: what a query pays for each
candidate stage 2 compares when the registry is far larger than the in-memory LRU), for
`full`, `image` and `none`, and whether every store gave exactly the view `full` gives.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from verifier.matching.views import CandidateViews
from verifier.service import Service
from verifier.simprov.pairs import View

STORES = ("full", "image", "none")


def _same(a: View, b: View) -> bool:
    return (np.array_equal(a.image, b.image) and a.full_size == b.full_size
            and np.array_equal(a.features.points, b.features.points)
            and np.array_equal(a.features.descriptors, b.features.descriptors))


def _ms(xs: list[float]) -> dict[str, float]:
    q = np.percentile(xs, [50, 95]) * 1000
    return {"p50_ms": round(float(q[0]), 2), "p95_ms": round(float(q[1]), 2), "mean_ms": round(statistics.fmean(xs) * 1000, 2)}


def run_bench_views(service: Service, *, n: int = 300, seed: int = 0, command: str = "") -> dict[str, Any]:
    originals, total = service.originals.list(publisher_id=None, limit=1_000_000, offset=0)
    if not originals:
        raise ValueError("the registry has no originals")
    sample = random.Random(seed).sample(originals, min(n, len(originals)))
    out: dict[str, Any] = {"command": command, "registry_originals": total, "n": len(sample), "stores": {}}
    with tempfile.TemporaryDirectory(prefix="verifier-bench-views-") as tmp:
        reference: dict[Any, View] = {}
        for store in STORES:
            directory = Path(tmp) / store
            writer = CandidateViews(directory, capacity=0, store=store)  # type: ignore[arg-type]
            reader = CandidateViews(directory, capacity=0, store=store)  # type: ignore[arg-type]
            put, get, same = [], [], 0
            for original in tqdm(sample, desc=f"views {store}"):
                image = service.originals.image(original)
                started = time.perf_counter()
                writer.put(original.id, image)
                put.append(time.perf_counter() - started)
                started = time.perf_counter()
                view = reader.get(original.id, lambda o=original: service.originals.image(o))  # type: ignore[misc]
                get.append(time.perf_counter() - started)
                ref = reference.setdefault(original.id, view)
                same += _same(view, ref)
            files = list(directory.glob("*.view")) if directory.exists() else []
            out["stores"][store] = {
                "bytes_per_original": round(sum(f.stat().st_size for f in files) / len(sample)),
                "write": _ms(put), "cold_read": _ms(get), "identical_to_full": same,
            }
    return out
