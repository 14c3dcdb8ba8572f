"""Signed verification reports, kept so that they (and their heatmaps) can be fetched by id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from verifier.errors import NotFound
from verifier.storage.database import Database
from verifier.storage.models import Report as ReportRow


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

    def get(self, report_id: uuid.UUID) -> StoredReport:
        with self.db.session() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                raise NotFound(f"no report {report_id}")
            return StoredReport(row.report, row.jws)

    def heatmap(self, report_id: uuid.UUID, *, layer: bool = False) -> bytes:
        """The overlay PNG (the query in false colour), or with `layer` the transparent heat layer."""
        with self.db.session() as session:
            row = session.get(ReportRow, report_id)
            if row is None:
                raise NotFound(f"no report {report_id}")
            png = row.heatmap_layer_png if layer else row.heatmap_png
            if png is None:
                raise NotFound(f"report {report_id} has no manipulation heatmap")
            return png
