"""Probe (not product code): which benchmark queries does the query descreen (`simprov.descreen`) act
on? A query it leaves alone is searched exactly as before (the pipeline is deterministic), so only
these need a second look when its parameters change. Every query of a bench CSV and its seed-0
benign-transformed copy (the bench's own `--benign-variants 1`), counted per family or kind.

    python scripts/probe_descreen_triggers.py /tmp/fambench/families.csv
"""

from __future__ import annotations

import collections
import io
import sys
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from verifier.evaluation.queries import benign_variants, read_queries
from verifier.simprov.descreen import screen_period


def main() -> None:
    queries = read_queries(Path(sys.argv[1]))
    queries += benign_variants(queries, 1, 0)
    seen: collections.Counter[str] = collections.Counter()
    hit: collections.Counter[str] = collections.Counter()
    for q in tqdm(queries, desc="queries"):
        group = q.family or q.kind
        seen[group] += 1
        period = screen_period(Image.open(io.BytesIO(q.data)).convert("RGB"))
        if period is not None:
            hit[group] += 1
            print(f"{q.name}\t{group}\t{period:.2f}", flush=True)
    for group in sorted(seen):
        print(f"{group}: {hit[group]} of {seen[group]}")
    print(f"all: {sum(hit.values())} of {sum(seen.values())}")


if __name__ == "__main__":
    main()
