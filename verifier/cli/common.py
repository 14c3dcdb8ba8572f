"""What every command needs: the settings (with --data-dir) and the opened service."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import urllib.parse
import urllib.request
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


FETCH_TIMEOUT_S = 10


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A key set or trust list URL answers with the document or not at all: a redirect could point anywhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        raise ValueError(f"the URL redirects (HTTP {code}); redirects are not followed")


def _public_host(host: str, insecure_flag: str) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or reserved addresses."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if not addr.is_global:
            raise ValueError(f"{host!r} resolves to a non-public address ({addr}); use {insecure_flag} for a local test")


def fetch_bounded(url: str, max_bytes: int, *, what: str, insecure: bool = False, insecure_flag: str = "--insecure") -> bytes:
    """GET a document an operator names (JWKS, trust list): https to a public host, no
    redirects, a timeout and a size cap. `insecure` allows http and private hosts (tests)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" and not (insecure and parts.scheme == "http"):
        raise ValueError(f"a {what} URL must be https (http only with {insecure_flag})")
    if not parts.hostname:
        raise ValueError(f"the {what} URL has no host")
    if not insecure:
        _public_host(parts.hostname, insecure_flag)
    opener = urllib.request.build_opener(_NoRedirects)
    with opener.open(url, timeout=FETCH_TIMEOUT_S) as response:
        body: bytes = response.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ValueError(f"the {what} is larger than {max_bytes} bytes")
    return body
