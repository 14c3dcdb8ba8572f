"""Verification for fact-checkers: /v1/verify, /v1/reports, the report schema and the JWKS."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from verifier.api.common import PROBLEM_RESPONSES, read_upload
from verifier.api.deps import AuthorizationHeader, get_service
from verifier.reports.schema import Report, json_schema
from verifier.service import Service
from verifier.storage.accounts import Scope, authenticate, require_scope
from verifier.storage.models import ApiKey
from verifier.storage.reports import Reader

router = APIRouter(tags=["verification"])


class SignedReportOut(BaseModel):
    report: Report
    jws: str = Field(description="Compact JWS (EdDSA/Ed25519) over the canonical JSON of `report`; keys at /.well-known/jwks.json.")


def verifier_key(request: Request, authorization: AuthorizationHeader = None) -> ApiKey | None:
    """A verifier-scoped key, unless the deployment leaves verification open."""
    service: Service = request.app.state.service
    if not service.settings.verify_requires_key and not authorization:
        return None
    with service.db.session() as session:
        key = authenticate(session, authorization)
        session.expunge(key)
    require_scope(key, Scope.VERIFIER)
    return key


def report_reader(request: Request, authorization: AuthorizationHeader = None) -> Reader:
    """Who reads a stored report: the verifier key that made it, or an admin key (anonymous
    only where verification is open, and only for anonymous reports)."""
    service: Service = request.app.state.service
    if not service.settings.verify_requires_key and not authorization:
        return Reader(None)
    with service.db.session() as session:
        key = authenticate(session, authorization)
        session.expunge(key)
    require_scope(key, Scope.VERIFIER, Scope.ADMIN)
    return Reader(key.id, admin=key.scope == Scope.ADMIN.value)


@router.post("/v1/verify", response_model=SignedReportOut, responses=PROBLEM_RESPONSES, summary="Where did this image come from?")
async def verify(
    request: Request,
    file: UploadFile = File(..., description="The image to verify."),
    key: ApiKey | None = Depends(verifier_key),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    async with request.app.state.admission.slot():
        data = await read_upload(file, service.settings.max_upload_bytes)
        signed = await run_in_threadpool(service.pipeline.verify, data, api_key_id=key.id if key else None)
    return signed.envelope()


@router.get("/v1/reports/{report_id}", response_model=SignedReportOut, responses=PROBLEM_RESPONSES, summary="A stored signed report")
def get_report(report_id: uuid.UUID, reader: Reader = Depends(report_reader), service: Service = Depends(get_service)) -> dict[str, Any]:
    """Readable by the key that created the report (and admin keys); others get 404."""
    return service.pipeline.get(report_id, reader).envelope()


@router.get(
    "/v1/reports/{report_id}/heatmap.png",
    responses={200: {"content": {"image/png": {}}}, **PROBLEM_RESPONSES},
    response_class=Response,
    summary="The manipulation heatmap overlay (once stage 3 produces one)",
)
def get_heatmap(report_id: uuid.UUID, reader: Reader = Depends(report_reader), service: Service = Depends(get_service)) -> Response:
    return Response(service.pipeline.heatmap(report_id, reader), media_type="image/png")


@router.get(
    "/v1/reports/{report_id}/heatmap-layer.png",
    responses={200: {"content": {"image/png": {}}}, **PROBLEM_RESPONSES},
    response_class=Response,
    summary="The heatmap as a transparent layer (at most 512 px) to lay over the query or the aligned original",
)
def get_heatmap_layer(report_id: uuid.UUID, reader: Reader = Depends(report_reader), service: Service = Depends(get_service)) -> Response:
    return Response(service.pipeline.heatmap(report_id, reader, layer=True), media_type="image/png")


@router.get(
    "/v1/reports/{report_id}/original.jpg",
    responses={200: {"content": {"image/jpeg": {}}}, **PROBLEM_RESPONSES},
    response_class=Response,
    summary="The matched original, aligned into the query's frame (404 once the original is deleted)",
)
async def get_aligned_original(report_id: uuid.UUID, reader: Reader = Depends(report_reader),
                               service: Service = Depends(get_service)) -> Response:
    data = await run_in_threadpool(service.pipeline.aligned_original, report_id, reader)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.get("/v1/schemas/report.json", summary="JSON Schema of the verification report")
def report_schema() -> Response:
    import json

    return Response(json.dumps(json_schema(), indent=2), media_type="application/schema+json")


@router.get("/.well-known/jwks.json", summary="Public keys that sign reports (current and previous)")
def jwks(service: Service = Depends(get_service)) -> dict[str, Any]:
    return service.keys.jwks()
