"""`verifier reembed`: recompute every original's stage-1 vectors (after a model update) on
Ray workers, from the stored originals, without taking the registry offline: the old vectors
serve until the job ends, each batch is written in one transaction, then every API process
rebuilds its index from the database (a `rebuild` change that all of them follow)."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from verifier.errors import VerifierError
from verifier.images import load_image
from verifier.service import Service, stage1_preparer
from verifier.settings import Settings
from verifier.storage.models import Original

log = logging.getLogger(__name__)


class Reembedder:
    """A Ray actor: the configured stage-1 models, applied to stored originals exactly as at
    registration (the same decode and working size)."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.vectors_of = stage1_preparer(self.settings)

    def vectors(self, items: list[tuple[str, str]]) -> list[tuple[str, np.ndarray | None, np.ndarray | None, str | None]]:
        out: list[tuple[str, np.ndarray | None, np.ndarray | None, str | None]] = []
        for original_id, path in items:
            try:
                data = Path(path).read_bytes()
                _, image = load_image(data, max_bytes=len(data) + 1, max_pixels=10**10, max_side=self.settings.work_max_side)
                v = self.vectors_of(image)
                out.append((original_id, v.vector, v.regions, None))
            except (OSError, VerifierError) as exc:
                out.append((original_id, None, None, str(exc)))
        return out


def run_reembed(service: Service, *, batch: int = 64, workers: int | None = None, address: str | None = None,
                progress: Any = None) -> dict[str, Any]:
    import ray
    from ray.util import ActorPool

    with service.db.session() as session:
        rows = [(str(oid), str(service.originals.blobs.path(key)))
                for oid, key in session.execute(select(Original.id, Original.blob_key).order_by(Original.created_at))]
    search = service.search
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": workers or os.cpu_count() or 2}
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("VERIFIER_")}}, **kwargs)
    done, failed = 0, []
    try:
        n_actors = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(Reembedder)
        pool = ActorPool([actor.remote(service.settings.model_dump_json()) for _ in range(max(1, n_actors))])
        chunks = [rows[k : k + batch] for k in range(0, len(rows), batch)]
        for result in pool.map(lambda a, chunk: a.vectors.remote(chunk), chunks):
            ok = [(uuid.UUID(oid), v, r) for oid, v, r, err in result if err is None]
            failed += [(oid, err) for oid, v, r, err in result if err is not None]
            search.store.replace(search.embedder.model_id, [(oid, v) for oid, v, _ in ok if v is not None])
            if search.regions is not None:
                search.store.replace(search.regions.model_id, [(oid, r) for oid, _, r in ok if r is not None])
            done += len(ok)
            if progress is not None:
                progress.update(len(result))
    finally:
        if started_here:
            ray.shutdown()
    service.rebuild_search()  # every other process rebuilds from the new vectors too
    if failed:
        log.warning("%d originals could not be re-embedded: %s", len(failed), failed[:5])
    return {"reembedded": done, "failed": len(failed), "models": search.method}
