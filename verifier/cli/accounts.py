"""`verifier publishers`, `api-keys` and `keys`: who may register and verify, and the keys that sign reports."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from verifier.cli.common import open_service, settings_from


def cmd_publishers(args: argparse.Namespace) -> int:
    from verifier.errors import VerifierError
    from verifier.storage.accounts import (
        create_publisher,
        find_publisher,
        list_publishers,
    )
    from verifier.storage.signers import (
        describe,
        enroll,
        parse_certificate,
        remove,
        signers_of,
    )

    cert = None
    if args.publishers_command == "add-signer":
        try:
            cert = parse_certificate(args.cert.read_bytes())
        except (OSError, VerifierError) as exc:
            print(f"{args.cert}: {exc}", file=sys.stderr)
            return 2
    service = open_service(args)
    try:
        with service.db.session() as session:
            if args.publishers_command == "add":
                publisher, key = create_publisher(session, args.name)
                print(f"publisher: {publisher.name} ({publisher.id})")
                print(f"api key:   {key}")
                print("Store this key now: it is shown once and only its hash is kept.", file=sys.stderr)
                return 0
            if args.publishers_command == "list":
                for p in list_publishers(session):
                    print(f"{p.id}  {p.name}  {p.created_at:%Y-%m-%d %H:%M}")
                return 0
            publisher = find_publisher(session, args.name)
            if publisher is None:
                print(f"no publisher named {args.name!r}", file=sys.stderr)
                return 2
            try:
                if args.publishers_command == "add-signer":
                    assert cert is not None
                    row = enroll(session, publisher.id, cert, label=args.label)
                    print(json.dumps(describe(row)))
                elif args.publishers_command == "remove-signer":
                    remove(session, publisher.id, args.signer_id)
                    print(f"removed {args.signer_id}")
                else:
                    for row in signers_of(session, publisher.id):
                        print(json.dumps(describe(row)))
            except VerifierError as exc:
                print(f"refused: {exc.detail}", file=sys.stderr)
                return 1
    finally:
        service.close()
    return 0


def cmd_api_keys(args: argparse.Namespace) -> int:
    from verifier.storage.accounts import Scope, find_publisher, issue_key

    service = open_service(args)
    try:
        with service.db.session() as session:
            publisher = None
            if args.scope == Scope.PUBLISHER.value:
                if not args.publisher:
                    print("publisher keys need --publisher NAME", file=sys.stderr)
                    return 2
                publisher = find_publisher(session, args.publisher)
                if publisher is None:
                    print(f"no publisher named {args.publisher!r}", file=sys.stderr)
                    return 2
            _, key = issue_key(session, Scope(args.scope), publisher, label=args.label)
            print(key)
            print("Store this key now: it is shown once and only its hash is kept.", file=sys.stderr)
    finally:
        service.close()
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from verifier.reports.signing import KeyRing

    settings = settings_from(args)
    ring = KeyRing(settings.keys_dir, settings.report_signing_key_file)
    if args.keys_command == "rotate":
        key = ring.rotate()
        print(f"new current key: {key.kid} (the previous one stays in the JWKS)")
    else:
        print(json.dumps(ring.jwks(), indent=2))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("publishers", help="manage publishers")
    ps = p.add_subparsers(dest="publishers_command", required=True)
    q = ps.add_parser("add", help="create a publisher and print its API key (once)")
    q.add_argument("name")
    ps.add_parser("list", help="list publishers")
    q = ps.add_parser("add-signer", help="enroll a certificate (or issuing CA) the publisher signs originals with")
    q.add_argument("name")
    q.add_argument("cert", type=Path, help="PEM or DER certificate")
    q.add_argument("--label")
    q = ps.add_parser("signers", help="list a publisher's enrolled signing certificates")
    q.add_argument("name")
    q = ps.add_parser("remove-signer", help="withdraw an enrolled certificate (registered originals stay)")
    q.add_argument("name")
    q.add_argument("signer_id", type=uuid.UUID)
    p.set_defaults(func=cmd_publishers)

    p = sub.add_parser("api-keys", help="issue API keys")
    aks = p.add_subparsers(dest="api_keys_command", required=True)
    q = aks.add_parser("add", help="issue a key and print it (once)")
    q.add_argument("--scope", choices=["publisher", "verifier", "admin"], default="verifier")
    q.add_argument("--publisher", help="publisher name (publisher scope)")
    q.add_argument("--label")
    p.set_defaults(func=cmd_api_keys)

    p = sub.add_parser("keys", help="report-signing keys")
    ks = p.add_subparsers(dest="keys_command", required=True)
    ks.add_parser("rotate", help="make a new current key; the previous one stays published")
    ks.add_parser("show", help="print the JWKS")
    p.set_defaults(func=cmd_keys)
