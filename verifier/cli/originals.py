"""`verifier register` and `inspect`: publisher ingest from the command line, and reading a file's C2PA manifest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from verifier.cli.common import open_service, settings_from


def cmd_register(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from verifier.errors import VerifierError
    from verifier.registry import OriginalMetadata
    from verifier.storage.accounts import find_publisher

    service = open_service(args)
    failures = 0
    try:
        with service.db.session() as session:
            publisher = find_publisher(session, args.publisher)
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

    settings = settings_from(args)
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


def add_parsers(sub: Any) -> None:
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
