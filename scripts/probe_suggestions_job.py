"""The suggestions job beside verifications: how long POST takes, how long the job runs, and verification latency
while it runs against the same verifications with the process idle (BENCHMARKS "Suggested marks as a job").

    python scripts/probe_suggestions_job.py <data dir of a registered registry> <sample> <families dir>

The busiest publisher's newest `sample` photos are looked at; the queries are 12 paste_large rows of the families
data (`verifier bench-data --families`). Throwaway: it issues keys in the registry it is given (use a copy)."""
import csv
import json
import statistics
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from verifier.api.app import create_app
from verifier.service import Service
from verifier.settings import Settings
from verifier.storage.accounts import Scope, issue_key
from verifier.storage.models import Original, Publisher

data_dir, sample, fam = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
svc = Service.open(Settings(data_dir=data_dir))
with svc.db.session() as s:
    pub, n = s.execute(select(Publisher, func.count(Original.id)).join(Original).group_by(Publisher.id)
                       .order_by(func.count(Original.id).desc())).first()
    _, admin = issue_key(s, Scope.ADMIN)
    _, vkey = issue_key(s, Scope.VERIFIER)
    pid = pub.id
print(f"publisher {pub.name}: {n} originals", flush=True)
rows = [r for r in csv.DictReader((fam / "families.csv").read_text().splitlines()) if r["family"] == "paste_large"][:12]
queries = [(fam / r["query"]).read_bytes() for r in rows]
H = lambda k: {"Authorization": f"Bearer {k}"}

def verify_all(client):
    out = []
    for q in queries:
        t = time.perf_counter()
        r = client.post("/v1/verify", files={"file": ("q.jpg", q, "image/jpeg")}, headers=H(vkey))
        assert r.status_code == 200, r.text
        out.append(1000 * (time.perf_counter() - t))
    return out

with TestClient(create_app(service=svc)) as client:
    verify_all(client)  # warm
    idle = verify_all(client)
    t = time.perf_counter()
    r = client.post(f"/v1/publishers/{pid}/marks/suggestions?sample={sample}", headers=H(admin))
    post_ms = 1000 * (time.perf_counter() - t)
    assert r.status_code == 202, r.text
    url = r.headers["location"]
    busy = []
    while True:
        job = client.get(url, headers=H(admin)).json()
        if job["state"] in ("done", "failed"):
            break
        if job["state"] == "running":
            busy += verify_all(client)
        else:
            time.sleep(0.1)
    print(json.dumps({"sample": sample, "post_ms": round(post_ms, 1), "job_state": job["state"],
                      "looked_at": job["looked_at"], "suggestions": len(job["suggestions"] or []),
                      "job_s": None if not job["finished_at"] else job["finished_at"],
                      "started": job["started_at"], "created": job["created_at"],
                      "idle_ms_p50": round(statistics.median(idle), 1), "idle_ms_max": round(max(idle), 1),
                      "busy_n": len(busy), "busy_ms_p50": round(statistics.median(busy), 1) if busy else None,
                      "busy_ms_max": round(max(busy), 1) if busy else None}), flush=True)
svc.close()
