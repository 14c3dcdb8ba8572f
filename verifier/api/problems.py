"""RFC 7807 problem+json at the API edge, plus a request-body size guard."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifier.errors import PayloadTooLarge, RequestTimeout, VerifierError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(VerifierError)
    async def _verifier_error(request: Request, exc: VerifierError) -> JSONResponse:
        log.info("%s %s -> %s %s: %s", request.method, request.url.path, exc.status, exc.slug, exc.detail)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return problem_response(exc.status, exc.problem(request.url.path), headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        # The Soft Binding Resolution API specifies 400 for an invalid query value.
        status = 400 if request.url.path.startswith("/sbr/") else 422
        body = {
            "type": "urn:provenance-verifier:problem:invalid-request",
            "title": "Invalid request",
            "status": status,
            "detail": "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors),
            "instance": request.url.path,
            "errors": errors,
        }
        return problem_response(status, body)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug or an outage is still a problem+json, with an id to find it in the log."""
        incident = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", incident, request.method, request.url.path)
        body = {
            "type": "urn:provenance-verifier:problem:internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": f"the service failed on this request (incident {incident}); nothing was stored",
            "instance": request.url.path,
            "incident": incident,
        }
        return problem_response(500, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "type": "about:blank",
            "title": str(exc.detail),
            "status": exc.status_code,
            "instance": request.url.path,
        }
        return problem_response(exc.status_code, body, getattr(exc, "headers", None))


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes before they are parsed or spooled to disk.

    A declared Content-Length over the limit is refused at once; a chunked body is counted
    as it streams and cut off when it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0
        exceeded = False
        timed_out = False
        refused = False
        body_done = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded, timed_out, body_done
            if body_done:  # after the body only a disconnect can come: no deadline
                return await receive()
            try:
                with anyio.fail_after(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                exceeded = timed_out = True
                raise _BodyTimeout() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > self.limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn our exception into its own error response; once the
            # limit has been passed, whatever it answers is replaced by one 413.
            nonlocal refused
            if not exceeded:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(scope, send, timeout=timed_out)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not refused:
                refused = True
                await self._refuse(scope, send)
        except _BodyTimeout:
            if not refused:
                refused = True
                await self._refuse(scope, send, timeout=True)

    async def _refuse(self, scope: Scope, send: Send, timeout: bool = False) -> None:
        exc: VerifierError = (RequestTimeout(f"no request body data for {self.body_timeout:g} s", timeout_s=self.body_timeout)
                              if timeout else PayloadTooLarge(f"request body exceeds {self.limit} bytes", limit=self.limit))
        response = problem_response(exc.status, exc.problem(scope.get("path")))
        await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}
