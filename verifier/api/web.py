"""The web app for people (fact-checkers, photo desks), served by the API itself: one HTML
page, one script, one stylesheet, no build step, no third-party requests. The page talks
to the public API with the caller's key (kept in sessionStorage by the script).

Every page and asset is sent with a Content-Security-Policy that allows scripts, styles
and connections to this origin only (no inline script), images from it and from blob:
URLs (the key-authenticated images), and no framing.
"""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response

from verifier.api.deps import AuthorizationHeader
from verifier.service import Service
from verifier.storage.accounts import authenticate

router = APIRouter(include_in_schema=False)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def _asset(name: str) -> bytes:
    return resources.files("verifier.api").joinpath("static", name).read_bytes()


def _page() -> Response:
    return Response(_asset("index.html"), media_type="text/html; charset=utf-8",
                    headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/")
def index() -> Response:
    return _page()


@router.get("/console")
def console() -> Response:
    return _page()


@router.get("/operator")
def operator() -> Response:
    """Publishers' marks for an admin key: enrolled, suggested, enrol and remove."""
    return _page()


@router.get("/reports/{report_id}")
def report_page(report_id: uuid.UUID) -> Response:
    """A permalink: the page fetches the stored report with the viewer's key and renders it."""
    return _page()


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in _TYPES:
        return Response(status_code=404)
    return Response(_asset(name), media_type=_TYPES[name], headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


api = APIRouter(tags=["session"])


@api.get("/v1/me", summary="Who this key is (scope, publisher) and whether verification is open")
def whoami(request: Request, authorization: AuthorizationHeader = None) -> dict[str, Any]:
    """Without a key: only whether verification is open. A bad key is a 401."""
    service: Service = request.app.state.service
    out: dict[str, Any] = {"scope": None, "publisher": None, "verify_open": not service.settings.verify_requires_key}
    if not authorization:
        return out
    with service.db.session() as session:
        key = authenticate(session, authorization)
        out["scope"] = key.scope
        if key.publisher is not None:
            out["publisher"] = {"id": str(key.publisher.id), "name": key.publisher.name}
    return out
