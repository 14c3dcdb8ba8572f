"""Publishers' marks in matching: a query's keypoints on an enrolled mark are taken out of its view
before stage 2, the vote and stage 3 see it (`simprov.marks`), so that a watermark shared by
many registered photos cannot make an unrelated photo with the same mark their copy
(BENCHMARKS.md, "Publisher marks").

`MarkSet` follows the database: every `check_s` at most, a request compares the enrolled ids
with its own (one small indexed read) and builds the models of new marks (~50 ms each), so a
mark enrolled through another process counts within seconds, and one enrolled through this
process at once (`enroll` invalidates).
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

from verifier.errors import BadRequest
from verifier.images import probe_image
from verifier.simprov.align import SiftFeatures
from verifier.simprov.marks import MarkIndex, MarkModel, mark_model, without
from verifier.simprov.pairs import View
from verifier.storage.database import Database
from verifier.storage.marks import add_mark, mark_ids, rows_with_publisher
from verifier.storage.models import PublisherMark

log = logging.getLogger(__name__)

MAX_MARK_BYTES = 2 * 1024 * 1024
MAX_MARK_PIXELS = 4_000_000
# Fewer distinct places of keypoints and the mark's descriptors are generic (a rectangle's blob):
# they would match content anywhere. The marks of BENCHMARKS.md's bench show 102 (a name) and 250 (a credit line).
MIN_MARK_PLACES = 16


@dataclass(frozen=True)
class EnrolledMark:
    id: uuid.UUID
    publisher_id: uuid.UUID
    publisher: str
    label: str | None
    model: MarkModel


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


class MarkSet:
    def __init__(self, db: Database, check_s: float = 5.0) -> None:
        self.db = db
        self.check_s = check_s
        self._marks: dict[uuid.UUID, EnrolledMark] = {}
        self._index = MarkIndex([])  # the models of `_marks`, in its order
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def enroll(self, publisher_id: uuid.UUID, data: bytes, label: str | None = None) -> PublisherMark:
        """Check the file, store it, and count it from the next request on."""
        model_of(data)  # refused before anything is written
        with self.db.session() as session:
            row = add_mark(session, publisher_id, data, label)
            session.expunge(row)
        self.invalidate()
        return row

    def invalidate(self) -> None:
        with self._lock:
            self._checked = float("-inf")

    def current(self) -> list[EnrolledMark]:
        """The enrolled marks, re-read when the database's set changed (checked every `check_s`)."""
        return self._current()[0]

    def _current(self) -> tuple[list[EnrolledMark], MarkIndex]:
        with self._lock:
            if time.monotonic() - self._checked < self.check_s:
                return list(self._marks.values()), self._index
            with self.db.session() as session:
                ids = mark_ids(session)
                new = rows_with_publisher(session, ids - self._marks.keys())
                marks = {i: m for i, m in self._marks.items() if i in ids}
                for row, name in new:
                    try:
                        marks[row.id] = EnrolledMark(row.id, row.publisher_id, name, row.label, model_of(row.image))
                    except BadRequest as exc:  # stored before a stricter check: skipped, not fatal
                        log.warning("mark %s is not usable (%s); ignored", row.id, exc.detail)
            if marks.keys() != self._marks.keys():
                log.info("publisher marks: %d enrolled", len(marks))
                self._index = MarkIndex([m.model for m in marks.values()])
            self._marks = marks
            self._checked = time.monotonic()
            return list(marks.values()), self._index

    def strip(self, view: View) -> tuple[View, list[FoundMark]]:
        """`view` without its keypoints on any enrolled mark (the mirrored ones too, when made),
        and the marks found on it."""
        marks, index = self._current()
        if not marks:
            return view, []
        shape = view.image.shape
        found: list[FoundMark] = []
        drop = np.zeros(len(view.features), bool)
        for i, on in sorted(index.on(view.features, shape).items()):
            m = marks[i]
            found.append(FoundMark(m.id, m.publisher_id, m.publisher, m.label, int(on.sum())))
            drop |= on

        def strip(features: SiftFeatures) -> SiftFeatures:
            if features is view.features:
                return without(features, drop)
            out = np.zeros(len(features), bool)
            for on in index.on(features, shape).values():
                out |= on
            return without(features, out)

        return view.stripped(strip), found
