"""Families queries re-encoded as HEIC and AVIF (quality 60) beside the same rows as they are: does the format change
what the pipeline finds? 10 rows per family, 20 MICC-F220, 20 unregistered (BENCHMARKS "AVIF and HEIC").

    PYTHONPATH=. python scripts/format_bench_data.py <families dir (verifier bench-data --families)> <out dir>

writes <out>/{jpg,heic,avif}.csv (+ the re-encoded files) for `verifier bench --queries`."""
import csv
import sys
from collections import defaultdict
from pathlib import Path

from PIL import Image

from tests.helpers import (
    encode,  # HEIC through pillow-heif's encoder (a test dependency)
)

src, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = list(csv.DictReader((src / "families.csv").read_text().splitlines()))
take, n = [], defaultdict(int)
for r in rows:
    fam = r["family"] or r["kind"]
    cap = 20 if fam in ("micc-f220", "distinct") else 10
    if n[fam] < cap:
        n[fam] += 1; take.append(r)
print(len(take), dict(n))
for fmt, ext in (("JPEG", "jpg"), ("HEIF", "heic"), ("AVIF", "avif")):
    d = out / ext; d.mkdir(parents=True, exist_ok=True)
    with open(out / f"{ext}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys())); w.writeheader()
        for r in take:
            q = src / r["query"]
            r2 = dict(r)
            if fmt == "JPEG":
                r2["query"] = str(q)
            else:
                name = Path(r["query"]).stem + "." + ext
                with Image.open(q) as im:
                    (d / name).write_bytes(encode(im.convert("RGB"), fmt, quality=60))
                r2["query"] = f"{ext}/{name}"
            if r["mask"]:
                r2["mask"] = str(src / r["mask"])
            if r["original"]:
                r2["original"] = str((src / r["original"]).resolve())
            w.writerow(r2)
