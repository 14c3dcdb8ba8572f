"""Peak memory of one verification of a large upload, in a fresh process per case:
`python scripts/memory_probe.py [--work-max-side N]` prints one JSON line per case
(peak RSS before and after, seconds). Used for BENCHMARKS.md (issue 12)."""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _case(kind: str, side: int) -> None:
    from PIL import Image

    from verifier.service import Service
    from verifier.settings import Settings, UnsignedPolicy

    img = Image.new("RGB", (8944, 8944) if kind == "png" else (8000, 6000), (90, 120, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG" if kind == "png" else "JPEG", quality=85)
    data = buf.getvalue()
    del img
    with tempfile.TemporaryDirectory() as tmp:
        service = Service.open(Settings(data_dir=Path(tmp), unsigned_originals=UnsignedPolicy.ALLOW, verify_requires_key=False,
                                        max_upload_bytes=200 * 2**20, max_image_pixels=80_000_000, work_max_side=side))
        try:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t0 = time.perf_counter()
            service.pipeline.verify(data)
            seconds = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        finally:
            service.close()
    print(json.dumps({"case": kind, "bytes": len(data), "work_max_side": side, "peak_rss_mb_before": round(before / 1024),
                      "peak_rss_mb_after": round(after / 1024), "added_mb": round((after - before) / 1024), "seconds": round(seconds, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work-max-side", type=int, default=1024)
    parser.add_argument("--case", choices=["png", "jpeg"])
    args = parser.parse_args()
    if args.case:
        _case(args.case, args.work_max_side)
        return
    for case in ("png", "jpeg"):
        subprocess.run([sys.executable, __file__, "--case", case, "--work-max-side", str(args.work_max_side)], check=True)


if __name__ == "__main__":
    main()
