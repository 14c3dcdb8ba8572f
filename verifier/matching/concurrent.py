"""Two independent steps of one request at once.

On 2 cores a verification spends much of its time in steps that do not wait on each other:
the query's global and region embeddings, its SIFT view beside both, the pixel baseline beside
stage 3. They spend their time in torch or OpenCV, which release the GIL, so a second thread
runs one on the other core (BENCHMARKS.md, "Independent steps at once"); the matcher does so
only for a verification alone in flight. A plain thread per step, not a pool: nothing outlives
the request, and a pool shared by concurrent requests would queue one's step behind another's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Later(Generic[T]):
    """`fn()` begun now in its own thread when `parallel`; otherwise run by the first `result()`
    (the sequential order of old, with nothing computed that is not asked for)."""

    def __init__(self, fn: Callable[[], T], parallel: bool) -> None:
        self._fn = fn
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if parallel:
            self._thread = threading.Thread(target=self._run, name="verifier-step", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller by result(), raised there
            self._error = exc
        self._done = True

    def result(self) -> T:
        """The value, or the step's exception raised here."""
        if self._thread is not None:
            self._thread.join()
        elif not self._done:
            self._run()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def wait(self) -> None:
        """Let a step nobody needs finish (a request bounds its own work); its error is dropped."""
        if self._thread is not None:
            self._thread.join()
