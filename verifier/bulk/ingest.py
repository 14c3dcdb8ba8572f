"""`verifier ingest DIR|LIST.csv --publisher P`: register an archive on Ray.

Workers (Ray actors, one model copy each) read, decode, validate the C2PA manifest and embed
(`registry.prepare_original`, the same code the API runs); the driver commits each batch
(`Registry.commit_prepared`: the publisher's own copies, another publisher's content, the
signer, the near-duplicate check, one transaction). Files this publisher registered already
are skipped before any work (by digest), so a killed job is resumed by running it again and
registers nothing twice."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verifier.errors import VerifierError
from verifier.images import IMAGE_SUFFIXES
from verifier.registry import OriginalMetadata, Prepared, prepare_original
from verifier.service import Service, stage1_preparer
from verifier.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class IngestSummary:
    registered: int = 0
    existing: int = 0  # registered by this publisher before (skipped, or the same bytes twice)
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"registered": self.registered, "existing": self.existing, "refused": sum(self.refused.values()),
                "refused_by_reason": dict(self.refused)}


def list_inputs(source: Path) -> list[tuple[Path, OriginalMetadata]]:
    """A folder (walked, sorted) or a CSV with a `path` column (relative to the CSV) and
    optional `title`, `caption`, `source_url` columns."""
    if source.is_dir():
        return [(p, OriginalMetadata()) for p in sorted(source.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    try:
        with source.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{source}: not a readable CSV ({exc})") from exc
    out = []
    for line, row in enumerate(rows, start=2):
        if not (row.get("path") or "").strip():
            raise ValueError(f"{source} line {line}: no `path` (the CSV needs a path column)")
        meta = {k: row[k] for k in ("title", "caption", "source_url") if row.get(k)}
        try:
            out.append(((source.parent / row["path"]).resolve(), OriginalMetadata.from_dict(meta)))
        except VerifierError as exc:
            raise ValueError(f"{source} line {line}: {exc.detail}") from exc
    return out


class Preparer:
    """A Ray actor: one copy of the stage-1 models, the deployment's trust settings."""

    def __init__(self, settings_json: str) -> None:
        self.settings = Settings.model_validate_json(settings_json)
        self.vectors_of = stage1_preparer(self.settings)

    def prepare(self, paths: list[str]) -> list[Prepared]:
        out = []
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                out.append(Prepared(sha256="", error=VerifierError(f"cannot read {path}: {exc}")))
                continue
            out.append(prepare_original(data, self.settings, self.vectors_of))
        return out


def run_ingest(service: Service, publisher_id: Any, inputs: list[tuple[Path, OriginalMetadata]], *,
               batch: int = 32, workers: int | None = None, address: str | None = None,
               progress: Any = None) -> IngestSummary:
    import ray
    from ray.util import ActorPool

    summary = IngestSummary()
    digests = {}
    for path, _ in inputs:
        try:
            digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digests[path] = ""
    done = service.originals.registered_digests(publisher_id, [d for d in digests.values() if d])
    todo = [(p, m) for p, m in inputs if digests[p] not in done or not digests[p]]
    summary.existing += len(inputs) - len(todo)
    if progress is not None:
        progress.update(len(inputs) - len(todo))
    if not todo:
        return summary

    started_here = not ray.is_initialized()
    if started_here:
        n = workers or max(1, (os.cpu_count() or 2))
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": n}
        ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("VERIFIER_")}}, **kwargs)
    try:
        n_actors = workers or max(1, int(ray.available_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(Preparer)
        settings_json = service.settings.model_dump_json()
        pool = ActorPool([actor.remote(settings_json) for _ in range(max(1, n_actors))])
        chunks = [todo[k : k + batch] for k in range(0, len(todo), batch)]
        results: Iterator[list[Prepared]] = pool.map(lambda a, chunk: a.prepare.remote([str(p) for p, _ in chunk]), chunks)
        for chunk, prepared in zip(chunks, results, strict=True):
            datas = [p.read_bytes() for p, _ in chunk]
            outcomes = service.registry.commit_prepared(prepared, [m for _, m in chunk], datas, publisher_id)
            for (path, _), outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, VerifierError):
                    summary.refused[outcome.slug] += 1
                    summary.outcomes.append({"file": str(path), "outcome": "refused", "reason": outcome.slug,
                                             "detail": outcome.detail})
                elif outcome.created:
                    summary.registered += 1
                    summary.outcomes.append({"file": str(path), "outcome": "registered", "id": str(outcome.original.id)})
                else:
                    summary.existing += 1
                    summary.outcomes.append({"file": str(path), "outcome": "existing", "id": str(outcome.original.id)})
            if progress is not None:
                progress.update(len(chunk))
    finally:
        if started_here:
            ray.shutdown()
    return summary
