"""`verifier` command line. One module per topic, each adding its own subcommands:
server (serve, db, index), accounts (publishers, api-keys, keys), originals (register,
inspect), trust (trust import|show|remove), verify (verify, report, demo), bench (bench*) and models (train, calibrate).
Training and evaluation code is imported only inside the commands that run it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from verifier import __version__
from verifier.cli import accounts, bench, models, originals, server, trust, verify

log = logging.getLogger("verifier")


def _configuration_errors() -> tuple[type[Exception], ...]:
    from pydantic import ValidationError

    from manifests.softbinding import SoftBindingError
    from manifests.trust import TrustSettingsError
    from verifier.settings import SettingsError

    return (ValidationError, SettingsError, TrustSettingsError, SoftBindingError)


ConfigurationError = _configuration_errors()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verifier", description="provenance-verifier: where did this image come from?")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--data-dir", type=Path, help="overrides VERIFIER_DATA_DIR")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    for topic in (server, accounts, originals, trust, verify, bench, models):
        topic.add_parsers(sub)
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
    try:
        return int(args.func(args) or 0)
    except ConfigurationError as exc:
        print(f"configuration error: {_config_message(exc)}", file=sys.stderr)
        return 2


def _config_message(exc: Exception) -> str:
    """pydantic wraps our validators' errors; show the operator our sentence alone."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(str(e.get("ctx", {}).get("error") or e["msg"]) for e in exc.errors())
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
