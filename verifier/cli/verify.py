"""`verifier verify`, `report verify` and `demo`: the fact-checker's side from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from verifier.cli.common import fetch_bounded, open_service, settings_from


def cmd_verify(args: argparse.Namespace) -> int:
    from verifier.errors import VerifierError

    service = open_service(args)
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
    print("\n".join(describe(args.image, signed.report)))
    return 0


LEADS = 3  # closest originals printed when nothing matched


def describe(name: str, report: dict[str, Any]) -> list[str]:
    """The report in a few lines; when nothing matched, the closest registered originals as leads
    to check by eye (the report's candidates, in stage 1+2's order, with what stage 2 measured)."""
    lines = [f"{name}: {report['verdict']}", f"  {report['summary']}"]
    if report["match"]:
        m = report["match"]
        lines.append(f"  match: {m['original_id']} ({m['publisher']['name']}, registered {m['registered_at']}) via {m['method']}")
    elif (report.get("search") or {}).get("candidates"):
        lines.append("  closest registered originals (not a match):")
        for c in report["search"]["candidates"][:LEADS]:
            said = [f"stage-1 score {c['score']:.3f}"]
            if c.get("same_image") is not None:
                said.append(f"same image {c['same_image']:.2f}")
            if c.get("inliers") is not None:
                said.append(f"{c['inliers']} inliers")
            lines.append(f"    {c['rank']}. {c['original_id']} ({', '.join(said)})")
    if report["recovered_manifest"]:
        r = report["recovered_manifest"]
        lines.append(f"  recovered manifest: {r['state']} (re-validated {r['revalidated_at']})")
    lines.append(f"  report id: {report['id']}")
    return lines


JWKS_MAX_BYTES = 256 * 1024


def _load_jwks(source: str | None, args: argparse.Namespace) -> Any:
    if source is None:
        from verifier.reports.signing import KeyRing

        settings = settings_from(args)
        return KeyRing(settings.keys_dir, settings.report_signing_key_file).jwks()
    if "://" in source:
        body = fetch_bounded(source, JWKS_MAX_BYTES, what="JWKS", insecure=getattr(args, "jwks_insecure", False),
                             insecure_flag="--jwks-insecure")
    else:
        with open(source, "rb") as fh:
            body = fh.read(JWKS_MAX_BYTES + 1)
    if len(body) > JWKS_MAX_BYTES:
        raise ValueError(f"the JWKS is larger than {JWKS_MAX_BYTES} bytes")
    return json.loads(body)


def cmd_report(args: argparse.Namespace) -> int:
    """INVALID and exit 1 for anything that is not a good signed report, never a traceback."""
    from verifier.reports.schema import canonical_json
    from verifier.reports.signing import SignatureError, verify_compact

    try:
        with open(args.file, "rb") as fh:
            raw = fh.read(64 * 2**20 + 1)
        if len(raw) > 64 * 2**20:
            raise ValueError("the report file is larger than 64 MiB")
        text = raw.decode("utf-8").strip()
        envelope = json.loads(text) if text.startswith("{") else {"jws": text}
        if not isinstance(envelope, dict) or not isinstance(envelope.get("jws"), str):
            raise ValueError("no `jws` string in the report file")  # noqa: TRY004 (one INVALID path for all)
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        print(f"INVALID: cannot read the report file: {exc}")
        return 1
    try:
        jwks = _load_jwks(args.jwks, args)
    except (OSError, ValueError, RecursionError) as exc:
        print(f"INVALID: cannot load the JWKS: {exc}")
        return 1
    try:
        header, payload = verify_compact(envelope["jws"], jwks)
    except SignatureError as exc:
        print(f"INVALID: {exc}")
        return 1
    try:
        report = json.loads(payload)
        report_id, verdict = report["id"], report["verdict"]
    except (ValueError, TypeError, KeyError, RecursionError):
        print("INVALID: the signed payload is not a verification report")
        return 1
    if "report" in envelope and canonical_json(envelope["report"]) != payload:
        print("INVALID: the signature is good but the `report` beside it differs from what was signed")
        return 1
    print(f"OK: signed by key {header.get('kid')}; report {report_id} verdict {verdict}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from manifests.signing import generate_test_ca, issue_signer
    from verifier.cli.demo import run_demo
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
        rows = run_demo(service, out, args.images, signer, ca.cert_pem)
    finally:
        service.close()
    width = max(len(r["case"]) for r in rows)
    for r in rows:
        print(f"{r['case']:<{width}}  {r['verdict']:<22} {r['description']}")
    print(f"\nsigned reports in {out / 'reports'}; check one offline with:")
    print(f"  verifier report verify {out / 'reports' / 'stripped-copy.json'} --jwks {out / 'jwks.json'}")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("verify", help="verify an image and print (or --json: emit) the signed report")
    p.add_argument("image", type=Path)
    p.add_argument("--json", action="store_true", help='print {"report": ..., "jws": ...}')
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="signed verification reports")
    rs = p.add_subparsers(dest="report_command", required=True)
    q = rs.add_parser("verify", help="check a report's signature offline")
    q.add_argument("file", type=Path, help='a {"report", "jws"} JSON file or a bare compact JWS')
    q.add_argument("--jwks", help="JWKS file or https URL (default: this data dir's keys)")
    q.add_argument("--jwks-insecure", action="store_true",
                   help="allow an http JWKS URL and non-public addresses (local tests only)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="end-to-end demo on the embedded database")
    p.add_argument("--out", type=Path, default=Path("demo-out"))
    p.add_argument("--images", type=Path, help="directory with at least 3 JPEG/PNG originals (default: generated)")
    p.set_defaults(func=cmd_demo)
