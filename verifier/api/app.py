"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from verifier import __version__
from verifier.api import originals, publishers, sbr, verify, web
from verifier.api.admission import Admission, RateLimitMiddleware
from verifier.api.problems import BodyLimitMiddleware, install_problem_handlers
from verifier.service import Service
from verifier.settings import Settings
from verifier.storage import jobs

# Multipart framing and form fields on top of the file itself.
_MULTIPART_OVERHEAD = 1 << 20


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> FastAPI:
    """Build the app. With `service` the caller owns its lifecycle (tests); otherwise the
    app opens it at start-up (embedded database included) and closes it at shutdown."""
    settings = service.settings if service is not None else (settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            service.start_jobs()
            yield
            return
        app.state.service = Service.open(settings)
        app.state.service.start_jobs()
        try:
            yield
        finally:
            app.state.service.close()

    app = FastAPI(
        title="provenance-verifier",
        version=__version__,
        summary="Where did this image come from? C2PA validation and a trusted registry of signed originals.",
        lifespan=lifespan,
        openapi_tags=[{"name": "soft-binding-resolution", "description":
                       "The C2PA Soft Binding Resolution API (SBR 1.1.0): recover the manifest of a stripped image "
                       "by its content or a watermark/fingerprint value; fetch manifest stores by id."}],
    )
    if service is not None:
        app.state.service = service
    app.state.admission = Admission(settings.workers, settings.queue)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_upload_bytes + _MULTIPART_OVERHEAD,
                       body_timeout=settings.body_timeout_s)
    app.add_middleware(RateLimitMiddleware, per_key=settings.rate_limit_per_key or None,
                       per_address=settings.rate_limit_per_address or None)
    install_problem_handlers(app)
    app.include_router(originals.router)
    app.include_router(publishers.router)
    app.include_router(web.api)
    app.include_router(web.router)
    app.include_router(verify.router)
    app.include_router(sbr.router)

    @app.get("/healthz", tags=["ops"], summary="Liveness, database and index state (503 while the database is down)")
    def healthz() -> Response:
        service = app.state.service
        up = service.db.recover()  # a ping; restarts a dead embedded PostgreSQL
        body = {"status": "ok" if up else "degraded", "version": __version__,
                "database": {"state": "ok" if up else "unavailable", "embedded": service.db.embedded},
                "index": service.search.state()}
        if up:
            with service.db.session() as session:
                body["jobs"] = {**jobs.pending_summary(session), "runs_here": service.jobs.active}
        return JSONResponse(body, status_code=200 if up else 503)

    return app
