"""What a stage-1 shortlist's float vectors cost to read from PostgreSQL at registry scale
(`verifier bench-store`). Above IVF_THRESHOLD the service re-scores the IVF-PQ index's top
`VERIFIER_INDEX_RESCORE` (1,000) with the float vectors the `embeddings` table keeps, through
`EmbeddingStore.vectors_for`; this fills a scratch registry with N synthetic originals and one
random vector each (incompressible, like real ones) and times that call on random shortlists.

Reads are timed three times: "cold" (each shortlist's rows read for the first time since the
fill, so from the OS page cache or disk, not PostgreSQL's buffers), "warm" (the same shortlists
again) and "disk" (other shortlists, with the table's, its TOAST's and its indexes' files evicted
from the OS page cache before each read, as when the table outgrows the server's memory; only
where this process can open the server's files, i.e. the embedded database or a server on this
machine). The table's and its indexes' sizes come from PostgreSQL itself.
"""

from __future__ import annotations

import io
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text
from tqdm import tqdm

from verifier.fsutil import evict_from_page_cache
from verifier.storage.database import Database
from verifier.storage.embeddings import EmbeddingStore

MODEL_ID = "bench-store"
CHUNK = 50_000  # rows per COPY


def _fill(db: Database, n: int, dim: int, rng: np.random.Generator) -> list[uuid.UUID]:
    """N originals of one publisher, each with one float32 vector, by COPY (minutes for millions)."""
    publisher = uuid.uuid4()
    with db.session() as s:
        s.execute(text("INSERT INTO publishers (id, name) VALUES (:id, :name)"), {"id": publisher, "name": f"bench-store-{publisher}"})
    ids: list[uuid.UUID] = []
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        for start in tqdm(range(0, n, CHUNK), desc="fill", unit="chunk"):
            m = min(CHUNK, n - start)
            chunk = [uuid.uuid4() for _ in range(m)]
            ids += chunk
            originals = io.StringIO()
            for i, oid in enumerate(chunk):
                originals.write(f"{oid}\t{publisher}\t{(start + i):064x}\timage/jpeg\t1\t1\t1\tbench/{oid}\n")
            originals.seek(0)
            cur.copy_expert("COPY originals (id, publisher_id, sha256, mime, width, height, size_bytes, blob_key) FROM STDIN", originals)
            vectors = rng.standard_normal((m, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = io.StringIO()
            for oid, v in zip(chunk, vectors, strict=True):
                rows.write(f"{oid}\t{MODEL_ID}\t{dim}\t\\\\x{v.tobytes().hex()}\n")
            rows.seek(0)
            cur.copy_expert("COPY embeddings (original_id, model_id, dim, vector) FROM STDIN", rows)
            raw.commit()
        cur.execute("ANALYZE originals")
        cur.execute("ANALYZE embeddings")
        raw.commit()
    finally:
        raw.close()
    return ids


def _sizes(db: Database) -> dict[str, int]:
    with db.session() as s:
        row = s.execute(text("SELECT pg_table_size('embeddings'), pg_indexes_size('embeddings'), "
                             "pg_total_relation_size('originals')")).one()
    return {"embeddings_table_bytes": int(row[0]), "embeddings_indexes_bytes": int(row[1]), "originals_bytes": int(row[2])}


def _relation_files(db: Database) -> list[Path]:
    """The files holding `embeddings`, its TOAST table and its indexes (every 1 GB segment);
    empty when the server's data directory is not reachable from here."""
    with db.session() as s:
        try:
            root = Path(s.execute(text("SELECT current_setting('data_directory')")).scalar_one())
        except Exception:  # noqa: BLE001 - a server that will not say (no privilege): no disk phase
            return []
        rel = s.execute(text(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.oid = 'embeddings'::regclass "
            "OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'embeddings'::regclass) "
            "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'embeddings'::regclass "
            "OR indrelid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'embeddings'::regclass))")).scalars().all()
    files = []
    for r in rel:
        if r is None:
            continue
        base = root / r
        files += [base] + sorted(base.parent.glob(base.name + ".[0-9]*"), key=lambda p: int(p.suffix[1:]))
    try:
        return [f for f in files if f.is_file() and os.access(f, os.R_OK)] if hasattr(os, "posix_fadvise") else []
    except OSError:
        return []


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "mean": round(float(a.mean()), 2)}


def run_bench_store(data_dir: Path, database_url: str | None, n: int, reads: int, shortlist: int, dim: int, seed: int,
                    command: str) -> dict[str, Any]:
    if database_url is None and (data_dir / "pg").exists():
        raise ValueError(f"{data_dir} already holds a database: bench-store fills a scratch one")
    if shortlist > n:
        raise ValueError("--shortlist cannot exceed --n")
    rng = np.random.default_rng(seed)
    db = Database.open(database_url, data_dir / "pg")
    try:
        db.upgrade()
        t0 = time.perf_counter()
        ids = _fill(db, n, dim, rng)
        fill_s = time.perf_counter() - t0
        store = EmbeddingStore(db)
        picks = [[ids[i] for i in rng.choice(n, shortlist, replace=False)] for _ in range(reads)]
        files = _relation_files(db)
        timings: dict[str, list[float]] = {"cold": [], "warm": [], "disk": []}
        for phase in ("cold", "warm", "disk"):
            if phase == "disk":
                if not files:
                    del timings["disk"]
                    break
                picks = [[ids[i] for i in rng.choice(n, shortlist, replace=False)] for _ in range(reads)]
            for pick in tqdm(picks, desc=phase, unit="read"):
                if phase == "disk":
                    for f in files:
                        evict_from_page_cache(f)
                t = time.perf_counter()
                got = store.vectors_for(MODEL_ID, dim, pick)
                timings[phase].append((time.perf_counter() - t) * 1000)
                if got.shape != (shortlist, dim) or not np.all(np.abs(np.linalg.norm(got, axis=1) - 1) < 1e-4):
                    raise RuntimeError("a shortlist came back incomplete")  # every vector exists and is unit norm
        return {
            "created": datetime.now(UTC).isoformat(timespec="seconds"), "command": command, "seed": seed,
            "n": n, "dim": dim, "shortlist": shortlist, "reads": reads, "fill_s": round(fill_s, 1),
            **_sizes(db), "read_ms": {k: _pct(v) for k, v in timings.items()},
            "evicted_files": len(files), "evicted_bytes": sum(f.stat().st_size for f in files),
        }
    finally:
        db.close()
