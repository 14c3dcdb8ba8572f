"""Publisher ingest: /v1/originals."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from verifier.api.common import PROBLEM_RESPONSES, read_upload
from verifier.api.deps import get_api_key, get_service
from verifier.api.schemas import BatchItemOut, BatchOut, OriginalList, OriginalOut
from verifier.errors import BadRequest, PayloadTooLarge, VerifierError
from verifier.registry import OriginalMetadata
from verifier.service import Service
from verifier.storage.accounts import Scope, require_scope
from verifier.storage.models import ApiKey

router = APIRouter(prefix="/v1/originals", tags=["originals"])

@router.post(
    "",
    response_model=OriginalOut,
    status_code=201,
    responses={200: {"model": OriginalOut, "description": "Already registered by this publisher"}, **PROBLEM_RESPONSES},
    summary="Register a signed original",
)
async def register_original(
    response: Response,
    request: Request,
    file: UploadFile = File(..., description="The original image, carrying its C2PA manifest."),
    metadata: str | None = Form(None, description='JSON: {"title", "caption", "source_url"}'),
    key: ApiKey = Depends(get_api_key),
    service: Service = Depends(get_service),
) -> OriginalOut:
    require_scope(key, Scope.PUBLISHER)
    raw = _json(metadata, 64 * 1024)
    if raw is not None and not isinstance(raw, dict):
        raise BadRequest("metadata must be a JSON object")
    meta = OriginalMetadata.from_dict(raw)
    async with request.app.state.admission.slot():
        data = await read_upload(file, service.settings.max_upload_bytes)
        # c2pa validation and database writes block: keep them off the event loop.
        result = await run_in_threadpool(
            service.registry.register, data, key.publisher_id, meta, api_key_id=key.id
        )
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = str(request.url_for("get_original", original_id=result.original.id))
    return OriginalOut.of(result.original)


BATCH_MAX = 64


@router.post(
    ":batch",
    response_model=BatchOut,
    responses=PROBLEM_RESPONSES,
    summary="Register up to 64 signed originals at once (one embedding pass, one transaction)",
)
async def register_batch(
    request: Request,
    files: list[UploadFile] = File(..., description="The originals, each carrying its C2PA manifest."),
    metadata: str | None = Form(None, description='JSON array, one {"title", "caption", "source_url"} (or null) per file'),
    key: ApiKey = Depends(get_api_key),
    service: Service = Depends(get_service),
) -> BatchOut:
    """Each file gets the answer `POST /v1/originals` would give it (`status` 201, 200 or a
    problem), in order. The request as a whole is bounded by the upload limit. Re-sending a
    batch is safe: what is already registered answers 200."""
    require_scope(key, Scope.PUBLISHER)
    if len(files) > BATCH_MAX:
        raise BadRequest(f"at most {BATCH_MAX} files per batch")
    raw = _json(metadata, 64 * 1024 * BATCH_MAX)
    if raw is None:
        raw = [None] * len(files)
    if not isinstance(raw, list) or len(raw) != len(files) or not all(m is None or isinstance(m, dict) for m in raw):
        raise BadRequest("metadata must be a JSON array with one object (or null) per file")
    metas = [OriginalMetadata.from_dict(m) for m in raw]
    async with request.app.state.admission.slot():
        total, datas = 0, []
        for upload in files:
            data = await read_upload(upload, service.settings.max_upload_bytes)
            total += len(data)
            if total > service.settings.max_upload_bytes:
                raise PayloadTooLarge(f"the batch exceeds {service.settings.max_upload_bytes} bytes",
                                      limit=service.settings.max_upload_bytes)
            datas.append(data)
        results = await run_in_threadpool(service.registry.register_batch, list(zip(datas, metas, strict=True)),
                                          key.publisher_id, api_key_id=key.id)
    out = []
    for i, result in enumerate(results):
        if isinstance(result, VerifierError):
            out.append(BatchItemOut(index=i, status=result.status, problem=result.problem(request.url.path)))
        else:
            out.append(BatchItemOut(index=i, status=201 if result.created else 200, original=OriginalOut.of(result.original)))
    return BatchOut(results=out, created=sum(r.status == 201 for r in out), existing=sum(r.status == 200 for r in out),
                    refused=sum(r.status >= 400 for r in out))


def _json(text: str | None, limit: int) -> Any:
    if not text:
        return None
    if len(text) > limit:
        raise BadRequest(f"metadata is too large (at most {limit // 1024} KiB)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"metadata is not valid JSON: {exc.msg}") from exc
    except (ValueError, RecursionError) as exc:  # 4,300+ digit integers, nesting past the parser's depth
        raise BadRequest("metadata is not acceptable JSON (too deeply nested or an oversized number)") from exc


@router.get("", response_model=OriginalList, responses=PROBLEM_RESPONSES, summary="List originals")
def list_originals(
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000_000),
    q: str | None = Query(None, max_length=200, description="Only originals whose title contains this (any case)."),
    key: ApiKey = Depends(get_api_key),
    service: Service = Depends(get_service),
) -> OriginalList:
    """A publisher key lists its own originals; a verifier key lists the whole registry."""
    rows, total = service.registry.list(publisher_id=key.publisher_id, limit=limit, offset=offset, title=q)
    return OriginalList(
        items=[OriginalOut.of(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if offset + limit < total else None,
    )


@router.get("/{original_id}", response_model=OriginalOut, responses=PROBLEM_RESPONSES, summary="Fetch one original")
def get_original(
    original_id: uuid.UUID,
    key: ApiKey = Depends(get_api_key),
    service: Service = Depends(get_service),
) -> OriginalOut:
    """Publishers see their own originals only; verifier keys see any."""
    return OriginalOut.of(service.registry.get(original_id, publisher_id=key.publisher_id))


@router.get(
    "/{original_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **PROBLEM_RESPONSES},
    summary="A JPEG preview of an original (thumbnails)",
)
async def original_image(
    original_id: uuid.UUID,
    size: int = Query(256, ge=32, le=1024, description="Longest side in pixels."),
    key: ApiKey = Depends(get_api_key),
    service: Service = Depends(get_service),
) -> Response:
    """Publishers see their own originals only; verifier keys see any."""
    data = await run_in_threadpool(service.registry.preview, original_id, publisher_id=key.publisher_id, side=size)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.delete("/{original_id}", status_code=204, responses=PROBLEM_RESPONSES, summary="Delete one of your originals")
def delete_original(
    original_id: uuid.UUID,
    key: ApiKey = Depends(get_api_key),
    service: Service = Depends(get_service),
) -> Response:
    require_scope(key, Scope.PUBLISHER)
    service.registry.delete(original_id, key.publisher_id, api_key_id=key.id)
    return Response(status_code=204)
