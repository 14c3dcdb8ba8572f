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
    from verifier.storage.marks import add_mark, marks_of, remove_mark
    from verifier.storage.signers import (
        MAX_PEM_BYTES,
        describe,
        enroll,
        parse_certificate,
        remove,
        signers_of,
    )

    cert = None
    mark = b""
    if args.publishers_command == "add-signer":
        try:
            with args.cert.open("rb") as fh:  # bounded: parse_certificate refuses anything larger
                cert = parse_certificate(fh.read(MAX_PEM_BYTES + 1))
        except (OSError, VerifierError) as exc:
            print(f"{args.cert}: {exc}", file=sys.stderr)
            return 2
    if args.publishers_command == "add-mark":
        from verifier.matching.marks import MAX_MARK_BYTES, model_of
        try:
            with args.file.open("rb") as fh:  # bounded: model_of refuses anything larger
                mark = fh.read(MAX_MARK_BYTES + 1)
            model_of(mark)
        except (OSError, VerifierError) as exc:
            print(f"{args.file}: {getattr(exc, 'detail', exc)}", file=sys.stderr)
            return 2
    if args.publishers_command == "find-marks" and args.out.exists() and not args.out.is_dir():
        print(f"{args.out}: not a folder", file=sys.stderr)
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
                elif args.publishers_command == "add-mark":
                    print(json.dumps(_mark(add_mark(session, publisher.id, mark, args.label))))
                elif args.publishers_command == "marks":
                    for m in marks_of(session, publisher.id):
                        print(json.dumps(_mark(m)))
                elif args.publishers_command == "remove-mark":
                    remove_mark(session, publisher.id, args.mark_id)
                    print(f"removed {args.mark_id}")
                elif args.publishers_command == "find-marks":
                    return _find_marks(service, publisher.id, args.out, args.sample)
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
    import datetime as dt

    from verifier.errors import NotFound
    from verifier.storage.accounts import (
        Scope,
        find_publisher,
        issue_key,
        list_keys,
        revoke_key,
    )

    service = open_service(args)
    try:
        with service.db.session() as session:
            publisher = None
            if getattr(args, "publisher", None):
                publisher = find_publisher(session, args.publisher)
                if publisher is None:
                    print(f"no publisher named {args.publisher!r}", file=sys.stderr)
                    return 2
            if args.api_keys_command == "list":
                for k in list_keys(session, publisher):
                    state = "revoked" if k.revoked_at else ("expired" if k.expires_at and k.expires_at <= dt.datetime.now(dt.UTC) else "active")
                    print(json.dumps({
                        "id": str(k.id), "prefix": k.prefix, "scope": k.scope, "publisher": k.publisher.name if k.publisher else None,
                        "label": k.label, "state": state, "created_at": k.created_at.isoformat(),
                        "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                    }))
                return 0
            if args.api_keys_command == "revoke":
                try:
                    key_row = revoke_key(session, args.key_id)
                except NotFound as exc:
                    print(exc.detail, file=sys.stderr)
                    return 2
                print(f"revoked {key_row.prefix}... ({key_row.id})")
                return 0
            if args.scope == Scope.PUBLISHER.value and publisher is None:
                print("publisher keys need --publisher NAME", file=sys.stderr)
                return 2
            if args.scope != Scope.PUBLISHER.value:
                publisher = None
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=args.expires_days) if args.expires_days else None
            _, key = issue_key(session, Scope(args.scope), publisher, label=args.label, expires_at=expires)
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


def _mark(m: Any) -> dict[str, Any]:
    return {"id": str(m.id), "label": m.label, "sha256": m.sha256, "width": m.width, "height": m.height,
            "created_at": m.created_at.isoformat()}


def _positive_days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 3650:
        raise argparse.ArgumentTypeError("between 1 and 3650 days")
    return value


def _sample(text: str) -> int:
    from verifier.matching.marks import MAX_FIND_SAMPLE

    value = int(text)
    if not 3 <= value <= MAX_FIND_SAMPLE:
        raise argparse.ArgumentTypeError(f"between 3 and {MAX_FIND_SAMPLE} originals")
    return value


def _find_marks(service: Any, publisher_id: uuid.UUID, out: Path, sample: int) -> int:
    from verifier.matching.marks import suggest_marks

    found, looked_at = suggest_marks(service.originals, service.matcher.view, publisher_id, sample)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{out}: {exc}", file=sys.stderr)
        return 2
    for k, s in enumerate(found, 1):
        path = out / f"mark-{k}.png"
        s.overlay.image.save(path)
        print(json.dumps({"file": str(path), "box": [round(v, 3) for v in s.overlay.box], "photos": len(s.originals), "looked_at": s.looked_at,
                          "keypoints": s.overlay.keypoints, "examples": [str(i) for i in s.originals[:5]]}))
    if not found:
        print(f"no overlay recurs over the {looked_at} photos looked at", file=sys.stderr)
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
    q = ps.add_parser("add-mark", help="enroll a publisher's mark (watermark, credit line, logo): its keypoints on a "
                      "query never count as evidence of a match")
    q.add_argument("name")
    q.add_argument("file", type=Path, help="the mark as overlaid: PNG or WebP with transparency, <= 2 MiB, <= 4 MP")
    q.add_argument("--label")
    q = ps.add_parser("marks", help="list a publisher's enrolled marks")
    q.add_argument("name")
    q = ps.add_parser("remove-mark", help="remove an enrolled mark")
    q.add_argument("name")
    q.add_argument("mark_id", type=uuid.UUID)
    q = ps.add_parser("find-marks", help="find overlays many of the publisher's registered photos share (watermarks, "
                      "credit lines, logos) and write each as a PNG to look at and enrol with add-mark")
    q.add_argument("name")
    q.add_argument("--out", type=Path, required=True, help="folder for the suggested marks (mark-1.png, ...)")
    q.add_argument("--sample", type=_sample, default=300, help="the publisher's newest originals to look at (3-1000)")
    p.set_defaults(func=cmd_publishers)

    p = sub.add_parser("api-keys", help="issue, list and revoke API keys")
    aks = p.add_subparsers(dest="api_keys_command", required=True)
    q = aks.add_parser("add", help="issue a key and print it (once)")
    q.add_argument("--scope", choices=["publisher", "verifier", "admin"], default="verifier")
    q.add_argument("--publisher", help="publisher name (publisher scope)")
    q.add_argument("--label")
    q.add_argument("--expires-days", type=_positive_days, help="the key stops working after N days")
    q = aks.add_parser("list", help="keys with scope, state, expiry and last use (never the key itself)")
    q.add_argument("--publisher", help="only this publisher's keys")
    q = aks.add_parser("revoke", help="revoke a key now (it gets 401 from then on)")
    q.add_argument("key_id", type=uuid.UUID)
    p.set_defaults(func=cmd_api_keys)

    p = sub.add_parser("keys", help="report-signing keys")
    ks = p.add_subparsers(dest="keys_command", required=True)
    ks.add_parser("rotate", help="make a new current key; the previous one stays published")
    ks.add_parser("show", help="print the JWKS")
    p.set_defaults(func=cmd_keys)
