"""Pieces shared by the API routers: documented error responses and bounded upload reads."""

from __future__ import annotations

from fastapi import UploadFile

from verifier.api.problems import PROBLEM_JSON
from verifier.api.schemas import Problem
from verifier.errors import PayloadTooLarge

PROBLEM_RESPONSES = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": desc}
    for code, desc in {
        400: "Malformed request (e.g. metadata is not JSON)",
        401: "Missing or unknown API key",
        403: "Key has the wrong scope; or the original is not signed by a certificate its publisher enrolled "
             "(signer-not-enrolled) or under a trust anchor (untrusted-signer)",
        404: "No such original or report (or not yours)",
        409: "The same content is registered by another publisher (already-registered; the body names it)",
        413: "Over the byte or pixel limit",
        415: "Not a supported image",
        422: "Truncated image, invalid or missing C2PA manifest",
    }.items()
}


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"upload exceeds {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)
