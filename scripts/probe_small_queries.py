"""Probe (not product code): `verifier bench` on its queries smaller than the working frame only.

The closer look's fit at the query's own resolution (`matching.Matcher._closer_look`) can change
an answer only where the query's long side is under WORK_SIDE; this runs the bench's own queries
(families, benign variants, held-out copies: the same draw as the whole run for the same seed)
but verifies only those, so that the code before and after can be compared on every query the
change can reach in minutes instead of hours. Beside the bench's output it writes, per verified
query, the answer and the closer look's fits.

    python scripts/probe_small_queries.py small.json bench --queries families.csv ... --holdout 400 --out results.json
"""
import io
import json
import sys

from PIL import Image

import verifier.evaluation.bench as vb
from verifier.simprov.pairs import WORK_SIDE

records: list[dict] = []
_tqdm = vb.tqdm
_record = vb._query_record


def small(data: bytes) -> bool:
    try:
        return max(Image.open(io.BytesIO(data)).size) < WORK_SIDE
    except Exception:  # noqa: BLE001 - a file PIL cannot size is the service's to refuse, not this filter's
        return False


def tqdm(it, desc=None, **kw):  # type: ignore[no-untyped-def]
    if desc == "verify":
        it = [q for q in it if small(q.data)]
        print(f"verifying {len(it)} queries under {WORK_SIDE} px", file=sys.stderr, flush=True)
    return _tqdm(it, desc=desc, **kw)


def record(q, report, ev, true_id, got, total_ms):  # type: ignore[no-untyped-def]
    out = _record(q, report, ev, true_id, got, total_ms)
    s2 = ev.stage2
    records.append({
        "query": q.name, "kind": q.kind, "family": q.family, "size": Image.open(io.BytesIO(q.data)).size,
        "true": true_id, "matched": got, "verdict": report["verdict"],
        "closer": None if s2 is None else {str(i): int(n) for i, n in s2.closer.items()},
        "by_closer": None if s2 is None else s2.by_closer,
        "psen": None if s2 is None or s2.choice is None else round(float(s2.psen.get(s2.choice, -1)), 4),
    })
    return out


vb.tqdm = tqdm
vb._query_record = record
from verifier.cli import main  # after the hooks

rc = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump(records, fh)
sys.exit(rc)
