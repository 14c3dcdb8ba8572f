"""`scripts/calibrate_colour_map.py`, the record behind stage 3's COLOUR_GAIN, still runs and
prints its table (two pairs per kind: a smoke test, not the calibration)."""

from __future__ import annotations

import runpy
import sys

import pytest

from tests.conftest import REPO, shared_path


def test_colour_map_calibration_prints_its_table(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    photos = shared_path("datasets", "photos", "index.csv").parent
    monkeypatch.setattr(sys, "argv", ["calibrate_colour_map.py", "--shared", str(photos.parents[1]), "--n", "2",
                                      "--seed", "3", "--gains", "2"])
    runpy.run_path(str(REPO / "scripts" / "calibrate_colour_map.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| correction | T (levels) | benign_graded manipulated")
    rows = [line for line in lines if line.startswith("| ")][1:]
    assert rows[0].startswith("| none (ChangeNet alone) |")
    shipped = [r for r in rows if r.startswith("| affine original->query (shipped) | 2 |")]
    assert len(shipped) == 1 and len(rows) == 1 + 5  # none + five corrections at one bar
    cells = [c.strip() for c in shipped[0].strip("|").split("|")][2:]
    assert len(cells) == 5 and all(c.endswith((" / 2", " / 1", " / 0")) for c in cells), cells
