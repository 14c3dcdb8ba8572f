"""Probe (not product code): what enrolling a publisher's mark does to the fits that decided answers.
For every answer of a `verifier bench` results file that rests on `--max-inliers` or fewer (right
answers and false matches alike), the query's RANSAC fit against the original it was matched to,
with and without the query's keypoints on the mark (`simprov.marks`), plain and mirrored (the
better of the two). BENCHMARKS "Publisher marks".

    python scripts/probe_mark_fits.py --data-dir <the bench's registry> --results famK.json \\
        --queries /tmp/s50/fambench/families.csv --mark mark_centre.png
"""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.evaluation.queries import benign_variants, read_queries
from verifier.service import Service
from verifier.settings import Settings
from verifier.simprov import marks
from verifier.simprov.align import count_inliers
from verifier.simprov.pairs import WORK_SIDE, View


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, required=True, help="a registry holding the matched originals")
    ap.add_argument("--results", type=Path, action="append", required=True, help="verifier bench results (repeatable)")
    ap.add_argument("--queries", type=Path, action="append", required=True, help="each results file's QUERIES.csv")
    ap.add_argument("--mark", type=Path, required=True)
    ap.add_argument("--max-inliers", type=int, default=20)
    ap.add_argument("--benign-variants", type=int, default=1, help="as the bench ran (its seed 0)")
    args = ap.parse_args()
    model = marks.mark_model(Image.open(args.mark))
    service = Service.open(Settings(data_dir=args.data_dir))
    rows = []
    try:
        for results, csv_path in zip(args.results, args.queries, strict=True):
            qs = read_queries(csv_path)
            by_name = {q.name: q for q in qs + benign_variants(qs, args.benign_variants, 0)}
            for r in json.loads(results.read_text())["queries"]:
                if not r.get("matched") or r.get("match_inliers") is None or r["match_inliers"] > args.max_inliers:
                    continue
                if r["query"] not in by_name:  # a --holdout copy: made by the bench, not in the CSV
                    print(f"skipped {r['query']} (not in {csv_path})")
                    continue
                view = View.of(Image.open(io.BytesIO(by_name[r["query"]].data)).convert("RGB"), min_side=WORK_SIDE)
                original = service.matcher.view(uuid.UUID(r["matched"]))
                best = (-1, 0, 0.0, 0.0)
                for f in (view.features, view.mirrored_features()):
                    t = time.perf_counter()
                    on = marks.on_mark(f, model, view.image.shape)
                    ms = (time.perf_counter() - t) * 1000
                    before = count_inliers(f, original.features, view.image.shape, original.image.shape)
                    after = count_inliers(marks.without(f, on), original.features, view.image.shape, original.image.shape)
                    best = max(best, (before, after, float(on.mean()), ms), key=lambda b: (b[0], -b[1]))
                rows.append({"query": r["query"], "right": r["correct"], "before": best[0], "after": best[1],
                             "share_dropped": round(best[2], 3), "ms": round(best[3], 1)})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        service.close()
    for right in (True, False):
        sel = [x for x in rows if x["right"] is right]
        lost = [x["query"] for x in sel if x["before"] >= 8 > x["after"]]
        print(f"{'right answers' if right else 'false matches'}: {len(sel)}, fits under 8 inliers with the mark out: "
              f"{len(lost)} {lost[:10]}; keypoints dropped p50/p95/max "
              f"{np.percentile([x['share_dropped'] for x in sel], [50, 95, 100]).round(3).tolist() if sel else []}")


if __name__ == "__main__":
    main()
