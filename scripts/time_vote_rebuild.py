"""Probe (not product code): how long the local-feature vote index takes to rebuild from a registry.

Opens the service on a data directory (without following other processes), then times
`Matcher.rebuild_votes`: every original's descriptors read from the views, the IVF trained and
filled, the index saved. BENCHMARKS.md, "10,000 originals at stop 68's code".

    python scripts/time_vote_rebuild.py /path/to/data-dir
"""
import logging
import sys
import time
from pathlib import Path

from verifier.service import Service
from verifier.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.monotonic()
    service = Service.open(Settings(data_dir=Path(sys.argv[1]), follow_registry=False))
    try:
        local = service.matcher.local
        if local is None:
            sys.exit("the vote index is off (VERIFIER_LOCAL_VOTES)")
        print(f"open {time.monotonic() - t0:.1f} s: {len(local)} originals, {len(local.index)} descriptors, "
              f"{local.index.kind}, {local.index.nlist} lists", flush=True)
        t1 = time.monotonic()
        service.matcher.rebuild_votes()
        print(f"rebuild {time.monotonic() - t1:.1f} s: {len(local.index)} descriptors, {local.index.nlist} lists", flush=True)
    finally:
        service.close()


if __name__ == "__main__":
    main()
