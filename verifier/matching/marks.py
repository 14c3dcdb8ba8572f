"""Publishers' marks in matching: a query's keypoints on an enrolled mark are taken out of its view
before stage 2, the vote and stage 3 see it (`simprov.marks`), so that a watermark shared by
many registered photos cannot make an unrelated photo with the same mark their copy
(BENCHMARKS.md, "Publisher marks").

`MarkSet` follows the database: every `check_s` at most, a request compares the enrolled ids
with its own (one small indexed read); a change starts a build in the background (the new marks'
models, ~0.5 s each, then one index over all of them: `simprov.marks.MarkIndex`) while requests
go on with the set they have. So a mark enrolled through another process counts within seconds,
and one enrolled through this process before `enroll` returns; the set is built at start-up.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from verifier.errors import BadRequest, NotFound
from verifier.fsutil import atomic_write
from verifier.images import probe_image
from verifier.simprov.align import SiftFeatures
from verifier.simprov.marks import (
    MODEL_KEY,
    MarkIndex,
    MarkModel,
    Recurring,
    mark_model,
    model_bytes,
    model_from_bytes,
    recurring_overlays,
    without,
)
from verifier.simprov.pairs import View
from verifier.storage.database import Database
from verifier.storage.marks import add_mark, mark_ids, rows_with_publisher
from verifier.storage.models import PublisherMark
from verifier.storage.originals import OriginalStore

log = logging.getLogger(__name__)

MAX_MARK_BYTES = 2 * 1024 * 1024
MAX_MARK_PIXELS = 4_000_000
# Fewer distinct places of keypoints and the mark's descriptors are generic (a rectangle's blob):
# they would match content anywhere. The marks of BENCHMARKS.md's bench show 102 (a name) and 250 (a credit line).
MIN_MARK_PLACES = 16
CACHE_GRACE_S = 600.0


@dataclass(frozen=True)
class EnrolledMark:
    """Whose mark it is; its model lives in the set's `MarkIndex`, at the same position."""

    id: uuid.UUID
    publisher_id: uuid.UUID
    publisher: str
    label: str | None
    sha256: str  # of the file: its model's name in the cache


@dataclass(frozen=True)
class FoundMark:
    """A mark found on a query: its keypoints there did not count."""

    id: uuid.UUID
    publisher_id: uuid.UUID
    publisher: str
    label: str | None
    keypoints: int


def model_of(data: bytes) -> MarkModel:
    """The mark's model from its file, or a clear 4xx for a file that cannot serve as a mark.
    Transparency is kept: a watermark is its opaque part over whatever photo it lies on."""
    probe_image(data, max_bytes=MAX_MARK_BYTES, max_pixels=MAX_MARK_PIXELS)  # size, format, a whole decode
    with Image.open(io.BytesIO(data)) as img:
        rgba = img.convert("RGBA")
    try:
        model = mark_model(rgba)
    except ValueError as exc:
        raise BadRequest(f"not usable as a mark: {exc}") from exc
    if model.places < MIN_MARK_PLACES:
        raise BadRequest(f"SIFT finds keypoints at {model.places} places of the mark; at least {MIN_MARK_PLACES} are needed "
                         "to tell it from ordinary content (a larger or more detailed file of the same mark may do)")
    return model


@dataclass(frozen=True)
class _Snapshot:
    """One enrolled set as the requests use it: the marks and their index, swapped whole."""

    ids: frozenset[uuid.UUID]  # every id read, the unusable ones too (so they are not re-read)
    marks: tuple[EnrolledMark, ...]  # in `index`'s order
    index: MarkIndex


class MarkSet:
    def __init__(self, db: Database, check_s: float = 5.0, cache_dir: Path | None = None) -> None:
        self.db = db
        self.check_s = check_s
        self.cache_dir = cache_dir  # the marks' models as built (`simprov.marks.model_bytes`), by file hash
        self._snapshot = _Snapshot(frozenset(), (), MarkIndex([]))
        self._checked = float("-inf")
        self._lock = threading.Lock()  # `_checked` and the swap of `_snapshot`
        self._building = threading.Lock()  # one build at a time

    def enroll(self, publisher_id: uuid.UUID, data: bytes, label: str | None = None) -> PublisherMark:
        """Check the file, store it, and count it in this process before returning."""
        model = model_of(data)  # refused before anything is written
        self._cache(hashlib.sha256(data).hexdigest(), model)
        with self.db.session() as session:
            row = add_mark(session, publisher_id, data, label)
            session.expunge(row)
        self.invalidate()
        self.current()
        return row

    def invalidate(self) -> None:
        with self._lock:
            self._checked = float("-inf")

    def current(self) -> list[EnrolledMark]:
        """The enrolled marks, re-read when the database's set changed (checked every `check_s`),
        waiting for a change to be built."""
        return list(self._current(wait=True).marks)

    def _current(self, wait: bool) -> _Snapshot:
        """The set to use. A change costs a build (~0.5 s a new mark's model, then the index:
        seconds at a hundred marks): `wait=False`, a verification's, starts it in the background
        and goes on with the set it has, so that no request waits on another's build."""
        with self._lock:
            if time.monotonic() - self._checked < self.check_s:
                return self._snapshot
            self._checked = time.monotonic()
        with self.db.session() as session:
            ids = mark_ids(session)
        if ids == self._snapshot.ids:
            return self._snapshot
        if wait:
            with self._building:
                self._build(ids)
        elif self._building.acquire(blocking=False):
            def build() -> None:
                try:
                    self._build(ids)
                except Exception:  # logged; the next check tries again
                    log.exception("publisher marks: the new set could not be built")
                    self.invalidate()
                finally:
                    self._building.release()

            threading.Thread(target=build, name="marks-build", daemon=True).start()
        return self._snapshot

    def _build(self, ids: frozenset[uuid.UUID]) -> None:
        old = self._snapshot
        if ids == old.ids:  # built meanwhile by the build this one waited for
            return
        kept = {m.id: (m, old.index.model(i)) for i, m in enumerate(old.marks) if m.id in ids}
        with self.db.session() as session:
            new = rows_with_publisher(session, ids - old.ids)
        for row, name in new:
            try:
                kept[row.id] = (EnrolledMark(row.id, row.publisher_id, name, row.label, row.sha256), self._model(row))
            except BadRequest as exc:  # stored before a stricter check: skipped, not fatal
                log.warning("mark %s is not usable (%s); ignored", row.id, exc.detail)
        marks = tuple(m for m, _ in kept.values())
        snapshot = _Snapshot(ids, marks, MarkIndex([model for _, model in kept.values()]))
        with self._lock:
            self._snapshot = snapshot
        log.info("publisher marks: %d enrolled", len(marks))
        self._prune({m.sha256 for m in marks})

    def _model(self, row: PublisherMark) -> MarkModel:
        """The mark's model from the cache when it holds one made the same way, else built (and kept)."""
        path = self._cache_path(row.sha256)
        if path is not None and path.is_file():
            try:
                model = model_from_bytes(path.read_bytes())
                if model.places >= MIN_MARK_PLACES:
                    return model
            except (OSError, ValueError) as exc:
                log.warning("mark model cache %s is not usable (%s); built again", path.name, exc)
        model = model_of(row.image)
        self._cache(row.sha256, model)
        return model

    def _prune(self, keep: set[str]) -> None:
        """Remove cached models of marks no longer enrolled, or made another way; not those
        written in the last CACHE_GRACE_S (another process may be enrolling that file now)."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return
        wanted = {f"{sha}-{MODEL_KEY}.npz" for sha in keep}
        now = time.time()
        for path in self.cache_dir.glob("*.npz"):
            try:
                if path.name not in wanted and now - path.stat().st_mtime > CACHE_GRACE_S:
                    path.unlink()
            except OSError:  # gone meanwhile, or not ours to remove: a cache
                continue

    def _cache_path(self, sha256: str) -> Path | None:
        return self.cache_dir / f"{sha256}-{MODEL_KEY}.npz" if self.cache_dir is not None else None

    def _cache(self, sha256: str, model: MarkModel) -> None:
        path = self._cache_path(sha256)
        if path is None:
            return
        try:
            atomic_write(path, model_bytes(model))
        except OSError as exc:  # a cache: the model is built again next time
            log.warning("mark model not cached (%s)", exc)

    def strip(self, view: View) -> tuple[View, list[FoundMark]]:
        """`view` without its keypoints on any enrolled mark (the mirrored ones too, when made),
        and the marks found on it."""
        snapshot = self._current(wait=False)
        marks, index = snapshot.marks, snapshot.index
        if not marks:
            return view, []
        shape = view.image.shape
        found: list[FoundMark] = []
        drop = np.zeros(len(view.features), bool)
        for i, on in sorted(index.on(view.features, shape).items()):
            m = marks[i]
            found.append(FoundMark(m.id, m.publisher_id, m.publisher, m.label, int(on.sum())))
            drop |= on

        def strip(features: SiftFeatures, frame: tuple[int, ...]) -> SiftFeatures:
            if features is view.features:
                return without(features, drop)
            out = np.zeros(len(features), bool)
            for on in index.on(features, frame).values():
                out |= on
            return without(features, out)

        return view.stripped(strip), found


MAX_FIND_SAMPLE = 1000  # the search is quadratic in the photos per place: ~71 s and 1.3 GB at 1,000 on 2 cores
SUGGESTIONS_JOB = "mark-suggestions"  # the job kind (`storage.jobs`) that runs `suggestions_result`


@dataclass(frozen=True)
class Suggestion:
    """A region many of a publisher's registered photos share (`simprov.marks.recurring_overlays`):
    a mark an operator may enrol after looking at it."""

    overlay: Recurring
    originals: list[uuid.UUID]  # the registered photos that show it
    looked_at: int  # how many of the publisher's photos were looked at

    def as_json(self) -> dict[str, object]:
        """As the API shows it (`api.publishers.SuggestionOut`), the overlay's picture a base64 PNG."""
        kind, ax, ay = self.overlay.frame
        buf = io.BytesIO()
        self.overlay.image.save(buf, "PNG")
        return {"box": [round(v, 4) for v in self.overlay.box],
                "frame": kind if kind == "share" else f"{kind} from {ax:g},{ay:g}",
                "photos": len(self.originals), "looked_at": self.looked_at, "keypoints": self.overlay.keypoints,
                "examples": [str(i) for i in self.originals[:5]],
                "png_base64": base64.b64encode(buf.getvalue()).decode("ascii")}


def suggest_marks(originals: OriginalStore, view: Callable[[uuid.UUID], View], publisher_id: uuid.UUID,
                  sample: int = 300) -> tuple[list[Suggestion], int]:
    """The overlays recurring over the publisher's `sample` newest originals, and how many were looked at. A
    suggestion, not an enrolment: a shared frame or template recurs too, and only a person can tell a mark
    from it."""
    rows, _ = originals.list(publisher_id=publisher_id, limit=max(3, min(sample, MAX_FIND_SAMPLE)), offset=0)
    ids, views = [], []
    for r in rows:
        try:
            views.append(view(r.id))
        except NotFound:  # deleted since the list was read: the others still tell
            continue
        ids.append(r.id)
    found = recurring_overlays([(v.image, v.features) for v in views])
    return [Suggestion(r, [ids[i] for i in r.photos], len(ids)) for r in found], len(ids)


def suggestions_result(originals: OriginalStore, view: Callable[[uuid.UUID], View], publisher_id: uuid.UUID | None,
                       params: dict[str, object]) -> dict[str, object]:
    """The suggestions job (`SUGGESTIONS_JOB`): its params {"sample": n}, its result as the API serves it."""
    if publisher_id is None:
        raise BadRequest("a suggestions job needs a publisher")
    sample = params.get("sample")
    if not isinstance(sample, int) or not 3 <= sample <= MAX_FIND_SAMPLE:
        raise BadRequest(f"sample must be a whole number from 3 to {MAX_FIND_SAMPLE}")
    found, looked_at = suggest_marks(originals, view, publisher_id, sample)
    return {"looked_at": looked_at, "suggestions": [s.as_json() for s in found]}
