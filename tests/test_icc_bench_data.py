"""`scripts/icc_bench_data.py` (BENCHMARKS "Colour profiles"): what each query family holds, on a
tiny photo folder of its own (no ../shared needed)."""

from __future__ import annotations

import csv
import io
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.conftest import REPO
from tests.helpers import photo_like
from verifier.evaluation.icc import ADOBE_RGB, matrix_profile


def test_icc_queries_carry_the_profiles_they_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    photos = tmp_path / "shared" / "datasets" / "photos"
    (photos / "set").mkdir(parents=True)
    rows = []
    for i in range(14):
        photo_like(i, (192, 144)).save(photos / "set" / f"p{i}.jpg", quality=92)
        rows.append([f"set/p{i}.jpg", "set", "test" if i < 13 else "train"])
    with (photos / "index.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "source", "split"], *rows])
    out = tmp_path / "iccb"
    monkeypatch.setattr(sys, "argv", ["icc_bench_data.py", "--shared", str(tmp_path / "shared"), "--out", str(out),
                                      "--n", "2", "--distractors", "2"])
    runpy.run_path(str(REPO / "scripts" / "icc_bench_data.py"), run_name="__main__")
    assert "8 queries, 4 originals, 2 distractors" in capsys.readouterr().out
    queries = list(csv.DictReader((out / "icc.csv").open()))
    by_family: dict[str, list[dict[str, str]]] = {}
    for q in queries:
        by_family.setdefault(q["family"], []).append(q)
    assert {f: len(v) for f, v in by_family.items()} == {"icc_platform": 2, "icc_stripped": 2, "icc_platform_edit": 2, "icc_editor": 2}
    wide = matrix_profile(ADOBE_RGB)

    def profile(rel: str) -> bytes | None:
        return Image.open(out / rel).info.get("icc_profile")

    for q in by_family["icc_platform"] + by_family["icc_stripped"]:
        assert profile(q["original"]) == wide and profile(q["query"]) is None and q["kind"] == "benign"
    for q in by_family["icc_editor"]:
        assert profile(q["original"]) is None and profile(q["query"]) == wide
    for q in by_family["icc_platform_edit"]:
        assert q["kind"] == "manip" and q["variant"] in ("paste_small", "copy_move_small")
        mask = np.asarray(Image.open(out / q["mask"]))
        assert mask.shape[::-1] == Image.open(out / q["query"]).size and mask.max() == 255
    # the stripped copy holds the original's Adobe RGB values: shown as sRGB they differ from the platform copy
    q = by_family["icc_stripped"][0]
    srgb = ImageCms.profileToProfile(Image.open(out / q["original"]), ImageCms.ImageCmsProfile(io.BytesIO(wide)),
                                     ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert np.abs(np.asarray(srgb, np.int16) - np.asarray(Image.open(out / q["query"]).convert("RGB"), np.int16)).mean() > 1
    registry = sorted(p.name for p in (out / "registry").iterdir())
    assert len(registry) == 2 and all((out / "registry" / n).resolve().is_file() for n in registry)
