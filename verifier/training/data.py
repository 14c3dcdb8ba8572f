"""Training data: only the `train` split of the shared photos (the `test` split is for benchmarks)."""

from __future__ import annotations

import csv
from pathlib import Path


def train_photos(photos_dir: Path) -> list[Path]:
    with (photos_dir / "index.csv").open() as fh:
        return [photos_dir / row["path"] for row in csv.DictReader(fh) if row["split"] == "train"]
