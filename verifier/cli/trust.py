"""`verifier trust import|show|remove`: the trust lists the validator uses.

An operator downloads the official C2PA Trust List (and the TSA list, and the interim/legacy
list while it is still honoured) and imports each under its kind; every list becomes its own
`trust.anchors[]` entry, named in reports. Lists take effect when the service next starts."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from verifier.cli.common import fetch_bounded, settings_from

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def _index(directory: Path) -> list[dict[str, Any]]:
    from manifests.trust import TRUST_INDEX

    path = directory / TRUST_INDEX
    return json.loads(path.read_text()) if path.exists() else []


def cmd_import(args: argparse.Namespace) -> int:
    from manifests.trust import (
        MAX_TRUST_LIST_BYTES,
        TRUST_INDEX,
        TrustSettingsError,
        parse_trust_pem,
    )
    from verifier.fsutil import atomic_write

    if not _NAME.match(args.name):
        print("--name: lower-case letters, digits, '.', '_' or '-' (at most 63)", file=sys.stderr)
        return 2
    try:
        if "://" in args.source:
            data = fetch_bounded(args.source, MAX_TRUST_LIST_BYTES, what="trust list", insecure=args.insecure)
        else:
            with open(args.source, "rb") as fh:
                data = fh.read(MAX_TRUST_LIST_BYTES + 1)
        pem = parse_trust_pem(data, what=args.source)
    except (OSError, ValueError, TrustSettingsError) as exc:
        print(f"cannot import {args.source}: {exc}", file=sys.stderr)
        return 1
    directory = settings_from(args).trust_store_dir
    file_name = f"{args.kind}-{args.name}.pem"
    entries = [e for e in _index(directory) if not (e["kind"] == args.kind and e["name"] == args.name)]
    count = pem.count("-----BEGIN CERTIFICATE-----")
    entries.append({
        "kind": args.kind, "name": args.name, "category": args.category, "file": file_name,
        "role": "allowed" if args.allowed else "anchors", "source": args.source, "certificates": count,
        "sha256": hashlib.sha256(pem.encode()).hexdigest(), "imported_at": dt.datetime.now(dt.UTC).isoformat(),
    })
    # PEM first, then the index that names it: a crash in between leaves the old index valid.
    atomic_write(directory / file_name, pem.encode())
    atomic_write(directory / TRUST_INDEX, json.dumps(entries, indent=2).encode())
    print(f"imported {count} certificate(s) as {args.kind} list {args.name!r} ({args.category}); "
          "restart the service to use it")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    trust = settings.trust
    lists = [t.describe() for t in trust.all_lists()]
    if args.json:
        print(json.dumps({"lists": lists, "remote_manifests": settings.remote_manifests,
                          "remote_manifest_hosts": settings.remote_manifest_hosts}, default=str))
        return 0
    if not lists:
        print("no trust lists: every signer is reported untrusted (state Valid, never Trusted)")
    for item in lists:
        expiry = f", first expiry {item['not_after_min']:%Y-%m-%d}" if item["not_after_min"] else ""
        print(f"{item['kind']:8} {item['name']:24} {item['category']:8} {item['certificates']:4} cert(s){expiry}  "
              f"{item['uri']}  from {item['source']}")
    if trust.pools_other_kinds:
        print("note: the SDK pools TSA/CAWG roots with claim-signer roots; the verdict checks the claim signer "
              "against manifest lists only")
    print(f"remote manifests: {settings.remote_manifests}"
          + (f" ({', '.join(settings.remote_manifest_hosts)})" if settings.remote_manifest_hosts else ""))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from manifests.trust import TRUST_INDEX
    from verifier.fsutil import atomic_write

    directory = settings_from(args).trust_store_dir
    entries = _index(directory)
    keep = [e for e in entries if not (e["kind"] == args.kind and e["name"] == args.name)]
    if len(keep) == len(entries):
        print(f"no {args.kind} list named {args.name!r}", file=sys.stderr)
        return 1
    atomic_write(directory / TRUST_INDEX, json.dumps(keep, indent=2).encode())
    (directory / f"{args.kind}-{args.name}.pem").unlink(missing_ok=True)
    print(f"removed {args.kind} list {args.name!r}; restart the service to stop using it")
    return 0


def add_parsers(sub: Any) -> None:
    from manifests.trust import TRUST_CATEGORIES, TRUST_KINDS

    p = sub.add_parser("trust", help="trust lists: import the C2PA Trust List, TSA and CAWG lists; show them")
    tsub = p.add_subparsers(dest="trust_command", required=True)
    q = tsub.add_parser("import", help="import a PEM trust list from a file or an https URL")
    q.add_argument("source", help="file or https URL of a PEM bundle")
    q.add_argument("--kind", choices=TRUST_KINDS, required=True,
                   help="manifest: claim signers; tsa: time-stamping authorities; cawg: identity credentials")
    q.add_argument("--name", default=None, help="list name (default: official for manifest/tsa, else custom)")
    q.add_argument("--category", choices=TRUST_CATEGORIES, default="custom",
                   help="official (the C2PA Trust List), legacy (the interim list), custom")
    q.add_argument("--allowed", action="store_true", help="end-entity certificates trusted individually (manifest)")
    q.add_argument("--insecure", action="store_true", help="allow http and private hosts (tests only)")
    q.set_defaults(func=_with_default_name(cmd_import))
    q = tsub.add_parser("show", help="the trust lists in effect")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_show)
    q = tsub.add_parser("remove", help="remove an imported list")
    q.add_argument("--kind", choices=TRUST_KINDS, required=True)
    q.add_argument("--name", required=True)
    q.set_defaults(func=cmd_remove)


def _with_default_name(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        if args.name is None:
            args.name = args.category
        if args.allowed and args.kind != "manifest":
            print("--allowed applies to manifest lists only", file=sys.stderr)
            return 2
        return int(func(args))

    return run
