"""Signed verification reports, kept so that they (and their heatmaps) can be fetched by id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from verifier.errors import NotFound
from verifier.storage.database import Database
from verifier.storage.models import Report as ReportRow


@dataclass(frozen=True)
class Reader:
    """Who asks for a report: a key (None = anonymous, where verification is open), and
    whether it is an admin key (reads any report)."""

    key_id: uuid.UUID | None
    admin: bool = False


@dataclass(frozen=True)
class HeatmapParts:
    png: bytes | None
    query_jpeg: bytes | None = None
    heat_png: bytes | None = None


@dataclass(frozen=True)
class StoredReport:
    report: dict[str, Any]
    jws: str


class ReportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, row: ReportRow) -> None:
        """One transaction: the report is either stored whole (with its heatmap) or not at all."""
        with self.db.session() as session:
            session.add(row)

    def _row(self, session: Session, report_id: uuid.UUID, reader: Reader) -> ReportRow:
        """A report is read by the key that created it (or an admin): others get 404, as if
        it did not exist, so that report ids cannot be probed."""
        row = session.get(ReportRow, report_id)
        if row is None or (not reader.admin and row.api_key_id != reader.key_id):
            raise NotFound(f"no report {report_id}")
        return row

    def get(self, report_id: uuid.UUID, reader: Reader) -> StoredReport:
        with self.db.session() as session:
            row = self._row(session, report_id, reader)
            return StoredReport(row.report, row.jws)

    def heatmap(self, report_id: uuid.UUID, reader: Reader, *, layer: bool = False) -> HeatmapParts:
        """The overlay PNG when rendered already (else what it is rendered from), or with
        `layer` the transparent heat layer."""
        with self.db.session() as session:
            row = self._row(session, report_id, reader)
            if layer:
                if row.heatmap_layer_png is None:
                    raise NotFound(f"report {report_id} has no manipulation heatmap")
                return HeatmapParts(png=row.heatmap_layer_png)
            if row.heatmap_png is None and (row.heatmap_query_jpeg is None or row.heatmap_heat_png is None):
                raise NotFound(f"report {report_id} has no manipulation heatmap")
            return HeatmapParts(png=row.heatmap_png, query_jpeg=row.heatmap_query_jpeg, heat_png=row.heatmap_heat_png)

    def keep_heatmap(self, report_id: uuid.UUID, png: bytes) -> None:
        """Cache the overlay rendered on first request (the sources stay, in case of a re-render)."""
        with self.db.session() as session:
            row = session.get(ReportRow, report_id)
            if row is not None and row.heatmap_png is None:
                row.heatmap_png = png
