"""`scripts/flipped_bench_data.py` (BENCHMARKS "Mirrored copies: the better fit", "Negatives: the
inverted descriptors"): each query is a mirrored or tone-inverted copy of a families photo original,
on a tiny families folder of its own (no ../shared)."""

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


def _families(tmp_path: Path) -> Path:
    """Three photo originals and a MICC-like one (not a photo original: left out)."""
    fam = tmp_path / "fam"
    photos = tmp_path / "shared" / "datasets" / "photos"
    photos.mkdir(parents=True)
    (tmp_path / "micc").mkdir()
    rows = []
    for i in range(3):
        photo_like(i, (192, 144)).save(photos / f"p{i}.png")
        rows.append([f"q/x{i}.jpg", f"../shared/datasets/photos/p{i}.png", "manip", "", "paste_large", ""])
    photo_like(9).save(tmp_path / "micc" / "m.png")
    rows.append(["q/m.jpg", "../micc/m.png", "manip", "", "micc-f220", ""])
    fam.mkdir()
    with (fam / "families.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["query", "original", "kind", "mask", "family", "variant"], *rows, rows[0]])
    return fam


def _run(fam: Path, out: Path, which: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    monkeypatch.setattr(sys, "argv", ["flipped_bench_data.py", str(fam), str(out), "--set", which, "--n", "5"])
    runpy.run_path(str(REPO / "scripts" / "flipped_bench_data.py"), run_name="__main__")
    assert capsys.readouterr().out.startswith(f"3 {which} copies")
    queries = list(csv.DictReader((out / "queries.csv").open()))
    assert sorted(Path(q["original"]).name for q in queries) == ["p0.png", "p1.png", "p2.png"]
    assert all(q["kind"] == "benign" and q["variant"].endswith(tuple(f"jpeg{n}" for n in range(101))) for q in queries)
    return queries


def _grey(path: Path | str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), np.float32)


def test_mirror_queries_are_mirrored_copies_of_photo_originals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mir"
    queries = _run(_families(tmp_path), out, "mirror", monkeypatch, capsys)
    checked = 0
    for q in queries:
        assert q["family"] == "mirror"
        original, query = _grey(q["original"]), Image.open(out / q["query"]).convert("L")
        if query.size == (192, 144) and "+" not in q["variant"]:  # a JPEG alone: the mirror is the only change
            unmirrored = np.asarray(ImageOps.mirror(query), np.float32)
            assert np.abs(unmirrored - original).mean() < np.abs(np.asarray(query, np.float32) - original).mean() / 2
            checked += 1
    assert checked  # the default seed makes two JPEG-only copies


def test_tone_queries_are_negatives_and_solarised_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tone"
    queries = _run(_families(tmp_path), out, "tone", monkeypatch, capsys)
    assert [q["family"] for q in queries] == ["negative", "solarize", "negative_mirror"]
    checked = 0
    for q in queries:
        original, query = _grey(q["original"]), _grey(out / q["query"])
        if query.shape != original.shape or q["family"] == "solarize":
            continue  # a benign transform changed the frame
        undone = 255 - query if q["family"] == "negative" else (255 - query)[:, ::-1]
        assert np.abs(undone - original).mean() < 20 < np.abs(query - original).mean()
        checked += 1
    assert checked
