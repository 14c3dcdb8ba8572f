"""Compare `manifests.read_manifest` with the reference reader (c2pa-python, given the file
path so it picks the format from the extension) on every file of a folder, e.g. the c2pa-rs
test fixtures (`sdk/tests/fixtures`) or ../shared/c2pa. Prints one line per file and a
summary; exits 1 on any disagreement.

    python scripts/c2pa_conformance.py DIR [--settings trust.json] [--bytes]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import c2pa

from manifests import ManifestError, TrustConfig, read_manifest


def reference(path: Path, settings: dict) -> tuple[str, int, list[str]]:
    ctx = c2pa.Context.from_dict(settings)
    try:
        with open(path, "rb") as fh:
            ext = path.suffix.lstrip(".").lower()
            reader = c2pa.Reader(ext, fh, context=ctx)
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return "ManifestNotFound", 0, []
    except c2pa.C2paError as exc:
        return f"error:{type(exc).__name__}", 0, []
    finally:
        ctx.close()
    failures = sorted({c["code"] for c in store.get("validation_status") or []}
                      | {c["code"] for c in ((store.get("validation_results") or {}).get("activeManifest") or {}).get("failure") or []})
    return store.get("validation_state") or "?", len(store.get("manifests") or {}), failures


def ours(path: Path, trust: TrustConfig, as_bytes: bool = False) -> tuple[str, int, list[str]]:
    try:  # as_bytes: as an upload, with no name to go by
        summary = read_manifest(path.read_bytes() if as_bytes else path, trust=trust)
    except ManifestError as exc:
        return f"error:{exc.kind}", 0, []
    if not summary.present:
        return "ManifestNotFound", 0, []
    return summary.state.value if summary.state else "?", summary.manifests_count, summary.failure_codes


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--settings", type=Path, help="c2pa settings JSON (trust) for both readers")
    ap.add_argument("--bytes", action="store_true", help="read ours from the bytes alone (no file name), as uploads")
    args = ap.parse_args()
    settings = json.loads(args.settings.read_text()) if args.settings else {"version": 1}
    trust = TrustConfig(extra_settings=settings)
    supported = c2pa.Reader.get_supported_mime_types()
    files = sorted(p for p in args.folder.rglob("*") if p.is_file() and p.suffix.lstrip(".").lower() in supported)
    agree = checks = 0
    for path in files:
        ref, mine = reference(path, settings), ours(path, trust, args.bytes)
        # the reference's error kinds and ours are named differently: compare error vs error
        same = [
            (ref[0] == mine[0]) or (ref[0].startswith("error") and mine[0].startswith("error")),
            ref[1] == mine[1],
            ref[2] == mine[2],
        ]
        checks += 3
        agree += sum(same)
        mark = "ok  " if all(same) else "DIFF"
        print(f"{mark} {path.name}: reference {ref} ours {mine}")
    print(f"\n{agree}/{checks} checks agree on {len(files)} files")
    return 0 if agree == checks else 1


if __name__ == "__main__":
    sys.exit(main())
