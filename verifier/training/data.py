"""Training data: only the `train` split of the shared photos (the `test` split is for benchmarks)."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterator, Sequence
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


def shuffled_train_photos(shared: Path, rng: random.Random) -> Iterator[Path]:
    """The `train` photos under `shared` in `rng`'s order: the calibrations' draw."""
    photos = train_photos(shared / "datasets" / "photos")
    rng.shuffle(photos)
    return iter(photos)


def in_turn(shared: Path, kinds: Sequence[str], n: int, rng: random.Random) -> Iterator[tuple[str, Image.Image, Callable[[], Image.Image]]]:
    """The calibrations' draw: `n` `train` photos in `rng`'s order, `kinds` taken in turn, as
    (kind, photo, donor); `donor()` loads the next photo of the same order (a composite's other
    photos), so one seed fixes every pair."""
    photos = shuffled_train_photos(shared, rng)

    def donor() -> Image.Image:
        return load_photo(next(photos))

    for i in range(n):
        yield kinds[i % len(kinds)], donor(), donor


def jpeg_copy(img: Image.Image, quality: int) -> Image.Image:
    """`img` through a JPEG encode at `quality` and back, as RGB (what sharing a copy does)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
