"""What the API lets in: a bounded number of heavy requests at once (verify, register), a
per-key and per-address rate limit, and a deadline on request bodies.

* `Admission`: at most `workers` heavy requests run and `queue` wait; the next one gets 503
  with Retry-After at once. Memory per request is bounded by the pixel limit, so this bounds
  the process (issue 12 measured 8.5 GB with four 80 MP requests in parallel).
* `RateLimitMiddleware`: a moving window per API key (by the key's hash, no database read)
  and per client address, with the `limits` library; 429 problem+json with Retry-After.
* Request bodies that stall (a Content-Length longer than what is sent) are cut off by
  `problems.BodyLimitMiddleware` after `body_timeout` seconds without data: 408.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from verifier.api.problems import problem_response
from verifier.errors import Overloaded, TooManyRequests

RETRY_AFTER_S = 5


class Admission:
    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self._inflight = 0
        self._slots: anyio.Semaphore | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._slots is None:  # created inside the event loop that uses it
            self._slots = anyio.Semaphore(self.workers)
        if self._inflight >= self.capacity:
            raise Overloaded(f"all {self.workers} workers are busy and {self.capacity - self.workers} requests wait; "
                             f"retry in {RETRY_AFTER_S} s", retry_after=RETRY_AFTER_S)
        self._inflight += 1
        try:
            async with self._slots:
                yield
        finally:
            self._inflight -= 1


class RateLimitMiddleware:
    """Limits on /v1/ and /sbr/ requests: `per_key` (e.g. "300/minute") for each bearer token, and
    `per_address` for each client address; None switches one off."""

    def __init__(self, app: ASGIApp, per_key: str | None, per_address: str | None) -> None:
        self.app = app
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_key = parse(per_key) if per_key else None
        self.per_address = parse(per_address) if per_address else None

    def _retry_after(self, limit: object, *ids: str) -> int:
        stats = self.limiter.get_window_stats(limit, *ids)  # type: ignore[arg-type]
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(("/v1/", "/sbr/")):
            await self.app(scope, receive, send)
            return
        checks = []
        if self.per_address is not None:
            client = scope.get("client")
            checks.append((self.per_address, "address", client[0] if client else "unknown"))
        if self.per_key is not None:
            auth = dict(scope.get("headers") or []).get(b"authorization")
            if auth:
                checks.append((self.per_key, "key", hashlib.sha256(auth).hexdigest()))
        for limit, kind, ident in checks:
            if not self.limiter.hit(limit, kind, ident):
                exc = TooManyRequests(f"more than {limit} requests per {kind}; retry later", retry_after=self._retry_after(limit, kind, ident))
                response = problem_response(exc.status, exc.problem(scope.get("path")), {"Retry-After": str(exc.extra["retry_after"])})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
