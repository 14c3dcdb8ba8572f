"""`scripts/mirror_bench_data.py` (BENCHMARKS "Mirrored copies: the better fit"): each query is a
mirrored copy of a families photo original, on a tiny families folder of its own (no ../shared)."""

from __future__ import annotations

import csv
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.conftest import REPO
from tests.helpers import photo_like


def test_mirror_queries_are_mirrored_copies_of_photo_originals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    fam = tmp_path / "fam"
    photos = tmp_path / "shared" / "datasets" / "photos"
    photos.mkdir(parents=True)
    (tmp_path / "micc").mkdir()
    rows = []
    for i in range(3):
        photo_like(i, (192, 144)).save(photos / f"p{i}.png")
        rows.append([f"q/x{i}.jpg", f"../shared/datasets/photos/p{i}.png", "manip", "", "paste_large", ""])
    photo_like(9).save(tmp_path / "micc" / "m.png")
    rows.append(["q/m.jpg", "../micc/m.png", "manip", "", "micc-f220", ""])  # not a photo original: left out
    fam.mkdir()
    with (fam / "families.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["query", "original", "kind", "mask", "family", "variant"], *rows, rows[0]])
    out = tmp_path / "mir"
    monkeypatch.setattr(sys, "argv", ["mirror_bench_data.py", str(fam), str(out), "--n", "5", "--seed", "5"])
    runpy.run_path(str(REPO / "scripts" / "mirror_bench_data.py"), run_name="__main__")
    assert capsys.readouterr().out.startswith("3 mirrored copies")
    queries = list(csv.DictReader((out / "queries.csv").open()))
    assert sorted(Path(q["original"]).name for q in queries) == ["p0.png", "p1.png", "p2.png"]
    checked = 0
    for q in queries:
        assert q["kind"] == "benign" and q["family"] == "mirror" and q["variant"].endswith(tuple(f"jpeg{n}" for n in range(101)))
        original = np.asarray(Image.open(q["original"]).convert("L"), np.float32)
        query = Image.open(out / q["query"]).convert("L")
        if query.size == (192, 144) and "+" not in q["variant"]:  # a JPEG alone: the mirror is the only change
            unmirrored = np.asarray(ImageOps.mirror(query), np.float32)
            assert np.abs(unmirrored - original).mean() < np.abs(np.asarray(query, np.float32) - original).mean() / 2
            checked += 1
    assert checked  # seed 5 makes two JPEG-only copies
