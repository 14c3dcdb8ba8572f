"""`verifier serve`, `db` and `index`: running the service and looking after its database and index."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from verifier import __version__
from verifier.cli.common import open_service, settings_from

log = logging.getLogger("verifier")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from verifier.api import create_app

    settings = settings_from(args)
    settings.trust.context().close()  # refuse to start on a bad trust list or c2pa setting, with its message
    host = args.host or settings.host
    port = args.port or settings.port
    log.info("provenance-verifier %s on http://%s:%s (data dir %s, database %s)", __version__, host, port,
             settings.data_dir.resolve(), "external" if settings.database_url else "embedded PostgreSQL")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level.lower())
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from verifier.storage import Database

    settings = settings_from(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database.open(settings.database_url, settings.pg_dir)
    try:
        if args.db_command == "upgrade":
            db.upgrade(args.revision)
        elif args.db_command == "downgrade":
            db.downgrade(args.revision)
        current = db.current_revision()
        print(f"database at revision: {current or 'base (empty)'}")
    finally:
        db.close()
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    if args.index_command == "upgrade-views":
        return _upgrade_views(args)
    if args.index_command == "detail-features":
        return _detail_features(args)
    service = open_service(args)
    try:
        n = service.rebuild_search(reembed=args.reembed)
        print(f"index rebuilt from the database: {n} originals searchable ({service.search.method})")
    finally:
        service.close()
    return 0


def _upgrade_views(args: argparse.Namespace) -> int:
    """Old view files stay readable; rewritten, the geometric screen reads their features ~25x faster."""
    from tqdm import tqdm

    from verifier.matching.views import CandidateViews

    settings = settings_from(args)
    views = CandidateViews(settings.views_dir, capacity=0)
    files = views.legacy_files()
    done = sum(views.upgrade(path) for path in tqdm(files, desc="views v2 -> v3", disable=not files))
    print(f"{done} view files rewritten as v3, {len(files) - done} unreadable ones removed (recomputed when needed)")
    return 0


def _detail_features(args: argparse.Namespace) -> int:
    """The upgrade that brought detail features, done before the switch: every large original's file computed
    here (two threads, a progress bar), then the detail vote index built from them and saved, so that the next
    start reads it instead of the background sync computing them ~0.13 s an original while requests come in."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from verifier.errors import VerifierError
    from verifier.matching.views import CandidateViews
    from verifier.service import Service

    settings = settings_from(args)
    if not (settings.local_votes and settings.local_detail_features):
        print("detail features are off (VERIFIER_LOCAL_DETAIL_FEATURES, VERIFIER_LOCAL_VOTES): nothing to do")
        return 0
    quiet = settings.model_copy(update={"follow_registry": False, "run_jobs": False})
    service = Service.open(quiet.model_copy(update={"local_detail_features": 0}))  # builds no detail index
    failed: list[str] = []
    try:
        views = CandidateViews(settings.views_dir, capacity=0, store=settings.views_store,
                               detail_features=settings.local_detail_features)
        ids = sorted(service.search.indexed_originals(), key=str)

        def one(oid: Any) -> bool:
            try:
                return views.detail(oid, service.matcher.loader(oid)) is not None
            except (OSError, ValueError, VerifierError) as exc:  # deleted meanwhile, or no longer decodes
                failed.append(f"{oid}: {exc}")
                return False

        with ThreadPoolExecutor(2) as pool:
            large = sum(tqdm(pool.map(one, ids), total=len(ids), desc="detail features", unit="original"))
    finally:
        service.close()
    Service.open(quiet).close()  # start-up reads the files, builds the detail vote index and saves it
    for line in failed:
        print(f"not computed: {line}")
    print(f"{large} large originals of {len(ids)} with detail features; the detail vote index built and saved")
    return 0


def add_parsers(sub: Any) -> None:
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

    p = sub.add_parser("index", help="the search index")
    xs = p.add_subparsers(dest="index_command", required=True)
    q = xs.add_parser("rebuild", help="rebuild the FAISS index from the vectors in PostgreSQL")
    q.add_argument("--reembed", action="store_true", help="recompute every vector from the stored originals first")
    xs.add_parser("upgrade-views", help="rewrite stage 2-3 view files of an older format (v2 .npz) as v3")
    xs.add_parser("detail-features", help="compute the large originals' missing detail features and build their vote "
                  "index (after the upgrade that brought them; otherwise the service's background sync does it)")
    p.set_defaults(func=cmd_index)
