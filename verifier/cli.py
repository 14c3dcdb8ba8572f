"""`verifier` command line: serve, database, publishers, keys, register, inspect."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from verifier import __version__

log = logging.getLogger("verifier")


def _settings(args: argparse.Namespace) -> Any:
    from verifier.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return Settings(**overrides)


def _open_service(args: argparse.Namespace) -> Any:
    from verifier.service import Service

    return Service.open(_settings(args))


# -- serve ------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from verifier.api import create_app

    settings = _settings(args)
    host = args.host or settings.host
    port = args.port or settings.port
    log.info("provenance-verifier %s on http://%s:%s (data dir %s, database %s)", __version__, host, port,
             settings.data_dir.resolve(), "external" if settings.database_url else "embedded PostgreSQL")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())
    return 0


# -- db ---------------------------------------------------------------------------------


def cmd_db(args: argparse.Namespace) -> int:
    from verifier.db import Database

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.open(settings.database_url, settings.pg_dir)
    try:
        if args.db_command == "upgrade":
            db.upgrade(args.revision)
        elif args.db_command == "downgrade":
            db.downgrade(args.revision)
        from sqlalchemy import text

        with db.engine.connect() as conn:
            has_table = "alembic_version" in db.table_names()
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar() if has_table else None
        print(f"database at revision: {current or 'base (empty)'}")
    finally:
        db.close()
    return 0


# -- publishers and keys ----------------------------------------------------------------


def cmd_publishers(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from verifier.db.models import Publisher
    from verifier.keys import create_publisher

    service = _open_service(args)
    try:
        with service.db.session() as session:
            if args.publishers_command == "add":
                publisher, key = create_publisher(session, args.name)
                print(f"publisher: {publisher.name} ({publisher.id})")
                print(f"api key:   {key}")
                print("Store this key now: it is shown once and only its hash is kept.", file=sys.stderr)
            else:
                for p in session.scalars(select(Publisher).order_by(Publisher.created_at)):
                    print(f"{p.id}  {p.name}  {p.created_at:%Y-%m-%d %H:%M}")
    finally:
        service.close()
    return 0


def cmd_api_keys(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from verifier.db.models import Publisher
    from verifier.keys import Scope, issue_key

    service = _open_service(args)
    try:
        with service.db.session() as session:
            publisher = None
            if args.scope == Scope.PUBLISHER.value:
                if not args.publisher:
                    print("publisher keys need --publisher NAME", file=sys.stderr)
                    return 2
                publisher = session.scalar(select(Publisher).where(Publisher.name == args.publisher))
                if publisher is None:
                    print(f"no publisher named {args.publisher!r}", file=sys.stderr)
                    return 2
            _, key = issue_key(session, Scope(args.scope), publisher, label=args.label)
            print(key)
            print("Store this key now: it is shown once and only its hash is kept.", file=sys.stderr)
    finally:
        service.close()
    return 0


# -- register ---------------------------------------------------------------------------


def cmd_register(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from tqdm import tqdm

    from verifier.db.models import Publisher
    from verifier.errors import VerifierError
    from verifier.registry import OriginalMetadata

    service = _open_service(args)
    failures = 0
    try:
        with service.db.session() as session:
            publisher = session.scalar(select(Publisher).where(Publisher.name == args.publisher))
        if publisher is None:
            print(f"no publisher named {args.publisher!r} (create it with `verifier publishers add`)", file=sys.stderr)
            return 2
        for path in tqdm(args.files, desc="register", unit="img", disable=len(args.files) < 5 or args.json):
            try:
                result = service.registry.register(
                    Path(path).read_bytes(), publisher.id, OriginalMetadata(title=args.title)
                )
            except VerifierError as exc:
                failures += 1
                line = {"file": str(path), "error": exc.problem()}
            except OSError as exc:
                failures += 1
                line = {"file": str(path), "error": {"title": "cannot read file", "detail": str(exc)}}
            else:
                o = result.original
                line = {"file": str(path), "id": str(o.id), "created": result.created,
                        "sha256": o.sha256, "c2pa_state": o.validation_state}
            if args.json:
                print(json.dumps(line))
            elif "error" in line:
                print(f"REFUSED {path}: {line['error'].get('detail')}")
            else:
                verb = "registered" if line["created"] else "already registered"
                print(f"{verb} {path} -> {line['id']} (C2PA {line['c2pa_state'] or 'absent'})")
    finally:
        service.close()
    return 1 if failures else 0


# -- inspect ----------------------------------------------------------------------------


def inspect_file(path: Path, trust: Any) -> dict[str, Any]:
    """The `inspect --json` object for one file (never raises for unreadable input)."""
    from manifests import ManifestError, read_manifest

    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"error": {"type": "io_error", "message": str(exc)}}
    try:
        return read_manifest(data, trust=trust).to_dict()
    except ManifestError as exc:
        return {"error": {"type": exc.kind, "message": str(exc)}}


def _print_summary(path: Path, result: dict[str, Any]) -> None:
    print(f"{path}")
    if "error" in result:
        print(f"  error: {result['error']['type']}: {result['error']['message']}")
        return
    if not result["present"]:
        print("  no C2PA manifest")
        return
    print(f"  state: {result['state']}   manifests: {result['manifests']}")
    if result["failure_codes"]:
        print(f"  failures: {', '.join(result['failure_codes'])}")
    am = result.get("active_manifest") or {}
    if am:
        signer = am.get("signer") or {}
        print(f"  title: {am.get('title')}   generator: {am.get('claim_generator')}")
        print(f"  signed by: {signer.get('common_name')} / {signer.get('issuer')} at {signer.get('signing_time')}")
        for act in am.get("actions") or []:
            dst = f" ({act['digital_source_type'].rsplit('/', 1)[-1]})" if act.get("digital_source_type") else ""
            print(f"  action: {act['action']}{dst}")

    def tree(items: list[dict[str, Any]], depth: int) -> None:
        for ing in items:
            state = ing.get("state") or "no manifest"
            fails = f" [{', '.join(ing['failure_codes'])}]" if ing.get("failure_codes") else ""
            print(f"  {'  ' * depth}- ingredient {ing.get('title')} ({ing.get('relationship')}): {state}{fails}")
            tree(ing.get("ingredients") or [], depth + 1)

    tree(result.get("ingredients") or [], 0)


def cmd_inspect(args: argparse.Namespace) -> int:
    from manifests import TrustConfig

    settings = _settings(args)
    trust = settings.trust
    if args.trust_anchors or args.c2pa_settings:
        trust = TrustConfig.from_files(
            trust_anchors=args.trust_anchors or settings.trust_anchors,
            allowed_list=settings.allowed_list,
            trust_config=settings.trust_config,
            c2pa_settings=args.c2pa_settings or settings.c2pa_settings,
            remote_manifest_fetch=settings.remote_manifest_fetch,
        )
    for path in args.files:
        result = inspect_file(Path(path), trust)
        if args.json:
            print(json.dumps(result if len(args.files) == 1 else {"file": str(path), **result}))
        else:
            _print_summary(Path(path), result)
    return 0


# -- verification, reports, keys, demo --------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    from verifier.errors import VerifierError

    service = _open_service(args)
    try:
        try:
            signed = service.pipeline.verify(Path(args.image).read_bytes())
        except VerifierError as exc:
            print(json.dumps({"error": exc.problem()}) if args.json else f"refused: {exc.detail}")
            return 1
    finally:
        service.close()
    if args.json:
        print(json.dumps(signed.envelope()))
        return 0
    report = signed.report
    print(f"{args.image}: {report['verdict']}")
    print(f"  {report['summary']}")
    if report["match"]:
        m = report["match"]
        print(f"  match: {m['original_id']} ({m['publisher']['name']}, registered {m['registered_at']}) via {m['method']}")
    if report["recovered_manifest"]:
        r = report["recovered_manifest"]
        print(f"  recovered manifest: {r['state']} (re-validated {r['revalidated_at']})")
    print(f"  report id: {report['id']}")
    return 0


def _load_jwks(source: str | None, args: argparse.Namespace) -> dict[str, Any]:
    if source is None:
        from verifier.report_keys import KeyRing

        settings = _settings(args)
        return KeyRing(settings.keys_dir, settings.report_signing_key_file).jwks()
    if source.startswith(("http://", "https://")):
        import urllib.request

        with urllib.request.urlopen(source, timeout=10) as response:
            return json.loads(response.read())
    return json.loads(Path(source).read_text())


def cmd_report(args: argparse.Namespace) -> int:
    from verifier.report import canonical_json
    from verifier.report_keys import SignatureError, verify_compact

    text = Path(args.file).read_text().strip()
    envelope = json.loads(text) if text.startswith("{") else {"jws": text}
    try:
        header, payload = verify_compact(envelope["jws"], _load_jwks(args.jwks, args))
    except (SignatureError, KeyError) as exc:
        print(f"INVALID: {exc}")
        return 1
    report = json.loads(payload)
    if "report" in envelope and canonical_json(envelope["report"]) != payload:
        print("INVALID: the signature is good but the `report` beside it differs from what was signed")
        return 1
    print(f"OK: signed by key {header['kid']}; report {report['id']} verdict {report['verdict']}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from verifier.report_keys import KeyRing

    settings = _settings(args)
    ring = KeyRing(settings.keys_dir, settings.report_signing_key_file)
    if args.keys_command == "rotate":
        key = ring.rotate()
        print(f"new current key: {key.kid} (the previous one stays in the JWKS)")
    else:
        print(json.dumps(ring.jwks(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from manifests.signing import generate_test_ca, issue_signer
    from verifier.demo import run_demo
    from verifier.service import Service
    from verifier.settings import Settings

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    # A throwaway CA that this demo (only) trusts; its data stays apart from a real registry.
    ca = generate_test_ca("provenance-verifier Demo Root CA")
    signer = issue_signer(ca, "Demo Newsroom Photo Desk", organization="Demo Newsroom")
    ca_pem = out / "demo-ca.pem"
    ca_pem.write_bytes(ca.cert_pem)
    service = Service.open(Settings(data_dir=args.data_dir or out / "var", trust_anchors=ca_pem))
    try:
        rows = run_demo(service, out, args.images, signer)
    finally:
        service.close()
    width = max(len(r["case"]) for r in rows)
    for r in rows:
        print(f"{r['case']:<{width}}  {r['verdict']:<22} {r['description']}")
    print(f"\nsigned reports in {out / 'reports'}; check one offline with:")
    print(f"  verifier report verify {out / 'reports' / 'stripped-copy.json'} --jwks {out / 'jwks.json'}")
    return 0


# -- index ------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    from sqlalchemy import delete

    from verifier.db.models import Embedding
    from verifier.service import Service

    settings = _settings(args)
    service = Service.open(settings)
    try:
        search = service.search
        if args.reembed:
            with service.db.session() as session:
                session.execute(delete(Embedding).where(Embedding.model_id == search.embedder.model_id))
        if search.index_path is not None:
            for suffix in (".faiss", ".ids", ".json"):
                search.index_path.with_suffix(suffix).unlink(missing_ok=True)
        n = search.load(service.registry.original_bytes)
        print(f"index rebuilt from the database: {n} vectors of {search.embedder.model_id} ({search.index.kind})")
    finally:
        service.close()
    return 0


# -- benchmarks -------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from verifier.bench import run_bench, summarise

    baselines = [b for b in (args.baselines or "").split(",") if b]
    command = "verifier " + " ".join(sys.argv[1:])
    results = run_bench(
        args.queries, registry_extra=args.registry_extra or [], benign_variants_n=args.benign_variants,
        seed=args.seed, baselines=baselines, command=command, compare_exhaustive=args.compare_exhaustive,
        sample=args.sample, data_dir=args.data_dir, register_only=args.register_only,
    )
    if args.register_only:
        print(json.dumps(results))
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(summarise(results))
    print(f"results -> {args.out}")
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    from verifier.bench_data import build_dev

    counts = build_dev(args.shared, args.out, n_per_kind=args.n_per_kind, n_identical=args.n_identical,
                       n_distinct=args.n_distinct, seed=args.seed)
    if args.distractors:
        from verifier.bench_data import build_distractors

        counts["distractors"] = build_distractors(args.shared, args.out, args.distractors, seed=args.seed)
    print(json.dumps(counts))
    print(f"queries: {args.out / 'queries.csv'} (COVERAGE alone: {args.out / 'coverage.csv'}); registry: {args.out / 'registry'}")
    return 0


def cmd_bench_index(args: argparse.Namespace) -> int:
    from verifier.bench_index import run_bench_index
    from verifier.embedding import get_embedder

    command = "verifier " + " ".join(sys.argv[1:])
    results = run_bench_index(get_embedder(args.model), args.photos, n=args.n, n_queries=args.queries,
                              nprobes=[int(x) for x in args.nprobe.split(",")], seed=args.seed, command=command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("command",)}, indent=2))
    return 0


def cmd_bench_align(args: argparse.Namespace) -> int:
    from verifier.bench_align import run_bench_align

    results = run_bench_align(args.photos, args.n, args.seed, "verifier " + " ".join(sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for kind, methods in results["by_transform"].items():
        print(f"{kind:<13} " + "  ".join(f"{m}: {v['median_epe_px']} px (fail {v['fail_rate_epe_gt_3px']})" for m, v in methods.items()))
    return 0


# -- training ---------------------------------------------------------------------------


def _cmd_train_pairs(args: argparse.Namespace) -> int:
    import torch

    logging.getLogger("verifier").setLevel(logging.INFO)
    command = "verifier " + " ".join(sys.argv[1:])
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_command == "pairs-data":
        from verifier.train_pairs import build_pairs

        info = build_pairs(args.photos, args.out, limit=args.limit or 0, seed=args.seed, workers=args.workers)
        print(json.dumps({**info, "command": command}, indent=2))
        return 0
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    if args.train_command == "reorder":
        from verifier.train_reorder import ReorderConfig, train_reorderer

        result = train_reorderer(ReorderConfig(photos=args.photos, out=args.out, queries=args.queries, seed=args.seed))
    else:
        from verifier.train_pairs import PairTrainConfig, train_pairs

        result = train_pairs(PairTrainConfig(data=args.data, out=args.out, model=args.train_command, epochs=args.epochs,
                                             batch_size=args.batch, lr=args.lr, seed=args.seed, device=device))
    result["command"] = command
    result["device"] = device_name
    from verifier.train_pairs import write_record

    record = args.out.with_suffix(".train.json")
    write_record(result, record)
    print(json.dumps({k: v for k, v in result.items() if k in ("history", "seconds", "val")}, indent=2))
    print(f"weights -> {args.out}; training record -> {record}")
    return 0



def cmd_train(args: argparse.Namespace) -> int:
    import torch

    if args.train_command in ("pairs-data", "psen", "change", "reorder"):
        return _cmd_train_pairs(args)

    from verifier.train_embed import TrainConfig, train, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig(
        photos=args.photos, out=args.out, mode=args.mode, size=args.size, views=args.views, epochs=args.epochs,
        batch_images=args.batch, lr=args.lr, freeze_blocks=args.freeze_blocks, limit=args.limit, seed=args.seed,
        device=device,
    )
    logging.getLogger("verifier").setLevel(logging.INFO)
    result = train(cfg)
    result["command"] = "verifier " + " ".join(sys.argv[1:])
    result["device"] = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    report = args.out.with_suffix(".train.json")
    write_report(result, report)
    print(json.dumps({"val_before": result["val_before"], "val_after": result["val_after"], "seconds": result["seconds"]}, indent=2))
    print(f"weights -> {args.out}; training record -> {report}")
    return 0


# -- calibrate --------------------------------------------------------------------------


def cmd_calibrate(args: argparse.Namespace) -> int:
    from importlib import resources

    from verifier.calibrate import calibrate, write
    from verifier.embedding import get_embedder

    embedder = get_embedder(args.model)
    command = f"verifier calibrate {args.model} " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("photos", args.photos), ("n", args.n), ("seed", args.seed), ("far", args.far))
    )
    command += f" --negatives {args.negatives}"
    result = calibrate(embedder, args.photos, args.n, args.seed, args.far, command, n_negatives=args.negatives)
    out = args.out or Path(str(resources.files("verifier.models").joinpath(f"{embedder.model_id}.calibration.json")))
    write(result, out)
    print(json.dumps(result["measured"], indent=2))
    print(f"threshold {result['threshold']} -> {out}")
    return 0


# -- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verifier", description="provenance-verifier: where did this image come from?")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--data-dir", type=Path, help="overrides VERIFIER_DATA_DIR")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP API (embedded PostgreSQL unless VERIFIER_DATABASE_URL is set)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("db", help="database migrations")
    dbs = p.add_subparsers(dest="db_command", required=True)
    q = dbs.add_parser("upgrade", help="migrate to a revision (default head)")
    q.add_argument("revision", nargs="?", default="head")
    q = dbs.add_parser("downgrade", help="migrate down to a revision (default base: drops everything)")
    q.add_argument("revision", nargs="?", default="base")
    dbs.add_parser("current", help="print the current revision")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("publishers", help="manage publishers")
    ps = p.add_subparsers(dest="publishers_command", required=True)
    q = ps.add_parser("add", help="create a publisher and print its API key (once)")
    q.add_argument("name")
    ps.add_parser("list", help="list publishers")
    p.set_defaults(func=cmd_publishers)

    p = sub.add_parser("api-keys", help="issue API keys")
    aks = p.add_subparsers(dest="api_keys_command", required=True)
    q = aks.add_parser("add", help="issue a key and print it (once)")
    q.add_argument("--scope", choices=["publisher", "verifier"], default="verifier")
    q.add_argument("--publisher", help="publisher name (publisher scope)")
    q.add_argument("--label")
    p.set_defaults(func=cmd_api_keys)

    p = sub.add_parser("register", help="register signed originals for a publisher")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--publisher", required=True, help="publisher name")
    p.add_argument("--title", help="title for every file (default: the manifest's title)")
    p.add_argument("--json", action="store_true", help="one JSON line per file")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("inspect", help="read and validate an image's C2PA manifest")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--trust-anchors", type=Path, help="PEM bundle of trusted roots (overrides the setting)")
    p.add_argument("--c2pa-settings", type=Path, help="a c2pa settings JSON (e.g. a trust config)")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("verify", help="verify an image and print (or --json: emit) the signed report")
    p.add_argument("image", type=Path)
    p.add_argument("--json", action="store_true", help='print {"report": ..., "jws": ...}')
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="signed verification reports")
    rs = p.add_subparsers(dest="report_command", required=True)
    q = rs.add_parser("verify", help="check a report's signature offline")
    q.add_argument("file", type=Path, help='a {"report", "jws"} JSON file or a bare compact JWS')
    q.add_argument("--jwks", help="JWKS file or URL (default: this data dir's keys)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("keys", help="report-signing keys")
    ks = p.add_subparsers(dest="keys_command", required=True)
    ks.add_parser("rotate", help="make a new current key; the previous one stays published")
    ks.add_parser("show", help="print the JWKS")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("demo", help="end-to-end demo on the embedded database")
    p.add_argument("--out", type=Path, default=Path("demo-out"))
    p.add_argument("--images", type=Path, help="directory with at least 3 JPEG/PNG originals (default: generated)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="retrieval benchmark through the verification pipeline")
    p.add_argument("--queries", type=Path, required=True, help="CSV: query,original,kind,mask (paths relative to it)")
    p.add_argument("--registry-extra", type=Path, action="append", help="register every image under DIR as a distractor")
    p.add_argument("--benign-variants", type=int, default=0, help="add N benign-transformed copies of every query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", default="phash,pdq,backbone", help="comma list of phash,pdq,backbone ('' for none)")
    p.add_argument("--sample", type=int, default=0, help="a seeded random sample of N queries from the CSV")
    p.add_argument("--data-dir", type=Path, help="keep the bench registry here (reused by later runs) instead of a temp dir")
    p.add_argument("--register-only", action="store_true", help="register the originals and stop (to prepare --data-dir)")
    p.add_argument("--compare-exhaustive", action="store_true",
                   help="also re-run stage 2 with PSEN on all its candidates (what the skip rules cost)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-data", help="build the dev benchmark's queries from ../shared")
    p.add_argument("--shared", type=Path, default=Path("../shared"))
    p.add_argument("--out", type=Path, required=True, help="a folder outside the repository")
    p.add_argument("--n-per-kind", type=int, default=300)
    p.add_argument("--n-identical", type=int, default=100)
    p.add_argument("--n-distinct", type=int, default=100)
    p.add_argument("--distractors", type=int, default=0, help="also write N quarter crops of train photos to OUT/distractors")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench_data)

    p = sub.add_parser("bench-index", help="IVF1024,PQ16 against exact search at scale")
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the database")
    p.add_argument("--queries", type=int, default=1000, help="real photos whose transformed copies are the queries")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--model", default="auto")
    p.add_argument("--nprobe", default="8,16,32,64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_index)

    p = sub.add_parser("bench-align", help="alignment error on known geometric transforms (test photos)")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_align)

    p = sub.add_parser("index", help="the search index")
    xs = p.add_subparsers(dest="index_command", required=True)
    q = xs.add_parser("rebuild", help="rebuild the FAISS index from the vectors in PostgreSQL")
    q.add_argument("--reembed", action="store_true", help="recompute every vector from the stored originals first")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("train", help="train models (see MODEL_CARD.md for the recorded commands)")
    ts = p.add_subparsers(dest="train_command", required=True)
    q = ts.add_parser("embed", help="stage-1 embedding, multiple-positives contrastive loss")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True, help="safetensors output path")
    q.add_argument("--mode", choices=["cached", "online"], default="cached",
                   help="cached: CPU recipe (frozen early blocks); online: full fine-tuning (GPU)")
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--views", type=int, default=4)
    q.add_argument("--epochs", type=int, default=8)
    q.add_argument("--batch", type=int, default=48, help="photos per batch (x views)")
    q.add_argument("--lr", type=float, default=1e-3)
    q.add_argument("--freeze-blocks", type=int, default=13)
    q.add_argument("--limit", type=int, help="only the first N training photos")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device")
    q.add_argument("--threads", type=int)
    q = ts.add_parser("pairs-data", help="aligned query/candidate pairs from the train split (stages 2-3)")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True, help=".npz output path")
    q.add_argument("--limit", type=int, help="only N training photos")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--threads", type=int)
    for name, epochs, helptext in (("psen", 3, "stage 2: PSEN same/different"), ("change", 4, "stage 3: benign/manipulated + 7x7 heatmap")):
        q = ts.add_parser(name, help=helptext)
        q.add_argument("--data", type=Path, required=True, help="from `verifier train pairs-data`")
        q.add_argument("--out", type=Path, required=True, help="safetensors output path")
        q.add_argument("--epochs", type=int, default=epochs)
        q.add_argument("--batch", type=int, default=32)
        q.add_argument("--lr", type=float, default=2e-3)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device")
        q.add_argument("--threads", type=int)
    q = ts.add_parser("reorder", help="stage 2: the 101-way re-orderer over top-100 lists (needs a trained PSEN)")
    q.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--queries", type=int, default=600)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device")
    q.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("calibrate", help="calibrate a decision threshold on the train split")
    p.add_argument("model", help="embedding model id, e.g. simprov-embed-lite0-256 or baseline-effnetlite0-gem3-256")
    p.add_argument("--photos", type=Path, default=Path("../shared/datasets/photos"))
    p.add_argument("--n", type=int, default=2500, help="registered train photos")
    p.add_argument("--negatives", type=int, default=500, help="unregistered train photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--far", type=float, default=0.01, help="target false-match rate")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve" and not args.verbose:
        logging.getLogger("verifier").setLevel(logging.INFO)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
