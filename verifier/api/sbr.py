"""The C2PA Soft Binding Resolution API (SBR 1.1.0, C2PA 2.3) under /sbr/v1: any C2PA client
recovers the credentials of a stripped image from this registry without our report format.

Queries need a verifier-scoped key (as /v1/verify) and share its rate limits, upload limit
and worker pool; `services/supportedAlgorithms` is open. Errors are problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from verifier.api.common import PROBLEM_RESPONSES
from verifier.api.deps import get_service
from verifier.api.verify import verifier_key
from verifier.errors import NotAnImage, NotImplementedYet, PayloadTooLarge, UriTooLong
from verifier.service import Service
from verifier.storage.models import ApiKey

PREFIX = "/sbr/v1"
router = APIRouter(prefix=PREFIX, tags=["soft-binding-resolution"])

MaxResults = Query(10, ge=1, le=100, alias="maxResults", description="At most this many matches, best first.")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/tiff", "image/gif", "image/avif", "image/heic", "image/heif")


class SoftBindingQuery(BaseModel):
    alg: str = Field(max_length=255, description="Soft-binding algorithm id, e.g. com.adobe.trustmark.Q.")
    value: str = Field(max_length=1_000_000, description="Base64 value of the binding (algorithm-specific format).")


class MatchOut(BaseModel):
    manifestId: str = Field(description="The registered original's active manifest id (urn:c2pa:...); "
                            "fetch it from /sbr/v1/manifests/{manifestId}.")
    similarityScore: int = Field(ge=0, le=100, description="100 x the calibrated probability of the match "
                                 "(100 = exact binding value or identical bytes).")


class MatchesOut(BaseModel):
    matches: list[MatchOut]


class AlgOut(BaseModel):
    alg: str


class SupportedAlgorithmsOut(BaseModel):
    watermarks: list[AlgOut]
    fingerprints: list[AlgOut]


def _matches(found: list[Any]) -> dict[str, Any]:
    return {"matches": [m.to_json() for m in found]}


@router.get("/matches/byBinding", response_model=MatchesOut, responses=PROBLEM_RESPONSES,
            summary="Manifests whose soft binding has exactly this value (GET)")
def by_binding_get(
    alg: str = Query(..., max_length=255),
    value: str = Query(..., description="Base64; a longer value than the server accepts in a URL is a 414 (use POST)."),
    max_results: int = MaxResults,
    key: ApiKey | None = Depends(verifier_key),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    if len(value) > service.settings.sbr_max_value_chars:
        raise UriTooLong(f"value is longer than {service.settings.sbr_max_value_chars} characters; POST it instead")
    return _matches(service.resolver.by_binding(alg, value, max_results))


@router.post("/matches/byBinding", response_model=MatchesOut, responses=PROBLEM_RESPONSES,
             summary="Manifests whose soft binding has exactly this value (POST, for long values)")
def by_binding_post(
    query: SoftBindingQuery,
    max_results: int = MaxResults,
    key: ApiKey | None = Depends(verifier_key),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    return _matches(service.resolver.by_binding(query.alg, query.value, max_results))


@router.post(
    "/matches/byContent", response_model=MatchesOut, responses=PROBLEM_RESPONSES,
    summary="Manifests of the registered originals this asset derives from (SImProv stages 1-2)",
    openapi_extra={"requestBody": {"required": True, "content": {
        t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES}}},
)
async def by_content(
    request: Request,
    alg: str | None = Query(None, max_length=255, description="Our fingerprint id (the default); others are 400."),
    max_results: int = MaxResults,
    hint_alg: str | None = Query(None, alias="hintAlg", max_length=255),
    hint_value: str | None = Query(None, alias="hintValue", max_length=65536),
    key: ApiKey | None = Depends(verifier_key),
    service: Service = Depends(get_service),
) -> dict[str, Any]:
    media_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type not in IMAGE_TYPES:
        raise NotAnImage(f"the body must be the raw image with its media type ({', '.join(IMAGE_TYPES)}), "
                         f"not {media_type or 'nothing'}")
    async with request.app.state.admission.slot():
        data = await _read_body(request, service.settings.max_upload_bytes)
        found = await run_in_threadpool(service.resolver.by_content, data, alg, max_results, hint_alg, hint_value)
    return _matches(found)


@router.post("/matches/byReference", responses={501: PROBLEM_RESPONSES[400] | {"description": "Not implemented"}},
             summary="Not implemented: this registry resolves by binding value and by content")
def by_reference(key: ApiKey | None = Depends(verifier_key)) -> None:
    raise NotImplementedYet("byReference is not implemented; send the asset to /sbr/v1/matches/byContent")


@router.get("/manifests/{manifest_id}", responses={200: {"content": {"application/c2pa": {}}}, **PROBLEM_RESPONSES},
            response_class=Response, summary="The manifest store of a registered original (application/c2pa)")
def get_manifest(
    manifest_id: str,
    return_active: bool = Query(False, alias="returnActiveManifest",
                                description="Only the active manifest (its ingredients' manifests left out)."),
    key: ApiKey | None = Depends(verifier_key),
    service: Service = Depends(get_service),
) -> Response:
    return Response(service.resolver.manifest(manifest_id, return_active), media_type="application/c2pa")


@router.get("/services/supportedAlgorithms", response_model=SupportedAlgorithmsOut,
            summary="Algorithms this service resolves (no key needed)")
def supported_algorithms(service: Service = Depends(get_service)) -> dict[str, Any]:
    return service.resolver.supported_algorithms()


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)
