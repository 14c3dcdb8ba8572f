"""`verifier bench*`: the benchmarks behind BENCHMARKS.md (verifier.evaluation, imported lazily)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _input_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A malformed QUERIES.csv or data folder is a message and exit status 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (ValueError, KeyError, OSError) as exc:
            print(f"verifier {args.command}: {exc}", file=sys.stderr)
            return 2

    return run


def _write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
    return value


@_input_errors
def cmd_bench(args: argparse.Namespace) -> int:
    from verifier.evaluation.bench import run_bench, summarise

    baselines = [b for b in (args.baselines or "").split(",") if b]
    command = "verifier " + " ".join(sys.argv[1:])
    results = run_bench(
        args.queries, registry_extra=args.registry_extra or [], benign_variants_n=args.benign_variants,
        seed=args.seed, baselines=baselines, command=command, compare_exhaustive=args.compare_exhaustive,
        sample=args.sample, data_dir=args.data_dir, register_only=args.register_only, large_share=args.large_share,
        holdout=args.holdout, measures=not args.no_measures, marks=args.mark or [],
    )
    if args.register_only:
        print(json.dumps(results))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(summarise(results))
    print(f"results -> {args.out}")
    return 0


@_input_errors
def cmd_bench_data(args: argparse.Namespace) -> int:
    from verifier.evaluation.data import build_dev

    if args.families:
        from verifier.evaluation.families import check_inputs

        check_inputs(args.shared, args.n_distinct)  # before anything is written
    counts = build_dev(args.shared, args.out, n_per_kind=args.n_per_kind, n_identical=args.n_identical,
                       n_distinct=args.n_distinct, seed=args.seed)
    if args.distractors:
        from verifier.evaluation.data import build_distractors

        counts["distractors"] = build_distractors(args.shared, args.out, args.distractors, seed=args.seed)
    if args.families:
        from verifier.evaluation.families import build_families

        counts["families"] = build_families(args.shared, args.out, n_per_family=args.families, n_distinct=args.n_distinct, seed=args.seed)
        print(f"edit families: {args.out / 'families.csv'}")
    print(json.dumps(counts))
    print(f"queries: {args.out / 'queries.csv'} (COVERAGE alone: {args.out / 'coverage.csv'}); registry: {args.out / 'registry'}")
    return 0


def cmd_bench_index(args: argparse.Namespace) -> int:
    import faiss

    from verifier.evaluation.index import run_bench_index
    from verifier.simprov.embedding import get_embedder

    command = "verifier " + " ".join(sys.argv[1:])
    factories = tuple(args.factory or ["IVF1024,PQ16"])
    for factory in factories:
        try:
            index = faiss.index_factory(8 * 32, factory, faiss.METRIC_INNER_PRODUCT)  # fail before hours of work
            faiss.extract_index_ivf(index)
        except RuntimeError:
            print(f"error: --factory {factory!r} is not a FAISS IVF index factory string (e.g. IVF4096_HNSW32,PQ16)",
                  file=sys.stderr)
            return 2
    if args.stream and (args.rescore or not args.factory):
        print("error: --stream holds no float vectors to --rescore with, and needs a --factory (the service's own "
              "build takes the whole database)", file=sys.stderr)
        return 2
    if args.ondisk is not None and args.ondisk.exists() and any(args.ondisk.iterdir()):
        print(f"error: --ondisk {args.ondisk} is not empty (its files would be replaced)", file=sys.stderr)
        return 2
    results = run_bench_index(get_embedder(args.model), args.photos, n=args.n, n_queries=args.queries,
                              nprobes=[int(x) for x in args.nprobe.split(",")], seed=args.seed, command=command,
                              factories=factories, max_train=args.max_train, quantizer_ef=args.quantizer_ef,
                              rescore=args.rescore, kmeans=args.kmeans,
                              train_per_list=args.train_per_list, ondisk=args.ondisk, stream=args.stream,
                              cold_queries=args.cold_queries, checkpoint=lambda partial: _write_json(args.out, partial))
    _write_json(args.out, results)
    print(json.dumps({k: v for k, v in results.items() if k not in ("command",)}, indent=2))
    return 0


@_input_errors
def cmd_bench_votes(args: argparse.Namespace) -> int:
    import faiss

    from verifier.evaluation.votes import run_bench_votes

    codes = [c.strip() for c in args.codes.split(",") if c.strip()]
    for code in codes or [""]:
        try:
            faiss.index_factory(128, f"IVF16,{code}", faiss.METRIC_L2)  # before minutes of SIFT
        except RuntimeError:
            raise ValueError(f"--codes: {code!r} is not a FAISS encoding (e.g. SQ8, SQ4, PQ32, RaBitQ)") from None
    if not args.queries.is_file():
        raise ValueError(f"{args.queries} is not a QUERIES.csv file")
    if args.ondisk is not None and args.ondisk.exists() and any(args.ondisk.iterdir()):
        raise ValueError(f"--ondisk {args.ondisk} is not empty (its files would be replaced)")
    results = run_bench_votes(args.queries, args.registry_extra, codes, command="verifier " + " ".join(sys.argv[1:]),
                              min_votes=args.min_votes, ivf_from=args.ivf_from, ondisk=args.ondisk, grown=args.grown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for code, r in results["by_codes"].items():
        print(f"{code:<9} {r['bytes_per_descriptor']:>6} B/descriptor  vote p50 {r['vote_ms']['p50']} ms  first by votes "
              f"{r['first_by_votes']}/{r['queries_with_original']}  distinct with an addition "
              f"{r['distinct_with_an_addition']}/{r['distinct']}")
        for layout in ("grown", "grown_by_requests"):
            if (g := r.get(layout)) is not None:
                print(f"  {layout}: {g['kind']} {g['nlist']} lists, {g['builds']} builds  vote p50 {g['vote_ms']['p50']} ms  first "
                      f"by votes {g['first_by_votes']}/{g['queries_with_original']}  distinct with an addition "
                      f"{g['distinct_with_an_addition']}/{g['distinct']}  queries voting otherwise {g['queries_with_other_votes']}")
        for phase, row in (r.get("ondisk") or {}).items():
            if isinstance(row, dict):
                print(f"{'':<9} lists on disk, {phase}: vote p50 {row['vote_ms']['p50']} ms p95 {row['vote_ms']['p95']} ms, "
                      f"{row['queries_with_other_votes']} queries voting otherwise")
        service = r.get("ondisk_service")
        for phase in ("warm", "cold", "compacted_warm"):
            row = (service or {}).get(phase)
            if row:
                print(f"{'':<9} service layout, {service['churned_originals']} originals churned, {phase}: vote p50 "
                      f"{row['vote_ms']['p50']} ms p95 {row['vote_ms']['p95']} ms, {row['queries_with_other_votes']} "
                      f"queries voting otherwise")
    return 0


@_input_errors
def cmd_bench_views(args: argparse.Namespace) -> int:
    from verifier.evaluation.views import run_bench_views
    from verifier.service import Service
    from verifier.settings import Settings

    if not (args.data_dir / "pg").exists() and not Settings().database_url:
        raise ValueError(f"{args.data_dir} holds no registry (a `verifier bench --data-dir` one, or VERIFIER_DATABASE_URL)")
    service = Service.open(Settings(data_dir=args.data_dir))
    try:
        results = run_bench_views(service, n=args.n, seed=args.seed, command="verifier " + " ".join(sys.argv[1:]))
    finally:
        service.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


@_input_errors
def cmd_bench_ingest(args: argparse.Namespace) -> int:
    from verifier.evaluation.ingest import run_bench_ingest

    results = run_bench_ingest(args.photos, args.n, args.copies, args.seed, "verifier " + " ".join(sys.argv[1:]),
                               batch=args.batch, ray_workers=args.ray_workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for side in ("off", "on"):
        r = results[side]
        print(f"duplicate check {side:<3}  {r['originals_per_s']} originals/s  p50 {r['latency_ms']['p50']} ms  "
              f"outcomes {r['outcomes']}  stage-2 runs {r['stage2_runs']}  copies of A by B {r['copies_of_a_by_b']}")
    if results["ray"]:
        r = results["ray"]
        print(f"verifier ingest on Ray ({r['ray_workers']} workers, batch {r['batch']})  {r['originals_per_s']} originals/s")
    if results["batched"]:
        b = results["batched"]
        print(f"batch ingest ({b['batch']} per call, check on)  {b['originals_per_s']} originals/s  outcomes {b['outcomes']}")
    caught = ", ".join(f"{k} {v}/{results['copies_per_kind']}" for k, v in results["copies_caught"].items())
    print(f"slowdown {results['slowdown']:.1%}  false refusals {results['false_refusals']}  copies caught: {caught}")
    return 0


@_input_errors
def cmd_bench_store(args: argparse.Namespace) -> int:
    from verifier.evaluation.store import run_bench_store
    from verifier.settings import Settings

    results = run_bench_store(args.data_dir, Settings().database_url, args.n, args.reads, args.shortlist, args.dim,
                              args.seed, "verifier " + " ".join(sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "command"}, indent=2))
    return 0


MAX_RESULTS_BYTES = 256 << 20  # a families result of 3,820 queries is ~3 MB


def _read_results(path: Path) -> dict[str, Any]:
    """A `bench` result file, refused (exit 2) when it is too large to be one or not a JSON object."""
    with path.open("rb") as fh:
        data = fh.read(MAX_RESULTS_BYTES + 1)
    if len(data) > MAX_RESULTS_BYTES:
        raise ValueError(f"{path} is over {MAX_RESULTS_BYTES >> 20} MiB: not a bench result")
    results = json.loads(data)
    if not isinstance(results, dict):
        raise ValueError(f"{path} is not a bench result (a JSON object)")  # noqa: TRY004 (bad input: exit 2)
    return results


@_input_errors
def cmd_bench_generalisation(args: argparse.Namespace) -> int:
    from verifier.evaluation.generalisation import leave_family_out, summarise

    families = _read_results(args.results).get("families")
    if not families:
        raise ValueError(f"{args.results} has no per-family results (run `verifier bench` on a families.csv)")
    lfo = leave_family_out(families, margin=args.margin, seed=args.seed)
    if not lfo["groups"]:
        raise ValueError(f"{args.results} lacks trained or held-out families to compare")
    print(summarise(lfo))
    if args.out:
        _write_json(args.out, lfo)
    return 0


@_input_errors
def cmd_bench_compare(args: argparse.Namespace) -> int:
    from verifier.evaluation.compare import compare_runs, summarise

    comparison = compare_runs(_read_results(args.a), _read_results(args.b), listed=args.list)
    print(summarise(comparison))
    if args.out:
        _write_json(args.out, comparison)
    return 0


def cmd_bench_align(args: argparse.Namespace) -> int:
    from verifier.evaluation.align import run_bench_align

    results = run_bench_align(args.photos, args.n, args.seed, "verifier " + " ".join(sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for kind, methods in results["by_transform"].items():
        print(f"{kind:<13} " + "  ".join(f"{m}: {v['median_epe_px']} px (fail {v['fail_rate_epe_gt_3px']})" for m, v in methods.items()))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("bench", help="retrieval benchmark through the verification pipeline")
    p.add_argument("--queries", type=Path, required=True, help="CSV: query,original,kind,mask (paths relative to it)")
    p.add_argument("--registry-extra", type=Path, action="append", help="register every image under DIR as a distractor")
    p.add_argument("--benign-variants", type=int, default=0, help="add N benign-transformed copies of every query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", default="phash,pdq,backbone", help="comma list of phash,pdq,backbone ('' for none)")
    p.add_argument("--sample", type=int, default=0, help="a seeded random sample of N queries from the CSV")
    p.add_argument("--data-dir", type=Path, help="keep the bench registry here (reused by later runs) instead of a temp dir")
    p.add_argument("--register-only", action="store_true", help="register the originals and stop (to prepare --data-dir)")
    p.add_argument("--large-share", type=float, default=0.0, help="turn this share of the queries into ~12 MP JPEGs "
                   "(phone-size uploads); latency reported for them apart (total_12mp)")
    p.add_argument("--holdout", type=_non_negative, default=0,
                   help="delete N registered distractors and query benign copies of them (false matches on more photos)")
    p.add_argument("--no-measures", action="store_true",
                   help="skip the per-query AP and heatmap measures: retrieval, verdicts and latency only (timing runs)")
    p.add_argument("--compare-exhaustive", action="store_true",
                   help="also re-run stage 2 with PSEN on all its candidates (what the skip rules cost)")
    p.add_argument("--mark", type=Path, action="append",
                   help="enroll this publisher's mark file before querying (repeatable; `publishers add-mark`)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-data", help="build the dev benchmark's queries from ../shared")
    p.add_argument("--shared", type=Path, default=Path("../shared"))
    p.add_argument("--out", type=Path, required=True, help="a folder outside the repository")
    p.add_argument("--n-per-kind", type=int, default=300)
    p.add_argument("--n-identical", type=int, default=100)
    p.add_argument("--n-distinct", type=int, default=100)
    p.add_argument("--distractors", type=int, default=0, help="also write N quarter crops of train photos to OUT/distractors")
    p.add_argument("--families", type=_non_negative, default=0,
                   help="also write N queries per edit family (verifier.simprov.edits) and MICC-F220 to OUT/families.csv")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench_data)

    p = sub.add_parser("bench-index", help="an IVF-PQ index (IVF1024,PQ16 or a FAISS factory) against exact search at scale")
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the database")
    p.add_argument("--queries", type=int, default=1000, help="real photos whose transformed copies are the queries")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--model", default="auto")
    p.add_argument("--nprobe", default="8,16,32,64")
    p.add_argument("--factory", action="append",
                   help="FAISS IVF index_factory string (inner product), e.g. IVF4096_HNSW32,PQ16; repeat to compare "
                        "several on the same vectors; default: the service's index")
    p.add_argument("--train-per-list", type=_non_negative, default=0,
                   help="also cap the training sample at N x nlist (FAISS's k-means wants >= 39; 0: --max-train alone)")
    p.add_argument("--kmeans", choices=("auto", "flat", "two-level"), default="auto",
                   help="coarse quantizer training; auto: two-level from 16,384 lists on")
    p.add_argument("--ondisk", type=Path, help="also measure each index with its inverted lists in a file in this "
                                                  "(empty) folder, warm and evicted from the page cache")
    p.add_argument("--cold-queries", type=_non_negative, default=0,
                   help="time only the first N queries with the lists read from disk (0: all; 100M reads seconds each)")
    p.add_argument("--stream", action="store_true",
                   help="never hold the database (100M x 256 floats is 102 GB): draw it again on every pass")
    p.add_argument("--max-train", type=_positive, default=200_000, help="vectors the coarse quantizer and PQ are trained on")
    p.add_argument("--quantizer-ef", type=_non_negative, default=0, help="efSearch of an HNSW coarse quantizer (FAISS default 16)")
    p.add_argument("--rescore", type=_non_negative, default=0,
                   help="also re-score the top N of each search exactly with the float vectors (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_index)

    p = sub.add_parser("bench-ingest", help="registration throughput with the duplicate check on vs off, and what it catches")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--n", type=int, default=300, help="distinct test photos, registered alternately by two publishers")
    p.add_argument("--copies", type=int, default=50, help="copies per kind (resized, benign, caption) of A's photos that B then sends, re-signed")
    p.add_argument("--batch", type=int, default=0, help="also register the originals through batch ingest, N per call")
    p.add_argument("--ray-workers", type=int, default=0, help="also through `verifier ingest` on local Ray, N workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_ingest)

    p = sub.add_parser("bench-votes", help="the local-feature vote index's encodings (VERIFIER_LOCAL_CODES): memory and answers")
    p.add_argument("--queries", type=Path, required=True, help="QUERIES.csv (e.g. bench-data's families.csv)")
    p.add_argument("--registry-extra", type=Path, action="append", default=[], help="more registered images (repeatable)")
    p.add_argument("--codes", default="SQ8,SQ4,PQ32,RaBitQ", help="comma-separated FAISS encodings to compare")
    p.add_argument("--min-votes", type=_positive, default=4, help="the service's bar (matching.local.MIN_VOTES)")
    p.add_argument("--ivf-from", type=_positive, default=200_000, help="descriptors from which the index is an IVF (the service's)")
    p.add_argument("--ondisk", type=Path, help="an empty folder: each IVF is timed again with its inverted lists in a file there")
    p.add_argument("--grown", action="store_true", help="each encoding also grown as a service grows it (64 originals at a time), "
                   "with and without the registry follower's rebuilds")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_votes)

    p = sub.add_parser("bench-views", help="bytes and cold-read time per original of each VERIFIER_VIEWS_STORE")
    p.add_argument("--data-dir", type=Path, required=True, help="a registry's data dir (e.g. one `verifier bench --data-dir` kept)")
    p.add_argument("--n", type=_positive, default=300, help="originals sampled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_views)

    p = sub.add_parser("bench-store", help="PostgreSQL read time of a stage-1 shortlist's float vectors at registry scale")
    p.add_argument("--data-dir", type=Path, required=True, help="a new folder for the scratch database (or VERIFIER_DATABASE_URL)")
    p.add_argument("--n", type=_positive, default=1_000_000, help="synthetic originals, one vector each")
    p.add_argument("--reads", type=_positive, default=200, help="random shortlists read")
    p.add_argument("--shortlist", type=_positive, default=1000, help="vectors per read (VERIFIER_INDEX_RESCORE)")
    p.add_argument("--dim", type=_positive, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_store)

    p = sub.add_parser("bench-generalisation",
                       help="leave-family-out reading of a `bench` result: held-out families against the trained, with intervals")
    p.add_argument("results", type=Path, help="a `verifier bench --queries families.csv` result (JSON)")
    p.add_argument("--margin", type=float, default=0.05, help="how far under the trained mean a held-out family may be")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the reading as JSON")
    p.set_defaults(func=cmd_bench_generalisation)

    p = sub.add_parser("bench-compare", help="two `bench` results on the same queries, query for query: "
                       "gained, lost and the exact McNemar p per family")
    p.add_argument("a", type=Path, help="the result before (JSON)")
    p.add_argument("b", type=Path, help="the result after (JSON)")
    p.add_argument("--list", type=_non_negative, default=40, help="name at most N queries answered differently")
    p.add_argument("--out", type=Path, help="also write the comparison as JSON")
    p.set_defaults(func=cmd_bench_compare)

    p = sub.add_parser("bench-align", help="alignment error on known geometric transforms (test photos)")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_align)
