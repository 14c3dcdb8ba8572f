"""Training data: only the `train` split of the shared photos (the `test` split is for benchmarks)."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image


def train_photos(photos_dir: Path) -> list[Path]:
    with (photos_dir / "index.csv").open() as fh:
        return [photos_dir / row["path"] for row in csv.DictReader(fh) if row["split"] == "train"]


def load_photo(path: Path, side: int = 1024) -> Image.Image:
    """A photo as RGB, at most `side` px on its long side (the calibrations' working size)."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    im.thumbnail((side, side))
    return im
