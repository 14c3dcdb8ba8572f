"""`verifier register` and `inspect`: publisher ingest from the command line, and reading a file's C2PA manifest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from verifier.cli.common import open_service, settings_from


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders walked (sorted, so that a re-run goes in the same order)."""
    from verifier.images import IMAGE_SUFFIXES  # one list of what a folder's images are

    out: list[Path] = []
    for path in paths:
        if Path(path).is_dir():
            out.extend(sorted(p for p in Path(path).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(Path(path))
    return out


def cmd_register(args: argparse.Namespace) -> int:
    from collections import Counter

    from tqdm import tqdm

    from verifier.errors import VerifierError
    from verifier.registry import OriginalMetadata
    from verifier.storage.accounts import find_publisher

    service = open_service(args)
    files = _expand(args.files)
    tally: Counter[str] = Counter()
    try:
        with service.db.session() as session:
            publisher = find_publisher(session, args.publisher)
        if publisher is None:
            print(f"no publisher named {args.publisher!r} (create it with `verifier publishers add`)", file=sys.stderr)
            return 2
        meta = OriginalMetadata(title=args.title)
        batch = max(1, args.batch)
        bar = tqdm(total=len(files), desc="register", unit="img", disable=len(files) < 5 or args.json)
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            datas: list[tuple[Path, bytes | OSError]] = []
            for path in chunk:
                try:
                    datas.append((path, path.read_bytes()))
                except OSError as exc:
                    datas.append((path, exc))
            readable = [(p, d) for p, d in datas if isinstance(d, bytes)]
            if batch > 1:
                results: list[Any] = service.registry.register_batch([(d, meta) for _, d in readable], publisher.id)
            else:
                results = []
                for _, d in readable:
                    try:
                        results.append(service.registry.register(d, publisher.id, meta))
                    except VerifierError as exc:
                        results.append(exc)
            answers = iter(results)
            for path, d in datas:
                line = _register_line(path, d if isinstance(d, OSError) else next(answers))
                tally[line.get("outcome", "refused")] += 1
                if "reason" in line:
                    tally[f"refused: {line['reason']}"] += 1
                if args.json:
                    print(json.dumps(line))
                elif "error" in line:
                    bar.write(f"REFUSED {path}: {line['error'].get('detail')}")
                elif bar.disable:  # a few files: one line each; many: the progress bar and the summary
                    verb = "registered" if line["created"] else "already registered"
                    print(f"{verb} {path} -> {line['id']} (C2PA {line['c2pa_state'] or 'absent'})")
            bar.update(len(chunk))
        bar.close()
    finally:
        service.close()
    if not args.json:
        reasons = ", ".join(f"{k.split(': ', 1)[1]} {v}" for k, v in sorted(tally.items()) if k.startswith("refused: "))
        print(f"registered {tally['registered']}, already there {tally['existing']}, refused {tally['refused']}"
              + (f" ({reasons})" if reasons else ""), file=sys.stderr)
    return 1 if tally["refused"] else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    try:
        from verifier.bulk.ingest import list_inputs, run_ingest
    except ImportError as exc:
        print(f"verifier ingest needs Ray: pip install 'provenance-verifier[scale]' ({exc})", file=sys.stderr)
        return 2
    from verifier.storage.accounts import find_publisher

    try:
        inputs = list_inputs(args.source)
    except ValueError as exc:
        print(f"verifier ingest: {exc}", file=sys.stderr)
        return 2
    service = open_service(args)
    try:
        with service.db.session() as session:
            publisher = find_publisher(session, args.publisher)
        if publisher is None:
            print(f"no publisher named {args.publisher!r} (create it with `verifier publishers add`)", file=sys.stderr)
            return 2
        with tqdm(total=len(inputs), desc="ingest", unit="img", disable=args.json) as bar:
            summary = run_ingest(service, publisher.id, inputs, batch=args.batch, workers=args.workers,
                                 address=args.ray_address, progress=bar)
    finally:
        service.close()
    if args.json:
        for line in summary.outcomes:
            print(json.dumps(line))
    print(json.dumps(summary.to_dict()) if args.json else
          f"registered {summary.registered}, already there {summary.existing}, refused {sum(summary.refused.values())}"
          + (f" ({', '.join(f'{k} {v}' for k, v in sorted(summary.refused.items()))})" if summary.refused else ""),
          file=sys.stderr)
    return 1 if summary.refused else 0


def cmd_reembed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    try:
        from verifier.bulk.reembed import run_reembed
    except ImportError as exc:
        print(f"verifier reembed needs Ray: pip install 'provenance-verifier[scale]' ({exc})", file=sys.stderr)
        return 2
    service = open_service(args)
    try:
        configured = {service.search.embedder.model_id} | (
            {service.search.regions.model_id} if service.search.regions is not None else set())
        if args.model and args.model not in configured:
            print(f"{args.model} is not a configured stage-1 model ({', '.join(sorted(configured))}); "
                  "set VERIFIER_EMBEDDING_MODEL first", file=sys.stderr)
            return 2
        with tqdm(desc="reembed", unit="img") as bar:
            result = run_reembed(service, batch=args.batch, workers=args.workers, address=args.ray_address, progress=bar)
    finally:
        service.close()
    print(json.dumps(result))
    return 1 if result["failed"] else 0


def _register_line(path: Path, result: Any) -> dict[str, Any]:
    from verifier.errors import VerifierError

    if isinstance(result, VerifierError):
        return {"file": str(path), "outcome": "refused", "reason": result.slug, "error": result.problem()}
    if isinstance(result, OSError):
        return {"file": str(path), "outcome": "refused", "reason": "unreadable",
                "error": {"title": "cannot read file", "detail": str(result)}}
    o = result.original
    return {"file": str(path), "outcome": "registered" if result.created else "existing", "id": str(o.id),
            "created": result.created, "sha256": o.sha256, "c2pa_state": o.validation_state}


def inspect_file(path: Path, trust: Any, include_json: bool = False) -> dict[str, Any]:
    """The `inspect --json` object for one file (never raises for unreadable input)."""
    from manifests import ManifestError, read_manifest
    from manifests.formats import detect_mime

    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"error": {"type": "io_error", "message": str(exc)}}
    try:
        return read_manifest(data, trust=trust, mime=detect_mime(data, path.name)).to_dict(include_json=include_json)
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
    print(f"  state: {result['state']}   claim signer: {result.get('claim_state')}   manifests: {result['manifests']}")
    if result.get("trust_list"):
        print(f"  trust list: {result['trust_list']['name']} ({result['trust_list']['category']})")
    if result["failure_codes"]:
        print(f"  failures: {', '.join(result['failure_codes'])}")
    am = result.get("active_manifest") or {}
    if am:
        signer = am.get("signer") or {}
        print(f"  title: {am.get('title')}   generator: {am.get('claim_generator')}")
        cert = am.get("signer_certificate") or {}
        print(f"  signed by: {cert.get('subject') or signer.get('common_name')}")
        if cert.get("issuer"):
            print(f"    issuer: {cert['issuer']}   valid {cert.get('not_before')} .. {cert.get('not_after')}")
        stamp = result.get("timestamp")
        if stamp:
            tsa = (stamp.get("tsa") or {}).get("subject") or "unknown TSA"
            print(f"  time-stamp: {stamp['time']} by {tsa} ({'trusted' if stamp['trusted'] else 'NOT trusted'})")
        else:
            print(f"  claimed signing time (not time-stamped): {signer.get('signing_time')}")
        if result.get("ocsp"):
            print(f"  revocation (OCSP): {result['ocsp']}")
        for ident in result.get("identity_assertions") or []:
            verdict = {True: "trusted", False: "NOT trusted", None: "trust not checked"}[ident["trusted"]]
            print(f"  identity: {ident['subject']} ({ident['sig_type']}, {verdict})")
        for binding in result.get("soft_bindings") or []:
            print(f"  soft binding: {binding['alg']} ({len(binding['values'])} value(s))")
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
    from manifests import ManifestError
    from manifests.reader import manifest_tree, read_detailed

    settings = settings_from(args)
    if args.trust_anchors or args.c2pa_settings:
        overrides = {"trust_anchors": args.trust_anchors or settings.trust_anchors,
                     "c2pa_settings": args.c2pa_settings or settings.c2pa_settings}
        settings = type(settings)(**{**settings.model_dump(), **overrides})
    trust = settings.trust
    for path in args.files:
        if args.detailed:
            try:
                result: dict[str, Any] = read_detailed(Path(path), trust=trust)
            except ManifestError as exc:
                result = {"error": {"type": exc.kind, "message": str(exc)}}
            except OSError as exc:
                result = {"error": {"type": "io_error", "message": str(exc)}}
            print(json.dumps(result if len(args.files) == 1 else {"file": str(path), **result}, indent=None if args.json else 2))
            continue
        result = inspect_file(Path(path), trust, include_json=args.tree)
        if args.tree:
            print(f"{path}")
            lines = manifest_tree(result.pop("manifest_json", None) or {}) if "error" not in result else []
            print("\n".join(lines) if lines else f"  {result.get('error', {}).get('message') or 'no C2PA manifest'}")
        elif args.json:
            print(json.dumps(result if len(args.files) == 1 else {"file": str(path), **result}))
        else:
            _print_summary(Path(path), result)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("register", help="register signed originals for a publisher (files or folders)")
    p.add_argument("files", nargs="+", type=Path, help="image files, or folders walked for images")
    p.add_argument("--batch", type=int, default=1, help="originals per batch: one embedding pass and one transaction "
                   "each (re-running a killed job skips what is registered)")
    p.add_argument("--publisher", required=True, help="publisher name")
    p.add_argument("--title", help="title for every file (default: the manifest's title)")
    p.add_argument("--json", action="store_true", help="one JSON line per file")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("ingest", help="register an archive on Ray (a folder, or a CSV with path,title,caption,source_url)")
    p.add_argument("source", type=Path, help="folder walked for images, or a CSV with a `path` column")
    p.add_argument("--publisher", required=True, help="publisher name")
    p.add_argument("--batch", type=int, default=32, help="originals per worker call and per transaction")
    p.add_argument("--workers", type=int, help="Ray workers (default: every CPU of the machine or cluster)")
    p.add_argument("--ray-address", help="an existing Ray cluster (default: local Ray on this machine)")
    p.add_argument("--json", action="store_true", help="one JSON line per file, then the summary")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("reembed", help="recompute every original's stage-1 vectors on Ray (after a model update)")
    p.add_argument("--model", help="the configured model to re-embed for (a check; default: all configured)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, help="Ray workers (default: every CPU)")
    p.add_argument("--ray-address", help="an existing Ray cluster (default: local Ray)")
    p.set_defaults(func=cmd_reembed)

    p = sub.add_parser("inspect", help="read and validate an image's C2PA manifest")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--trust-anchors", type=Path, help="PEM bundle of trusted roots (overrides the setting)")
    p.add_argument("--c2pa-settings", type=Path, help="a c2pa settings JSON (e.g. a trust config)")
    p.add_argument("--tree", action="store_true", help="draw the manifests, assertions and ingredients as a tree")
    p.add_argument("--detailed", action="store_true", help="the SDK's detailed JSON (claims, assertion boxes, hashes)")
    p.set_defaults(func=cmd_inspect)
