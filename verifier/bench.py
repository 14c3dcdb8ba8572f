"""`verifier bench`: retrieval and decision benchmarks that drive the product's own pipeline.

Every `original` of QUERIES.csv (and every image under each --registry-extra DIR) is
registered through the registry's ingest path into a throwaway embedded registry; every
query goes through `VerificationPipeline.verify`, exactly as `POST /v1/verify` does. The
baselines (pHash, PDQ, the untrained backbone) rank the same registry for the same queries
in the same run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from verifier import augment
from verifier.bench_pairs import PairwiseMeasures

KINDS = ("identical", "benign", "manip", "manip+benign", "distinct")
AFTER_BENIGN = {"identical": "benign", "benign": "benign", "manip": "manip+benign", "manip+benign": "manip+benign", "distinct": "distinct"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif"}
KS = (1, 10, 100)


@dataclass
class Query:
    name: str
    data: bytes
    kind: str
    original: Path | None
    mask: Image.Image | None


def read_queries(csv_path: Path) -> list[Query]:
    base = csv_path.parent
    out = []
    with csv_path.open() as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            kind = row["kind"].strip()
            if kind not in KINDS:
                raise ValueError(f"row {i + 2}: kind {kind!r} is not one of {', '.join(KINDS)}")
            original = (base / row["original"]).resolve() if row.get("original", "").strip() else None
            if (kind == "distinct") != (original is None):
                raise ValueError(f"row {i + 2}: `original` must be empty exactly for distinct queries")
            mask = None
            if row.get("mask", "").strip():
                mask = Image.open(base / row["mask"]).convert("L")
            path = base / row["query"]
            out.append(Query(row["query"], path.read_bytes(), kind, original, mask))
    return out


def benign_variants(queries: list[Query], n: int, seed: int) -> list[Query]:
    """n benign-transformed copies of every query; masks follow the geometry."""
    rng = random.Random(seed)
    out = []
    for q in queries:
        img = Image.open(io.BytesIO(q.data)).convert("RGB")
        mask = q.mask.resize(img.size, Image.NEAREST) if q.mask is not None else Image.new("L", img.size, 0)
        for v in range(n):
            s = augment.benign_after(augment.Sample(img, mask, []), rng)
            buf = io.BytesIO()
            s.image.save(buf, "PNG")
            out.append(Query(f"{q.name}#benign{v}", buf.getvalue(), AFTER_BENIGN[q.kind], q.original,
                             s.mask if q.mask is not None else None))
    return out


def extra_images(dirs: Iterable[Path]) -> list[Path]:
    return sorted(p for d in dirs for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def ir_at_k(ranks: list[float | None]) -> dict[str, float | None]:
    """ranks: 1-based rank of the true original among the candidates (None: not found)."""
    if not ranks:
        return {f"IR@{k}": None for k in KS}
    return {f"IR@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / len(ranks), 4) for k in KS}


def expected_rank(scores: np.ndarray, true_index: int) -> float:
    """1-based rank of `true_index` (higher score = better) with ties broken at random:
    1 + items strictly better + half of the other items that tie with it. Coarse codes
    (hashes) tie often; counting ties as wins would flatter them."""
    s = scores[true_index]
    ties = int((scores == s).sum()) - 1
    return 1 + int((scores > s).sum()) + ties / 2


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None}
    arr = np.array(values)
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p95": round(float(np.percentile(arr, 95)), 2)}


# -- baselines --------------------------------------------------------------------------


class HashBaseline:
    """Rank by Hamming distance of a perceptual hash (smaller = better)."""

    def __init__(self, name: str, fn: Callable[[Image.Image], np.ndarray]) -> None:
        self.name, self.fn = name, fn

    def codes(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([self.fn(im) for im in tqdm(images, desc=self.name, unit="img", leave=False)])

    @staticmethod
    def rank(registry: np.ndarray, query: np.ndarray, true_index: int) -> float:
        dist = (registry != query[None, :]).sum(1)
        return expected_rank(-dist.astype(np.float64), true_index)


def phash_bits(img: Image.Image) -> np.ndarray:
    import imagehash

    return np.asarray(imagehash.phash(img).hash, dtype=bool).reshape(-1)


def pdq_bits(img: Image.Image) -> np.ndarray:
    import pdqhash

    bits, _quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return np.asarray(bits, dtype=bool).reshape(-1)


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


# -- the run ----------------------------------------------------------------------------


def run_bench(
    queries_csv: Path,
    *,
    registry_extra: list[Path],
    benign_variants_n: int,
    seed: int,
    baselines: list[str],
    data_dir: Path | None = None,
    embedder: Any = None,
    command: str = "",
    compare_exhaustive: bool = False,
    sample: int = 0,
    register_only: bool = False,
) -> dict[str, Any]:
    from verifier.embedding import BackboneEmbedder
    from verifier.errors import VerifierError
    from sqlalchemy import select

    from verifier.db.models import Publisher
    from verifier.keys import create_publisher
    from verifier.service import Service
    from verifier.settings import Settings, UnsignedPolicy

    queries = read_queries(queries_csv)
    if sample and sample < len(queries):
        queries = random.Random(seed).sample(queries, sample)
    if benign_variants_n:
        queries += benign_variants(queries, benign_variants_n, seed)
    originals = sorted({q.original for q in queries if q.original is not None})
    extras = extra_images(registry_extra)

    tmp = tempfile.TemporaryDirectory(prefix="verifier-bench-") if data_dir is None else None
    root = Path(tmp.name) if tmp else data_dir
    assert root is not None
    settings = Settings(data_dir=root, database_url=None, unsigned_originals=UnsignedPolicy.ALLOW,
                        max_upload_bytes=512 * 2**20, max_image_pixels=400_000_000, verify_requires_key=False)
    service = Service.open(settings, embedder=embedder)
    try:
        with service.db.session() as session:
            # one publisher per bench registry, so that a kept --data-dir is reused, not doubled
            publisher = session.scalar(select(Publisher).where(Publisher.name == "bench"))
            if publisher is None:
                publisher, _ = create_publisher(session, "bench")
        path_to_id: dict[Path, str] = {}
        id_to_bytes: dict[str, bytes] = {}
        skipped: list[str] = []
        original_set = set(originals)
        for path in tqdm([*originals, *[p for p in extras if p.resolve() not in original_set]], desc="register", unit="img"):
            data = path.read_bytes()
            try:
                oid = str(service.registry.register(data, publisher.id).original.id)
            except VerifierError as exc:
                skipped.append(f"{path}: {exc.detail}")
                continue
            path_to_id[path.resolve()] = oid
            id_to_bytes.setdefault(oid, data)

        if register_only:
            return {"n_registry": len(set(path_to_id.values())), "registry_skipped": skipped}
        ranks: dict[str, list[int | None]] = defaultdict(list)
        ranks12: dict[str, list[int | None]] = defaultdict(list)
        matched_exhaustive: dict[str, list[bool]] = defaultdict(list)
        stage2_ran: dict[str, list[int]] = defaultdict(list)
        pipeline = service.pipeline
        pairwise = PairwiseMeasures() if pipeline.reranker is not None else None
        exhaustive = None
        if compare_exhaustive and pipeline.reranker is not None:
            from verifier.rerank import Reranker, Stage2Policy

            r = pipeline.reranker
            exhaustive = Reranker(r.psen, r.reorderer, r.psen_sha256, r.reorder_sha256, Stage2Policy(max_pairs=r.policy.max_pairs, exhaustive=True))
        matched: dict[str, list[bool]] = defaultdict(list)
        verdicts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        timings: dict[str, list[float]] = defaultdict(list)
        query_images: list[Image.Image] = []
        true_ids: list[str | None] = []
        for q in tqdm(queries, desc="verify", unit="query"):
            started = time.perf_counter()
            signed = service.pipeline.verify(q.data)
            timings["total"].append((time.perf_counter() - started) * 1000)
            for stage, ms in signed.trace["timings_ms"].items():
                timings[stage].append(ms)
            report = signed.report
            verdicts[q.kind][report["verdict"]] += 1
            true_id = path_to_id.get(q.original.resolve()) if q.original else None
            true_ids.append(true_id)
            got = report["match"]["original_id"] if report["match"] else None
            if q.kind == "distinct":
                matched[q.kind].append(got is not None)
            else:
                order = [c for c, _ in signed.trace["candidates"]]
                ranks[q.kind].append(order.index(true_id) + 1 if true_id in order else None)
                matched[q.kind].append(got == true_id)
                if "stage2" in signed.trace:
                    order12 = signed.trace["stage2"]["order"]
                    ranks12[q.kind].append(order12.index(true_id) + 1 if true_id in order12 else None)
                    stage2_ran[q.kind].append(len(signed.trace["stage2"]["psen"]))
                else:  # decided before stage 2 (exact bytes): the pipeline's answer is its rank 1
                    ranks12[q.kind].append(1 if got == true_id else (order.index(true_id) + 1 if true_id in order else None))
            if pairwise is not None:
                _pairwise_measures(pairwise, service, q, signed, true_id, got)
            if exhaustive is not None and signed.trace.get("stage2") is not None:
                ex = _exhaustive_choice(service, exhaustive, q, signed)
                matched_exhaustive[q.kind].append(ex == true_id if q.kind != "distinct" else ex is not None)
            if baselines:
                query_images.append(_decode(q.data))

        registry_ids = list(id_to_bytes)
        baseline_results = _run_baselines(baselines, registry_ids, id_to_bytes, query_images, true_ids,
                                           [q.kind for q in queries], embedder_factory=BackboneEmbedder)

        kinds_out: dict[str, Any] = {}
        for kind in KINDS:
            n = sum(1 for q in queries if q.kind == kind)
            if n == 0:
                continue
            entry: dict[str, Any] = {"n": n, "verdicts": dict(verdicts[kind])}
            if kind != "distinct":
                entry["stage1"] = ir_at_k(ranks[kind])
                entry["stage12"] = ir_at_k(ranks12[kind]) if pairwise is not None else None
                if stage2_ran[kind]:
                    entry["stage2_psen_pairs_mean"] = round(float(np.mean(stage2_ran[kind])), 3)
                entry["matched_true_original"] = round(float(np.mean(matched[kind])), 4)
                entry["baselines"] = {name: res[kind] for name, res in baseline_results.items() if kind in res}
            if matched_exhaustive[kind]:
                entry["matched_true_original_exhaustive_stage2"] = round(float(np.mean(matched_exhaustive[kind])), 4)
            kinds_out[kind] = entry
        distinct = matched.get("distinct", [])
        return {
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": command,
            "seed": seed,
            "model": {"stage1": service.search.embedder.model_id, "index": service.search.index.kind,
                      "decision_threshold": service.search.calibration.threshold},
            "n_registry": len(registry_ids),
            "n_queries": len(queries),
            "registry_skipped": skipped,
            "kinds": kinds_out,
            "false_match_rate": round(float(np.mean(distinct)), 4) if distinct else None,
            "latency_ms": {stage: percentiles(v) for stage, v in timings.items()},
            **(pairwise.results() if pairwise is not None else {"ap_same_different": None, "ap_benign_manip": None, "heatmap_iou": None}),
            "stages": [m.model_dump() for m in pipeline._models()],
        }
    finally:
        service.close()
        if tmp:
            tmp.cleanup()


def _pairwise_measures(pm: PairwiseMeasures, service: Any, q: Query, signed: Any, true_id: str | None, got: str | None) -> None:
    """Table 3-5 measures for one query (see verifier.bench_pairs), through the service's parts."""
    import uuid

    pipe = service.pipeline
    trace = signed.trace
    image = _decode(q.data)
    qvec = trace["query_vector"]  # the pipeline's own stage-1 vector of this query
    hardest = trace["candidates"][0][0] if trace["candidates"] else None
    true_view = pipe._view(uuid.UUID(true_id)) if true_id else None
    hard_view = pipe._view(uuid.UUID(hardest)) if hardest and q.kind == "distinct" else None
    tv = service.search.vectors_for([uuid.UUID(true_id)])[0] if true_id else None
    hv = service.search.vectors_for([uuid.UUID(hardest)])[0] if hard_view is not None else None
    heat = trace.get("stage3", {}).get("query_heat")
    pm.add(kind=q.kind, group="coverage" if "coverage" in q.name else "synthetic", query=image, true_view=true_view,
           hardest_view=hard_view, query_vector=qvec, true_vector=tv, hardest_vector=hv, reranker=pipe.reranker,
           change=pipe.change, mask=q.mask, verdict=signed.report["verdict"], matched_true=got == true_id and got is not None,
           pipeline_heat=heat)


def _exhaustive_choice(service: Any, reranker: Any, q: Query, signed: Any) -> str | None:
    """What stage 2 would have chosen with PSEN on every one of its max_pairs candidates."""
    import uuid

    from verifier.pairs import View

    pipe = service.pipeline
    image = _decode(q.data)
    ids = [uuid.UUID(c) for c, _ in signed.trace["candidates"]]
    cos = np.array([s for _, s in signed.trace["candidates"]], np.float32)
    res = reranker.rerank(View.of(image), signed.trace["query_vector"], cos, service.search.calibration.threshold,
                          pipe._view, service.search.vectors_for, ids)
    return str(ids[res.choice]) if res.choice is not None else None


def _run_baselines(
    names: list[str], registry_ids: list[str], id_to_bytes: dict[str, bytes], query_images: list[Image.Image],
    true_ids: list[str | None], kinds: list[str], embedder_factory: Callable[[], Any],
) -> dict[str, dict[str, dict[str, float | None]]]:
    if not names:
        return {}
    registry_images = [_decode(id_to_bytes[i]) for i in tqdm(registry_ids, desc="decode registry", unit="img", leave=False)]
    index_of = {oid: i for i, oid in enumerate(registry_ids)}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for name in names:
        ranks: dict[str, list[float | None]] = defaultdict(list)
        if name in ("phash", "pdq"):
            baseline = HashBaseline(name, phash_bits if name == "phash" else pdq_bits)
            reg, qs = baseline.codes(registry_images), baseline.codes(query_images)
            for q, true_id, kind in zip(qs, true_ids, kinds):
                if kind != "distinct" and true_id is not None:
                    ranks[kind].append(baseline.rank(reg, q, index_of[true_id]))
        elif name == "backbone":
            emb = embedder_factory()
            reg = np.concatenate([emb.embed(registry_images[i : i + 32]) for i in tqdm(range(0, len(registry_images), 32), desc="backbone registry", leave=False)])
            qs = np.concatenate([emb.embed(query_images[i : i + 32]) for i in tqdm(range(0, len(query_images), 32), desc="backbone queries", leave=False)])
            sims = qs @ reg.T
            for row, true_id, kind in zip(sims, true_ids, kinds):
                if kind != "distinct" and true_id is not None:
                    ranks[kind].append(expected_rank(row, index_of[true_id]))
        else:
            raise ValueError(f"unknown baseline {name!r} (phash, pdq, backbone)")
        out[name] = {kind: ir_at_k(r) for kind, r in ranks.items()}
    return out


def summarise(results: dict[str, Any]) -> str:
    lines = [f"registry {results['n_registry']}, queries {results['n_queries']}, model {results['model']['stage1']}"]
    for kind, entry in results["kinds"].items():
        if kind == "distinct":
            lines.append(f"  distinct      n={entry['n']:<5} false_match_rate={results['false_match_rate']}")
            continue
        s1 = entry["stage1"]
        base = "  ".join(f"{name} IR@1={v['IR@1']}" for name, v in entry["baselines"].items())
        lines.append(f"  {kind:<13} n={entry['n']:<5} IR@1={s1['IR@1']} IR@10={s1['IR@10']} IR@100={s1['IR@100']}  {base}")
        if entry.get("stage12"):
            s12 = entry["stage12"]
            lines.append(f"  {'':<13} stage1+2 IR@1={s12['IR@1']} IR@10={s12['IR@10']} IR@100={s12['IR@100']}  matched={entry['matched_true_original']}")
    for section in ("ap_same_different", "ap_benign_manip"):
        if results.get(section):
            lines.append(f"  {section}: " + ", ".join(f"{k} {v['ap']}" for k, v in results[section].items()))
    for group, methods in (results.get("heatmap_iou") or {}).items():
        lines.append(f"  heatmap IoU [{group}]: " + ", ".join(f"{m} {v['mean_iou']} (n={v['n']})" for m, v in methods.items()))
    total = results["latency_ms"].get("total", {})
    lines.append(f"  latency total p50={total.get('p50')} ms p95={total.get('p95')} ms; stage1 {results['latency_ms'].get('stage1')}")
    return "\n".join(lines)
