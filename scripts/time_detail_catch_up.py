"""Probe (not product code): how long a start takes when the originals have no detail files yet (the first
start after the upgrade that brought them), and how long the background sync then takes to catch the detail
index up. Run it on a copy: it writes the files and the index. BENCHMARKS.md, "The detail index after an upgrade".

    python scripts/time_detail_catch_up.py /path/to/copy-of-data-dir
"""
import logging
import sys
import time
from pathlib import Path

from verifier.service import Service
from verifier.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    root = Path(sys.argv[1])
    t0 = time.monotonic()
    service = Service.open(Settings(data_dir=root))
    opened = time.monotonic()
    try:
        detail = service.matcher.detail_local
        if detail is None:
            sys.exit("the detail features are off (VERIFIER_LOCAL_DETAIL_FEATURES, VERIFIER_LOCAL_VOTES)")
        print(f"start {opened - t0:.1f} s; the detail index holds {len(detail)} originals", flush=True)
        while detail.synced != service.search.main.version and time.monotonic() - opened < 3600:
            time.sleep(0.5)
        print(f"caught up {time.monotonic() - opened:.1f} s after the start: {len(detail)} originals, "
              f"{len(list((root / 'views').glob('*.detail')))} detail files", flush=True)
    finally:
        service.close()
    t1 = time.monotonic()
    Service.open(Settings(data_dir=root)).close()
    print(f"a start after that: {time.monotonic() - t1:.1f} s (open and close)")


if __name__ == "__main__":
    main()
