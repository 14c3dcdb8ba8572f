"""FastAPI dependencies: the service and the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request

from verifier.service import Service
from verifier.storage.accounts import authenticate
from verifier.storage.models import ApiKey

# The Authorization header as FastAPI documents it (Annotated), one declaration for every route that reads it.
AuthorizationHeader = Annotated[str | None, Header(description="Bearer <api key>")]


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_api_key(request: Request, authorization: AuthorizationHeader = None) -> ApiKey:
    service: Service = request.app.state.service
    with service.db.session() as session:
        key = authenticate(session, authorization)
        _ = key.publisher  # load while the session is open
        session.expunge(key)
        return key
