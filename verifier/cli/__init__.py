"""`verifier` command line. One module per topic, each adding its own subcommands:
server (serve, db, index), accounts (publishers, api-keys, keys), originals (register,
inspect), trust (trust import|show|remove), jobs (jobs run|list), verify (verify, report, demo), bench (bench*) and models (train, calibrate).
Training and evaluation code is imported only inside the commands that run it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from verifier import __version__
from verifier.cli import accounts, bench, jobs, models, originals, server, trust, verify

log = logging.getLogger("verifier")


def _configuration_errors() -> tuple[type[Exception], ...]:
    """Imported when a command runs, not with the CLI: `verifier train` must start on a training
    machine that has torch but not the service's C2PA or database libraries (the GPU recipe's)."""
    from pydantic import ValidationError

    from manifests.softbinding import SoftBindingError
    from manifests.trust import TrustSettingsError
    from verifier.settings import SettingsError

    return (ValidationError, SettingsError, TrustSettingsError, SoftBindingError)


TRAINING_COMMANDS = ("train", "calibrate")


def build_parser(training_only: bool = False) -> argparse.ArgumentParser:
    """`training_only`: the training commands alone, whose parsers import nothing but torch's side,
    so that `verifier train` runs on a machine with only the ML libraries (the GPU recipe's device)."""
    parser = argparse.ArgumentParser(prog="verifier", description="provenance-verifier: where did this image come from?")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--data-dir", type=Path, help="overrides VERIFIER_DATA_DIR")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    for topic in (models,) if training_only else (server, accounts, originals, trust, verify, bench, jobs, models):
        topic.add_parsers(sub)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv`, past the global options."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data-dir")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.add_argument("command", nargs="?")
    return pre.parse_known_args(argv)[0].command


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(training_only=_command(argv) in TRAINING_COMMANDS).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "serve" and not args.verbose:
        logging.getLogger("verifier").setLevel(logging.INFO)
    configuration_errors: tuple[type[Exception], ...] = ()
    if args.command not in TRAINING_COMMANDS:
        configuration_errors = _configuration_errors()
    try:
        return int(args.func(args) or 0)
    except configuration_errors as exc:
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
