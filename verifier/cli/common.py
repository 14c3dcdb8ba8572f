"""What every command needs: the settings (with --data-dir) and the opened service."""

from __future__ import annotations

import argparse
from typing import Any


def settings_from(args: argparse.Namespace) -> Any:
    from verifier.settings import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return Settings(**overrides)


def open_service(args: argparse.Namespace) -> Any:
    from verifier.service import Service

    return Service.open(settings_from(args))
