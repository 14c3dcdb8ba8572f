"""FastAPI dependencies: the service and the caller's API key."""

from __future__ import annotations

from fastapi import Header, Request

from verifier.service import Service
from verifier.storage.accounts import authenticate
from verifier.storage.models import ApiKey


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_api_key(request: Request, authorization: str | None = Header(default=None, description="Bearer <api key>")) -> ApiKey:
    service: Service = request.app.state.service
    with service.db.session() as session:
        key = authenticate(session, authorization)
        _ = key.publisher  # load while the session is open
        session.expunge(key)
        return key
